//! Access tokens: fetched from a credential, cached, and refreshed *before* they
//! expire, so that a write is never sent with a token that dies in flight.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ProviderError;

use super::Secret;

/// The monotonic clock the token cache reads; injected so that tests can move
/// time without sleeping.
pub type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The system's monotonic clock.
pub fn system_clock() -> Clock {
    Arc::new(Instant::now)
}

/// A bearer token and how long it lives, as the token endpoint reported it.
pub struct Fetched {
    pub token: Secret,
    pub lifetime: Duration,
}

/// One cached token. Refreshes `refresh_before` ahead of expiry, or at half the
/// lifetime for short-lived tokens, whichever comes first. Concurrent callers
/// wait for one refresh rather than each fetching a token.
pub struct TokenCache {
    clock: Clock,
    refresh_before: Duration,
    slot: tokio::sync::Mutex<Option<(Secret, Instant)>>,
}

impl TokenCache {
    pub fn new(clock: Clock, refresh_before: Duration) -> Self {
        Self { clock, refresh_before, slot: tokio::sync::Mutex::new(None) }
    }

    /// The current token, fetching a new one with `fetch` when it is due.
    pub async fn get<F, Fut>(&self, fetch: F) -> Result<Secret, ProviderError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched, ProviderError>>,
    {
        let mut slot = self.slot.lock().await;
        let now = (self.clock)();
        if let Some((token, refresh_at)) = slot.as_ref()
            && now < *refresh_at
        {
            return Ok(token.clone());
        }
        let fetched = fetch().await?;
        tracing::debug!(lifetime_s = fetched.lifetime.as_secs(), "fetched a new access token");
        let margin = self.refresh_before.min(fetched.lifetime / 2);
        *slot = Some((fetched.token.clone(), now + fetched.lifetime - margin));
        Ok(fetched.token)
    }
}

/// Reads `expires_in` as token endpoints send it: a number, or a number in a string.
pub fn lifetime(value: Option<&serde_json::Value>) -> Duration {
    let seconds = match value {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    // Without a lifetime, assume a short one: the token is refreshed soon, never used stale.
    Duration::from_secs(seconds.unwrap_or(300))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_token_is_reused_until_shortly_before_expiry_then_refreshed() {
        let start = Instant::now();
        let now = Arc::new(Mutex::new(start));
        let clock_now = now.clone();
        let cache = TokenCache::new(Arc::new(move || *clock_now.lock().unwrap()), Duration::from_secs(300));
        let fetches = AtomicUsize::new(0);
        let fetch = || async {
            let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(Fetched { token: Secret::new(format!("t{n}")), lifetime: Duration::from_secs(3600) })
        };
        assert_eq!(cache.get(fetch).await.unwrap(), Secret::new("t1"));
        *now.lock().unwrap() = start + Duration::from_secs(3299);
        assert_eq!(cache.get(fetch).await.unwrap(), Secret::new("t1"));
        *now.lock().unwrap() = start + Duration::from_secs(3300);
        assert_eq!(cache.get(fetch).await.unwrap(), Secret::new("t2"));
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn lifetimes_are_read_from_numbers_and_strings() {
        assert_eq!(lifetime(Some(&serde_json::json!(3599))), Duration::from_secs(3599));
        assert_eq!(lifetime(Some(&serde_json::json!("3599"))), Duration::from_secs(3599));
        assert_eq!(lifetime(None), Duration::from_secs(300));
    }
}

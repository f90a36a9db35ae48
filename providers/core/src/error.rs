//! Errors a provider returns; the enactor decides what each one means.

use std::time::Duration;

/// A failed provider call, classified so that the enactor can act on it without
/// knowing the provider: a conflict means re-read and re-plan, throttling means
/// back off, an ambiguous failure means re-read before anything else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The conditional change lost a race: the provider no longer holds what was read.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The provider asked us to slow down.
    #[error("throttled (retry after {retry_after:?})")]
    Throttled {
        /// The provider's hint, when it gives one.
        retry_after: Option<Duration>,
    },
    /// The call may or may not have taken effect (a timeout after sending, a lost response).
    #[error("ambiguous outcome: {0}")]
    Ambiguous(String),
    /// A transient failure known not to have changed anything (connection refused, 5xx before the write).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The name is not owned by this controller (another owner, or unowned answers).
    #[error("not owned: {0}")]
    NotOwned(String),
    /// The provider refused the request as invalid or unauthorised; retrying will not help.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The change would leave a managed name with no answers (invariant I1).
    #[error("refused: change would leave {0} with no answers")]
    WouldEmpty(String),
}

impl ProviderError {
    /// True for failures that a later attempt of the same call may cure.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Throttled { .. } | Self::Unavailable(_) | Self::Ambiguous(_))
    }

    /// True when the state at the provider is unknown and must be re-read first.
    pub fn needs_reread(&self) -> bool {
        matches!(self, Self::Conflict(_) | Self::Ambiguous(_))
    }
}

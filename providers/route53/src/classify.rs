//! Maps SDK failures onto [`ProviderError`] precisely enough for the one retry
//! layer above the provider (ARCHITECTURE.md §6) to act: the SDK's own retries are off.
//!
//! | failure | read | write |
//! |---|---|---|
//! | `Throttling`, `PriorRequestNotComplete`, HTTP 429 | `Throttled` | `Throttled` |
//! | `InvalidChangeBatch` naming a missing/mismatched/existing set | — | `Conflict` |
//! | other `InvalidChangeBatch`, 4xx, no credentials, request building | `Rejected` | `Rejected` |
//! | credential provider timed out or failed (STS, IMDS) | `Unavailable` | `Unavailable` |
//! | connection never established (refused, DNS, connect timeout) | `Unavailable` | `Unavailable` |
//! | HTTP 502 / 503 | `Unavailable` | `Unavailable` |
//! | other 5xx, timeout after sending, lost or unreadable response | `Unavailable` | `Ambiguous` |
//!
//! Messages carry the AWS error code and text but never request headers, so
//! they cannot carry credentials.

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_route53::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use std::error::Error as StdError;
use std::time::Duration;
use veer_provider::ProviderError;

/// Whether a call can have changed anything: decides how unknown outcomes are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// An idempotent read: a lost response changed nothing.
    Read,
    /// A `ChangeResourceRecordSets`: a lost response may hide a landed write.
    Write,
}

/// Error codes Route 53 uses to ask for slower calls.
const THROTTLING_CODES: [&str; 4] =
    ["Throttling", "ThrottlingException", "PriorRequestNotComplete", "RequestLimitExceeded"];

/// Fragments of `InvalidChangeBatch` messages that mean "the zone no longer
/// holds what the DELETEs/CREATEs assumed": a lost compare-and-swap.
const CONFLICT_FRAGMENTS: [&str; 5] = [
    "but it was not found",
    "do not match the current values",
    "but it already exists",
    "non-weighted set exists",
    "weighted set exists",
];

/// Classifies a failed SDK call; `what` names the step for the message.
pub fn classify<E>(what: &str, call: Call, err: &SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    if let Some(credentials) = find::<CredentialsError>(err) {
        // Identity is resolved before anything is sent, whatever variant carries it.
        return match credentials {
            CredentialsError::ProviderTimedOut(_) | CredentialsError::ProviderError(_) => {
                ProviderError::Unavailable(format!("{what}: credentials could not be loaded yet: {}", chain(err)))
            }
            _ => ProviderError::Rejected(format!("{what}: no usable AWS credentials: {}", chain(err))),
        };
    }
    match err {
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let retry_after = ctx
                .raw()
                .headers()
                .get("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            classify_service(what, call, status, ctx.err().code(), ctx.err().message(), retry_after)
        }
        SdkError::TimeoutError(_) => unknown_outcome(what, call, "timed out"),
        SdkError::DispatchFailure(failure) => {
            if never_sent(err) {
                ProviderError::Unavailable(format!("{what}: could not connect: {}", chain(err)))
            } else if failure.is_user() {
                ProviderError::Rejected(format!("{what}: request could not be sent: {}", chain(err)))
            } else {
                unknown_outcome(what, call, &format!("connection failed: {}", chain(err)))
            }
        }
        SdkError::ResponseError(_) => unknown_outcome(what, call, &format!("unreadable response: {}", chain(err))),
        SdkError::ConstructionFailure(_) => {
            // Nothing was sent: the request could not be serialised or signed.
            ProviderError::Rejected(format!("{what}: request not built: {}", chain(err)))
        }
        _ => unknown_outcome(what, call, &chain(err)),
    }
}

/// Classifies an error response by its HTTP status and AWS error code.
pub fn classify_service(
    what: &str,
    call: Call,
    status: u16,
    code: Option<&str>,
    message: Option<&str>,
    retry_after: Option<Duration>,
) -> ProviderError {
    let code_text = code.unwrap_or("no error code");
    let message = message.unwrap_or("");
    let text = format!("{what}: HTTP {status} {code_text}: {message}");
    if status == 429 || code.is_some_and(|c| THROTTLING_CODES.contains(&c)) {
        return ProviderError::Throttled { retry_after };
    }
    if code == Some("InvalidChangeBatch") {
        return if CONFLICT_FRAGMENTS.iter().any(|f| message.contains(f)) {
            ProviderError::Conflict(format!(
                "{text} (the zone no longer holds what was read; nothing in this call was applied: re-read)"
            ))
        } else {
            ProviderError::Rejected(text)
        };
    }
    match status {
        502 | 503 => ProviderError::Unavailable(text),
        500..=599 if call == Call::Write => {
            ProviderError::Ambiguous(format!("{text} (the change may have landed: re-read)"))
        }
        500..=599 => ProviderError::Unavailable(text),
        _ => ProviderError::Rejected(text),
    }
}

fn unknown_outcome(what: &str, call: Call, why: &str) -> ProviderError {
    match call {
        Call::Read => ProviderError::Unavailable(format!("{what}: {why}")),
        Call::Write => {
            ProviderError::Ambiguous(format!("{what}: {why} after sending; the change may have landed: re-read"))
        }
    }
}

/// The first error of type `T` in the source chain.
fn find<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// True when the failure happened while connecting, so no byte of the request left.
fn never_sent(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<aws_smithy_runtime_api::client::dns::ResolveDnsError>().is_some() {
            return true;
        }
        if e.downcast_ref::<hyper_util::client::legacy::Error>().is_some_and(|h| h.is_connect()) {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(io.kind(), ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable) {
                return true;
            }
        }
        next = e.source();
    }
    false
}

/// The error and its sources on one line.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(call: Call, status: u16, code: &str, message: &str) -> ProviderError {
        classify_service("change", call, status, Some(code), Some(message), None)
    }

    #[test]
    fn throttling_and_prior_request_not_complete_are_throttled() {
        for code in ["Throttling", "PriorRequestNotComplete"] {
            assert_eq!(
                service(Call::Write, 400, code, "Rate exceeded"),
                ProviderError::Throttled { retry_after: None }
            );
        }
        assert!(matches!(service(Call::Read, 429, "Whatever", ""), ProviderError::Throttled { .. }));
    }

    #[test]
    fn invalid_change_batch_is_a_conflict_only_when_the_zone_moved() {
        let stale = "[Tried to delete resource record set [name='api.example.com.', type='A', set-identifier='a'] \
                     but the values provided do not match the current values]";
        assert!(matches!(service(Call::Write, 400, "InvalidChangeBatch", stale), ProviderError::Conflict(_)));
        let gone = "[Tried to delete resource record set [name='x.', type='TXT'] but it was not found]";
        assert!(matches!(service(Call::Write, 400, "InvalidChangeBatch", gone), ProviderError::Conflict(_)));
        let exists =
            "[Tried to create resource record set [name='x.', type='A', set-identifier='a'] but it already exists]";
        assert!(matches!(service(Call::Write, 400, "InvalidChangeBatch", exists), ProviderError::Conflict(_)));
        let invalid = "[Invalid Resource Record: FATAL problem: ARRDATAIllegalIPv4Address]";
        assert!(matches!(service(Call::Write, 400, "InvalidChangeBatch", invalid), ProviderError::Rejected(_)));
    }

    #[test]
    fn server_errors_are_ambiguous_for_writes_and_unavailable_for_reads() {
        assert!(matches!(service(Call::Write, 500, "InternalError", ""), ProviderError::Ambiguous(_)));
        assert!(matches!(service(Call::Read, 500, "InternalError", ""), ProviderError::Unavailable(_)));
        assert!(matches!(service(Call::Write, 503, "ServiceUnavailable", ""), ProviderError::Unavailable(_)));
    }

    #[test]
    fn auth_and_validation_failures_are_rejected() {
        for code in
            ["AccessDenied", "InvalidClientTokenId", "SignatureDoesNotMatch", "InvalidInput", "NoSuchHostedZone"]
        {
            assert!(matches!(service(Call::Write, 403, code, ""), ProviderError::Rejected(_)), "{code}");
        }
    }
}

//! The fence the enactor checks immediately before every provider write.

use std::time::Duration;

/// Why this process may not write now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FenceError {
    /// Another replica leads (or nobody does).
    #[error("not the leader")]
    NotLeader,
    /// Leader, but the lease ends before a write could finish.
    #[error("lease too short: {remaining:?} left, a write needs {needed:?}")]
    LeaseTooShort {
        /// Lease left on the monotonic clock.
        remaining: Duration,
        /// Time a write is expected to take.
        needed: Duration,
    },
}

/// Leadership as the enactor needs it; the coordination backends implement it.
pub trait Fence: Send + Sync {
    /// `Ok` when this process leads and holds at least `expected_write` of lease.
    fn check(&self, expected_write: Duration) -> Result<(), FenceError>;
    /// The current leader epoch (fencing token) written into ownership records.
    fn epoch(&self) -> u64;
}

/// The standalone fence: one process, always leader, at a fixed epoch.
#[derive(Debug, Clone, Copy)]
pub struct AlwaysLeader {
    /// The epoch this process runs at (persisted and incremented at each start).
    pub epoch: u64,
}

impl Fence for AlwaysLeader {
    fn check(&self, _: Duration) -> Result<(), FenceError> {
        Ok(())
    }
    fn epoch(&self) -> u64 {
        self.epoch
    }
}

//! The fence the enactor checks immediately before every provider write.

use crate::coord::{Coordinator, Epoch, WriteGuard};
use std::sync::Arc;
use std::time::Duration;

pub use crate::coord::FenceError;

/// Leadership as the enactor needs it.
pub trait Fence: Send + Sync {
    /// `Ok` when this process leads and holds at least `expected_write` of lease.
    /// The returned guard (if any) marks the write as in flight until dropped, so a
    /// graceful release waits for it.
    fn check(&self, expected_write: Duration) -> Result<Option<WriteGuard>, FenceError>;
    /// The leader epoch (fencing token) written into ownership records.
    fn epoch(&self) -> u64;
}

/// A fence that always passes, at a fixed epoch: for tests and for commands that
/// only read (`veer plan`).
#[derive(Debug, Clone, Copy)]
pub struct AlwaysLeader {
    /// The epoch reported.
    pub epoch: u64,
}

impl Fence for AlwaysLeader {
    fn check(&self, _: Duration) -> Result<Option<WriteGuard>, FenceError> {
        Ok(None)
    }
    fn epoch(&self) -> u64 {
        self.epoch
    }
}

/// The production fence: this replica's tenure of `epoch` at the coordinator.
pub struct LeaderFence {
    coordinator: Arc<dyn Coordinator>,
    epoch: Epoch,
}

impl LeaderFence {
    /// A fence for the tenure of `epoch`.
    pub fn new(coordinator: Arc<dyn Coordinator>, epoch: Epoch) -> Self {
        Self { coordinator, epoch }
    }
}

impl Fence for LeaderFence {
    fn check(&self, expected_write: Duration) -> Result<Option<WriteGuard>, FenceError> {
        self.coordinator.fence(self.epoch, expected_write).map(Some)
    }
    fn epoch(&self) -> u64 {
        self.epoch.0
    }
}

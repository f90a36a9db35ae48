//! Failover drills (ARCHITECTURE.md §5, §10 `veer drill`): a path that is never exercised
//! rots, so veer rehearses failover and its own leader hand-off on a schedule,
//! safely.
//!
//! A `kind: Drill` document ([`model`]) names a target — an endpoint, a pool, or
//! `leader` — weekly UTC windows ([`schedule`]), a duration, the largest capacity
//! share it may remove, and abort conditions. The leader's loop drives each run
//! ([`driver`], the I/O shell) through the pure [`runner`]: preflight (the record
//! is calm; the planner's impact preview keeps the guards and the removed share
//! within bounds) → drain through the audited override path → read the drain back
//! at every provider → hold → lift → read every warm-up stage back → done, with
//! aborts that lift at once. A leader drill steps down gracefully and the next
//! leader measures the take-over and checks that no write was lost or repeated.
//! Every step is timestamped in a [`report::Report`] kept in the store ([`store`]),
//! so a run survives a leader change; [`api`] serves `/v1/drills…`.

pub mod api;
pub mod driver;
pub mod model;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod store;
pub mod validate;

pub use driver::{DrillsView, Driver};
pub use model::{Definition, Drill, DrillTarget};
pub use report::{Outcome, Report};

use std::path::PathBuf;

/// A drill document that parsed and resolved, with the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedDrill {
    /// The file.
    pub path: PathBuf,
    /// The document.
    pub drill: Drill,
    /// What the runner uses.
    pub definition: Definition,
}

//! Health checking (ARCHITECTURE.md §6). This module holds the [`HealthView`] that the
//! planner reads; probes, hysteresis, vantages and the combiner build it.
//!
//! - [`probe`]: one http/https/tcp/dns attempt, with latency and a short reason.
//! - [`schedule`]: when each endpoint is probed (phase, jitter, skipped ticks).
//! - [`hysteresis`]: `rise`/`fall` as a pure state machine.
//! - [`prober`]: the [`Vantage`], which runs all of it and publishes a [`VantageReport`].

pub mod combine;
pub mod hysteresis;
pub mod probe;
pub mod prober;
pub mod schedule;
pub mod vantage;
pub mod view;

pub use prober::{Vantage, VantageOptions};
pub use vantage::{EndpointReport, ProbeVerdict, VantageReport};
pub use view::{EndpointHealth, EndpointKey, HealthState, HealthView};

//! Health checking (SPEC §6). This module holds the [`HealthView`] that the
//! planner reads; probes, hysteresis, vantages and the combiner build it.

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

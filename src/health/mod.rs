//! Health checking (SPEC §6). This module holds the [`HealthView`] that the
//! planner reads; probes, hysteresis, vantages and the combiner build it.

pub mod combine;
pub mod vantage;
pub mod view;

pub use vantage::{EndpointReport, ProbeVerdict, VantageReport};
pub use view::{EndpointHealth, EndpointKey, HealthState, HealthView};

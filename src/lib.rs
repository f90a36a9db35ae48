//! veer: a multi-cloud DNS failover orchestrator.
//!
//! The library holds the controller core (ARCHITECTURE.md §1): `policy` (the YAML model
//! and its checks), `config` (the controller configuration), `health` (probes,
//! vantages and the combined view), `planner` (the pure planner), `enactor`
//! (the only writer), `coord` (election and the durable store), `drill`
//! (scheduled failover and hand-over rehearsals), `sim` (virtual time),
//! `chaos` (game-day fault injection), `metrics`, and `cli` (the `veer`
//! command). Providers live in their own crates under `providers/`.

pub mod chaos;
pub mod cli;
pub mod config;
pub mod controller;
pub mod coord;
pub mod demo;
pub mod drill;
pub mod enactor;
pub mod health;
pub mod metrics;
pub mod planner;
pub mod policy;
pub mod sim;
pub mod time;

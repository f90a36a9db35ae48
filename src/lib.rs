//! veer: a multi-cloud DNS failover orchestrator.
//!
//! The library holds the controller core (SPEC §3): `policy` (the YAML model
//! and its checks), `config` (the controller configuration), and `cli` (the
//! `veer` command). Providers live in their own crates under `providers/`.

pub mod cli;
pub mod config;
pub mod coord;
pub mod health;
pub mod policy;
pub mod time;

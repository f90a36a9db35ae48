//! veer's embedded authoritative DNS server and its provider.
//!
//! The embedded server is veer's default provider and a real option for a
//! delegated sub-zone: it serves the zones veer manages with **weighted answers
//! chosen per query** (a weighted shuffle by current weight; weight-0 answers are
//! never served), which set-only DNS servers cannot do.
//!
//! - [`Store`]: the zones, shared by the server (reads) and the provider (writes).
//! - [`EmbeddedServer`]: UDP and TCP on one address (default `127.0.0.1:5353`).
//! - [`EmbeddedProvider`]: the [`veer_provider::Provider`] over the store.

mod provider;
mod server;
mod store;

pub use provider::{EmbeddedProvider, MAX_WEIGHT};
pub use server::{EDNS_PAYLOAD, EmbeddedServer, ServerConfig, WeightedHandler, weighted_order};
pub use store::{Store, ZoneConfig};

//! Test support: the loopback server and the stateful Azure fake.

pub mod fake;
pub mod server;

//! Test support: the loopback server and the stateful Cloud DNS fake.

pub mod fake;
pub mod server;

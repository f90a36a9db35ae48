//! Test support: the loopback server and the stateful Cloudflare fake.

pub mod fake;
pub mod server;

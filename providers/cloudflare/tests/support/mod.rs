//! Test support: the stateful Cloudflare fake, served on loopback by the test bed
//! (`veer_provider_testbed::http_server`).

pub mod fake;

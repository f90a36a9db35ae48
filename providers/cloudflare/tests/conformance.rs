//! The shared provider conformance battery (providers/core) against the stateful
//! fake: round trips, stale-read conflicts, never-empty refusals, ownership, the
//! API budget and ambiguous writes settled by a re-read.

#[allow(dead_code)] // the fake's inspection helpers serve the other test binary
mod support;

veer_provider::provider_battery!(fake: support::fake::start_fake);

//! The shared provider conformance battery (providers/core) against the stateful
//! fake: round trips, stale-read conflicts, never-empty refusals, ownership, the
//! API budget and ambiguous writes settled by a re-read.

#[allow(dead_code)] // the log capture serves the other test binary
mod support;

use std::sync::Arc;
use support::fake::{Fake, start_fake};
use veer_provider::conformance::{Backdoor, BackdoorFuture, Harness};
use veer_provider::{RecordName, RecordType};

/// Writes behind the provider's back through the fake's state.
struct FakeBackdoor(Arc<Fake>);

impl Backdoor for FakeBackdoor {
    fn set_answers<'a>(&'a self, name: &'a RecordName, rtype: RecordType, values: &'a [String]) -> BackdoorFuture<'a> {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        self.0.set_answers(name, rtype, &values);
        Box::pin(async {})
    }
    fn set_txt<'a>(&'a self, name: &'a RecordName, text: Option<&'a str>) -> BackdoorFuture<'a> {
        self.0.set_txt(name, text);
        Box::pin(async {})
    }
}

async fn harness() -> Option<Harness> {
    let (fake, provider) = start_fake().await;
    let fake = Arc::new(fake);
    let zone = fake.zone.clone();
    let provider: Arc<veer_provider_gcloud::GcloudProvider> = Arc::new(provider);
    Some(Harness { provider, zone, backdoor: Arc::new(FakeBackdoor(fake.clone())), keep_alive: fake })
}

veer_provider::provider_battery!(harness);

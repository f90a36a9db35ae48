//! `ProviderWrapper`: what a wrapper does not override reaches the inner provider
//! unchanged; what it overrides replaces the forwarding.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use veer_provider::conformance::MemoryProvider;
use veer_provider::{
    Answer, Capabilities, Change, ChangeBatch, Observed, OwnershipRecord, Provider, ProviderFuture, RecordName,
    RecordSet, RecordType,
};

fn name(s: &str) -> RecordName {
    RecordName::parse(s).unwrap()
}

/// Overrides reads (counted) and the batch limit; forwards everything else.
struct CountsReads {
    inner: Arc<dyn Provider>,
    reads: AtomicUsize,
}

impl veer_provider::ProviderWrapper for CountsReads {
    fn inner(&self) -> &dyn Provider {
        &*self.inner
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities { batch_records_max: 2, ..self.inner.capabilities() }
    }
    fn read<'a>(&'a self, name: &'a RecordName, rtype: RecordType) -> ProviderFuture<'a, Observed> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read(name, rtype)
    }
}

#[tokio::test]
async fn a_wrapper_forwards_the_calls_it_does_not_override_and_replaces_the_others() {
    let zone = name("example.test.");
    let inner: Arc<dyn Provider> = Arc::new(MemoryProvider::new(vec![zone.clone()]));
    let counting = Arc::new(CountsReads { inner: inner.clone(), reads: AtomicUsize::new(0) });
    let wrapper: Arc<dyn Provider> = counting.clone();

    assert_eq!(wrapper.name(), inner.name());
    assert_eq!(wrapper.zones(), inner.zones());
    assert_eq!(wrapper.capabilities(), Capabilities { batch_records_max: 2, ..inner.capabilities() });

    let api = name("api.example.test.");
    let before = wrapper.read(&api, RecordType::A).await.unwrap();
    assert_eq!(before, Observed::absent(api.clone(), RecordType::A));
    let answers = vec![Answer { set_id: Some("a".into()), value: "192.0.2.1".into(), weight: Some(1) }];
    let desired = RecordSet::new(api.clone(), RecordType::A, 60, answers);
    let ownership = OwnershipRecord { owner: "o".into(), generation: 1, epoch: 1, policy_hash: "p".into() };
    let batch = ChangeBatch { zone, changes: vec![Change::new(before, desired.clone(), ownership.clone())] };
    wrapper.apply(&batch).await.expect("the apply reaches the inner provider");

    let after = inner.read(&api, RecordType::A).await.unwrap();
    assert_eq!((after.records, after.ownership), (Some(desired), Some(ownership)));
    assert_eq!(counting.reads.load(Ordering::SeqCst), 1, "only the wrapper's read was counted");
}

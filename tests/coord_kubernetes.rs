//! The Kubernetes backend against a fake Lease + ConfigMap API (no API server can be
//! installed here, REFERENCE §B) that enforces `resourceVersion` preconditions with 409,
//! reached through a real kube `Client` built from a generated kubeconfig.

#[path = "coord_support/mod.rs"]
mod support;

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::fake_kube::FakeKube;
use veer::coord::kubernetes::{KubernetesCoordinator, KubernetesOptions};
use veer::coord::{CoordError, Coordinator, Entry, Key, Leadership, LossReason, Space, Timings, Writer};
use veer::time::Timestamp;

const LEASES: &str = "leases";
const MAPS: &str = "configmaps";

fn short() -> Timings {
    Timings::new(Duration::from_secs(2), Duration::from_millis(1500), Duration::from_millis(300)).unwrap()
}

/// Renewals rare enough that a test can act between them.
fn slow() -> Timings {
    Timings::new(Duration::from_secs(20), Duration::from_secs(15), Duration::from_secs(10)).unwrap()
}

async fn elector(fake: &FakeKube, id: &str, timings: Timings) -> KubernetesCoordinator {
    let options = KubernetesOptions::new("veer", "veer-leader", id, timings);
    KubernetesCoordinator::from_kubeconfig(&fake.kubeconfig, options).await.unwrap()
}

fn expired_lease(holder: &str, transitions: i32) -> serde_json::Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "veer-leader", "namespace": "veer"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 1, "leaseTransitions": transitions,
                 "renewTime": "2020-01-01T00:00:00.000000Z"},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_electors_racing_for_an_expired_lease_produce_exactly_one_leader_with_the_next_epoch() {
    let fake = FakeKube::start().await;
    fake.state.lock().unwrap().insert(LEASES, "veer", expired_lease("gone-pod", 4));
    let a = Arc::new(elector(&fake, "pod-a", short()).await);
    let b = Arc::new(elector(&fake, "pod-b", short()).await);
    let race = |c: Arc<KubernetesCoordinator>| tokio::spawn(async move { c.campaign().await });
    let (ra, rb) = (race(a.clone()), race(b.clone()));
    let winner = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if ra.is_finished() || rb.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(winner.is_ok(), "nobody acquired the expired lease");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(ra.is_finished() != rb.is_finished(), "exactly one elector must win");
    let (won, lost, lost_task) = if ra.is_finished() { (ra, b, rb) } else { (rb, a, ra) };
    let epoch = won.await.unwrap().unwrap();
    assert_eq!(epoch.0, 5, "epoch = leaseTransitions after acquisition");
    assert!(matches!(&*lost.leadership().borrow(), Leadership::Follower { leader: Some(_) }));
    let lease = fake.state.lock().unwrap().object(LEASES, "veer", "veer-leader").unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], json!(5));
    lost_task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elector_that_loses_the_acquisition_race_with_409_waits_for_the_winners_lease() {
    let fake = FakeKube::start().await;
    fake.state.lock().unwrap().insert(LEASES, "veer", expired_lease("gone-pod", 4));
    fake.state.lock().unwrap().steal_next_lease_update = Some("pod-b".into());
    let a = elector(&fake, "pod-a", short()).await;
    let started = std::time::Instant::now();
    let epoch = tokio::time::timeout(Duration::from_secs(15), a.campaign()).await.unwrap().unwrap();
    let waited = started.elapsed();
    assert_eq!(fake.state.lock().unwrap().conflicts.get(LEASES), Some(&1), "the first acquisition got a 409");
    assert_eq!(epoch.0, 6, "pod-b's tenure (5) came between");
    // pod-b's record (leaseDurationSeconds 1) had to stay unchanged for a whole lease.
    assert!(waited >= Duration::from_secs(2), "acquired after {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_holders_renewal_is_rejected_with_409_and_it_stops_writing_at_once() {
    let fake = FakeKube::start().await;
    let a = elector(&fake, "pod-a", short()).await;
    let epoch = a.campaign().await.unwrap();
    assert_eq!(epoch.0, 1);
    let key = Key::new(Space::Planner, "velocity");
    a.put(&key, &Entry::new(json!(1)), Writer::Leader(epoch)).await.unwrap();

    // Another replica takes the Lease behind A's back.
    fake.state.lock().unwrap().modify(LEASES, "veer", "veer-leader", |lease| {
        lease["spec"]["holderIdentity"] = json!("pod-b");
        lease["spec"]["leaseTransitions"] = json!(2);
    });
    let mut rx = a.leadership();
    let lost = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|l| matches!(l, Leadership::Lost { .. })))
        .await
        .expect("the stale holder must notice at its next renewal")
        .unwrap()
        .clone();
    assert_eq!(lost, Leadership::Lost { epoch, reason: LossReason::Deposed });
    assert!(*fake.state.lock().unwrap().conflicts.get(LEASES).unwrap() >= 1, "the renewal got a 409");
    let err = a.put(&key, &Entry::new(json!(2)), Writer::Leader(epoch)).await.unwrap_err();
    assert!(err.is_fenced(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_stamps_the_store_so_a_deposed_leaders_write_fails_at_the_api_server() {
    let fake = FakeKube::start().await;
    let a = elector(&fake, "pod-a", slow()).await;
    let epoch_a = a.campaign().await.unwrap();
    let key = Key::new(Space::Warmup, "use1-a");
    a.put(&key, &Entry::new(json!({"stage": 1})), Writer::Leader(epoch_a)).await.unwrap();

    // A's Lease is given away (as if it expired while A was paused); B acquires.
    fake.state.lock().unwrap().modify(LEASES, "veer", "veer-leader", |lease| {
        lease["spec"]["holderIdentity"] = serde_json::Value::Null;
    });
    let b = elector(&fake, "pod-b", short()).await;
    let epoch_b = tokio::time::timeout(Duration::from_secs(10), b.campaign()).await.unwrap().unwrap();
    assert!(epoch_b > epoch_a);

    assert!(a.fence(epoch_a, Duration::from_secs(1)).is_ok(), "A's local fence still passes");
    let err = a.put(&key, &Entry::new(json!({"stage": 99})), Writer::Leader(epoch_a)).await.unwrap_err();
    assert!(matches!(err, CoordError::Deposed { .. }), "{err}");
    assert_eq!(*a.leadership().borrow(), Leadership::Lost { epoch: epoch_a, reason: LossReason::Deposed });
    assert_eq!(b.get(&key).await.unwrap().unwrap().value, json!({"stage": 1}));
    b.put(&key, &Entry::new(json!({"stage": 2})), Writer::Leader(epoch_b)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epochs_increase_across_release_and_reacquisition_even_for_the_same_pod_name() {
    let fake = FakeKube::start().await;
    let a = elector(&fake, "pod-a", short()).await;
    let first = a.campaign().await.unwrap();
    a.release().await.unwrap();
    let lease = fake.state.lock().unwrap().object(LEASES, "veer", "veer-leader").unwrap();
    assert!(lease["spec"]["holderIdentity"].is_null(), "release clears the holder: {lease}");
    let again = elector(&fake, "pod-a", short()).await;
    let second = tokio::time::timeout(Duration::from_secs(5), again.campaign()).await.unwrap().unwrap();
    assert!(second > first, "{second} must be greater than {first}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_map_store_round_trips_large_values_lists_by_space_and_keeps_the_newest_plans() {
    let fake = FakeKube::start().await;
    let mut options = KubernetesOptions::new("veer", "veer-leader", "pod-a", short());
    options.max_object_bytes = 2048;
    let a = KubernetesCoordinator::from_kubeconfig(&fake.kubeconfig, options).await.unwrap();
    let follower = elector(&fake, "pod-b", short()).await;
    let epoch = a.campaign().await.unwrap();

    let big = json!({"endpoints": (0..500).map(|i| format!("endpoint-{i}-é")).collect::<Vec<_>>()});
    let key = Key::new(Space::Planner, "warmup-table");
    a.put(&key, &Entry::new(big.clone()), Writer::Leader(epoch)).await.unwrap();
    assert!(fake.state.lock().unwrap().count(MAPS) > 3, "a large value is split over several ConfigMaps");
    assert_eq!(follower.get(&key).await.unwrap().unwrap().value, big);
    a.put(&key, &Entry::new(json!("small")), Writer::Leader(epoch)).await.unwrap();
    assert_eq!(fake.state.lock().unwrap().count(MAPS), 1, "old chunks are removed");
    assert_eq!(follower.get(&key).await.unwrap().unwrap().value, json!("small"));

    let drain = Entry::expiring(json!({"drain": "use1-a"}), Timestamp(10_000));
    follower.put(&Key::new(Space::Overrides, "drain-use1-a"), &drain, Writer::Replica).await.unwrap();
    let err = follower.put(&Key::new(Space::Warmup, "x"), &drain, Writer::Replica).await.unwrap_err();
    assert!(matches!(err, CoordError::LeaderOnly { .. }), "{err}");
    assert_eq!(a.list_live(Space::Overrides, "", Timestamp(9_999)).await.unwrap().len(), 1);
    assert!(a.list_live(Space::Overrides, "", Timestamp(10_000)).await.unwrap().is_empty());

    for generation in 1..=4 {
        a.append_plan(epoch, "api.example.com.", generation, json!({"g": generation}), 2).await.unwrap();
    }
    let kept: Vec<u64> = a.plans("api.example.com.").await.unwrap().into_iter().map(|(g, _)| g).collect();
    assert_eq!(kept, vec![3, 4]);
    let listed = follower.list(Space::Planner, "").await.unwrap();
    assert_eq!(listed.len(), 1);

    a.delete(&key, Writer::Leader(epoch)).await.unwrap();
    assert_eq!(a.get(&key).await.unwrap(), None);
    let labelled = fake.state.lock().unwrap().object(
        MAPS,
        "veer",
        &a.config_map_name(&Key::new(Space::Overrides, "drain-use1-a")),
    );
    let labels = &labelled.unwrap()["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/managed-by"], json!("veer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_keeps_its_lease_renewed_while_it_stamps_a_large_store() {
    let fake = FakeKube::start().await;
    {
        let mut state = fake.state.lock().unwrap();
        for i in 0..1500 {
            state.insert(
                MAPS,
                "veer",
                json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("veer-veer-leader-plans-{i:016x}"),
                                 "labels": {"app.kubernetes.io/managed-by": "veer", "veer.io/store": "veer-leader",
                                            "veer.io/space": "plans", "veer.io/part": "head"},
                                 "annotations": {"veer.io/key": format!("r/{i:020}"), "veer.io/epoch": "0"}},
                    "data": {"entry": "{\"value\":1}"},
                }),
            );
        }
    }
    let a = elector(&fake, "pod-a", short()).await;
    let started = std::time::Instant::now();
    let epoch = tokio::time::timeout(Duration::from_secs(60), a.campaign()).await.expect("acquired").unwrap();
    println!("acquired and stamped 1500 ConfigMaps in {:?}", started.elapsed());
    let stamped = fake.state.lock().unwrap().object(MAPS, "veer", "veer-veer-leader-plans-00000000000005db").unwrap();
    assert_eq!(stamped["metadata"]["annotations"]["veer.io/epoch"], json!(epoch.0.to_string()));
    assert!(a.fence(epoch, Duration::ZERO).is_ok());
}

//! ARCHITECTURE.md §8 scenario 4, the fat-finger drain (S3, 2017), with a real process:
//! one `veer run` publishing through its embedded DNS server, four HTTP backends
//! in two pools, the big pool holding 75 % of the capacity; the policy keeps at
//! least 50 %. The operator's requests go to the admin API as the `veer drain`
//! command sends them.
//!
//! Expect: draining the big pool is refused (409) naming the guard and the
//! capacity that would be left (25 %), and nothing changes; the forced preview
//! shows the impact (capacity 100 % → 25 %, only the small pool left); forced,
//! it is applied and only the small pool answers; forcing a drain of the small
//! pool too still leaves answers — the ones its impact announced (nothing takes
//! a record to zero, I1/I4); and
//! the resolver, polling every 10 ms throughout, never saw an empty answer.

use super::checker::{self, Facts};
use super::fleet::{
    Backends, ControllerSpec, Coordination, NAME, Node, Publish, TOKEN, detection_bound, health_check, sum,
    write_policy,
};
use super::resolver::{Resolver, Timeline};
use super::support::replica::{http, wait_until};
use serde_json::Value;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, 4, n)
}

fn drain(pool: &str, force: bool) -> String {
    format!(
        r#"{{"action":{{"kind":"drain","target":{{"kind":"pool","name":"{pool}"}}}},"reason":"maintenance of {pool}","author":"scenario","ttl":"10m","force":{force}}}"#
    )
}

fn post(node: &Node, body: &str) -> (u16, Value) {
    post_to(node, "/v1/overrides", body)
}

fn post_to(node: &Node, path: &str, body: &str) -> (u16, Value) {
    let (code, text) = http(node.admin, "POST", path, Some(TOKEN), body).unwrap_or((0, String::new()));
    (code, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The endpoints a preview or a plan publishes (weight above zero).
fn published(answers: &Value) -> Vec<String> {
    let mut ids: Vec<String> = answers
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["weight"].as_u64().unwrap_or(0) > 0)
        .filter_map(|a| a["endpoint"].as_str().map(String::from))
        .collect();
    ids.sort();
    ids
}

#[test]
fn draining_most_of_the_capacity_is_refused_with_its_impact_and_even_forced_never_empties_the_record() {
    let timeline = Timeline::start();
    let ids = [("m1", ip(1)), ("m2", ip(2)), ("m3", ip(3)), ("s1", ip(4))];
    let backends = Backends::start(timeline, &ids);
    let dir = tempfile::tempdir().unwrap();
    let dns = veer_provider_testbed::free_port();
    ControllerSpec {
        cluster: "fat-finger",
        publish: Publish::Embedded(dns),
        coordination: Coordination::Standalone,
        history_keep: None,
        budget: None,
    }
    .write(dir.path());
    let endpoint = |id: &'static str| (id, backends.address(id), 100);
    write_policy(
        dir.path(),
        &[("main", vec![endpoint("m1"), endpoint("m2"), endpoint("m3")]), ("spare", vec![endpoint("s1")])],
        &health_check(backends.port(), 50),
        "  warmup: { stages: [100] }\n  guards: { minHealthyEndpoints: 1, minCapacityPercent: 50 }\n",
    );
    let node = Node::start(dir.path(), "r1", &[], None, timeline);
    let resolver = Resolver::start(SocketAddr::from((Ipv4Addr::LOCALHOST, dns)), NAME, timeline);
    let all = backends.up_addresses();
    assert!(resolver.wait_for(Duration::from_secs(30), &all), "first publish\n{}", node.log());
    // The impact is previewed from the last round: wait until it saw every endpoint healthy.
    let healthy = || sum(&node.metrics(), "veer_endpoint_up", &[]) == 4.0;
    assert!(wait_until(Duration::from_secs(20), healthy), "every endpoint healthy\n{}", node.log());
    std::thread::sleep(Duration::from_secs(1));

    // The fat finger: the whole big pool. Refused, with the impact.
    let (code, refused) = post(&node, &drain("main", false));
    assert_eq!(code, 409, "a drain that breaks minCapacityPercent is refused: {refused}");
    assert_eq!(refused["refused"], true, "{refused}");
    let guard = refused["impact"]["records"][0]["refused_by"].as_str().unwrap_or_default();
    assert!(
        guard.contains("25% of capacity left") && guard.contains("minCapacityPercent 50%"),
        "the refusal names the guard and the capacity that would be left: {refused}"
    );
    // What forcing it would do, previewed (as `veer drain --force` shows before it asks).
    let (code, preview) = post_to(&node, "/v1/overrides?dryRun=true", &drain("main", true));
    assert_eq!(code, 200, "{preview}");
    let impact = &preview["impact"]["records"][0];
    assert_eq!(impact["healthy_capacity_percent_before"].as_f64(), Some(100.0), "{preview}");
    assert_eq!(impact["healthy_capacity_percent_after"].as_f64(), Some(25.0), "{preview}");
    assert_eq!(published(&impact["after"]), ["s1"], "the preview shows what would remain: {preview}");
    std::thread::sleep(INTERVAL_ROUNDS);
    assert_eq!(resolver.answers(), all, "a refused drain changes nothing");
    let (_, overrides) = http(node.admin, "GET", "/v1/overrides", None, "").unwrap_or_default();
    assert_eq!(overrides.trim(), "[]", "nothing was stored");

    // Forced: applied, the small pool alone answers.
    let (code, forced) = post(&node, &drain("main", true));
    assert_eq!(code, 201, "{forced}");
    assert!(
        forced["impact"]["records"][0]["guard_bypassed"].as_str().is_some_and(|g| g.contains("minCapacityPercent")),
        "a forced drain says which guard it bypasses: {forced}"
    );
    let spare = backends.addresses(&["s1"]);
    assert!(
        resolver.wait_for(detection_bound(), &spare),
        "the forced drain is applied: {:?}\n{}",
        resolver.answers(),
        node.log()
    );

    // Forcing the last pool out too: the record keeps an answer. (The impact is
    // previewed from the last round: let a round see the drain applied first.)
    std::thread::sleep(INTERVAL_ROUNDS);
    let (code, last) = post(&node, &drain("spare", true));
    assert_eq!(code, 201, "{last}");
    let kept = published(&last["impact"]["records"][0]["after"]);
    assert!(!kept.is_empty(), "the impact of draining everything keeps answers: {last}");
    let kept_ids: Vec<&str> = kept.iter().map(String::as_str).collect();
    let kept_addresses = backends.addresses(&kept_ids);
    assert!(
        resolver.wait_for(detection_bound(), &kept_addresses),
        "the record answers what the impact said ({kept:?}), never nothing: {:?}",
        resolver.answers()
    );
    std::thread::sleep(INTERVAL_ROUNDS);
    assert_eq!(resolver.answers(), kept_addresses, "and stays so");

    // The operator undoes it: every endpoint returns.
    let (_, listed) = http(node.admin, "GET", "/v1/overrides", None, "").unwrap_or_default();
    let listed: Value = serde_json::from_str(&listed).unwrap_or_default();
    for id in listed.as_array().into_iter().flatten().filter_map(|o| o["id"].as_str()) {
        let (code, _) = http(node.admin, "DELETE", &format!("/v1/overrides/{id}"), Some(TOKEN), "").unwrap_or_default();
        assert_eq!(code, 204, "undrain {id}");
    }
    assert!(resolver.wait_for(detection_bound(), &all), "every endpoint back after the undrain\n{}", node.log());
    let recording = resolver.stop();
    let verdict = checker::check(&recording, &Facts::default(), detection_bound());
    verdict.assert_clean("fat_finger", node.log());
}

/// Long enough for several reconcile rounds.
const INTERVAL_ROUNDS: Duration = Duration::from_secs(2);

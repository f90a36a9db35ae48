//! Scenario 7, "a cloud's DNS API is down during its regional outage", with real
//! processes: one `veer run` publishes `app` to its embedded server and to BIND,
//! and `solo` to the embedded server only. BIND is frozen (SIGSTOP: its API
//! hangs, it does not refuse) and then an endpoint dies. Expect: both records
//! fail over on the embedded server within the detection bound plus the read
//! half of one round's deadline while BIND hangs; no poll of the embedded server
//! ever sees an empty answer; `/v1/status` names BIND unavailable; once BIND
//! resumes it converges to the current plan.

use super::fleet::{Backends, INTERVAL, Node, detection_bound, health_check};
use super::resolver::{Outcome, Resolver, Timeline};
use super::support::replica::{free_port, wait_until};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use veer_provider_testbed::{DnsServer, ServerKind, ZoneSpec};

const APP: &str = "app.example.test.";
const SOLO: &str = "solo.example.test.";

fn ip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, 7, n)
}

fn write_files(dir: &Path, bind: &DnsServer, embedded: u16, port: u16) {
    let key = bind.key();
    let config = format!(
        "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: outage\nvantage: ${{V}}\n\
         policies: [app.yaml, solo.yaml]\n\
         admin: {{ listen: \"127.0.0.1:${{ADMIN}}\", tokenEnv: VEER_TEST_ADMIN_TOKEN }}\n\
         coordination:\n  backend: standalone\n  stateFile: state.json\n\
         providers:\n  edns:\n    type: embedded\n    listen: 127.0.0.1:{embedded}\n    zones: [example.test.]\n  \
         bind:\n    type: rfc2136\n    server: {}\n    zones: [example.test.]\n    \
         tsig: {{ name: {}, algorithm: {}, secretEnv: VEER_TEST_TSIG }}\n",
        bind.addr(),
        key.name,
        key.algorithm
    );
    std::fs::write(dir.join("veer.yaml"), config).unwrap();
    for (file, name, targets) in [("app.yaml", APP, "edns, bind"), ("solo.yaml", SOLO, "edns")] {
        let policy = format!(
            "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: {} }}\nspec:\n  \
             record: {{ name: {name}, type: A, ttl: 1 }}\n  publishTo: [{targets}]\n  routing: weighted\n  \
             pools:\n    - name: p\n      endpoints:\n        - {{ id: e1, address: {} }}\n        \
             - {{ id: e2, address: {} }}\n  healthCheck: {}\n  shift: {{ maxRemovePercent: 100 }}\n",
            file.trim_end_matches(".yaml"),
            ip(1),
            ip(2),
            health_check(port, 1)
        );
        std::fs::write(dir.join(file), policy).unwrap();
    }
}

fn dig_set(bind: &DnsServer, name: &str) -> BTreeSet<String> {
    bind.dig(name, "A").into_iter().collect()
}

#[test]
fn a_hung_provider_does_not_stop_failover_on_the_others_and_converges_when_it_resumes() {
    let Some(bind) = DnsServer::start(ServerKind::Bind, &ZoneSpec::new("example.test.")) else { return };
    let timeline = Timeline::start();
    let mut backends = Backends::start(timeline, &[("e1", ip(1)), ("e2", ip(2))]);
    let dir = tempfile::tempdir().unwrap();
    let embedded = free_port();
    write_files(dir.path(), &bind, embedded, backends.port());
    let node = Node::start(dir.path(), "v1", &[], Some(&bind.key().secret_base64), timeline);
    let server = SocketAddr::from(([127, 0, 0, 1], embedded));
    let (app, solo) = (Resolver::start(server, APP, timeline), Resolver::start(server, SOLO, timeline));
    let both: BTreeSet<Ipv4Addr> = [ip(1), ip(2)].into();
    let start_within = Duration::from_secs(30);
    assert!(app.wait_for(start_within, &both) && solo.wait_for(start_within, &both), "first publish\n{}", node.log());
    let full: BTreeSet<String> = [ip(1).to_string(), ip(2).to_string()].into();
    assert!(wait_until(start_within, || dig_set(&bind, APP) == full), "BIND publishes app\n{}", node.log());

    bind.signal("STOP");
    std::thread::sleep(INTERVAL * 2);
    backends.down("e2");
    let died = timeline.now();
    let one: BTreeSet<Ipv4Addr> = [ip(1)].into();
    // Detection, one round, and at most the read half of one round's deadline
    // (2 s for this interval) spent on BIND before it is known unavailable.
    let bound = detection_bound() + Duration::from_secs(1);
    let failed_over = app.wait_for(bound, &one) && solo.wait_for(bound, &one);
    let took = timeline.now() - died;
    assert!(failed_over, "the embedded server fails over while BIND hangs (after {took:?})\n{}", node.log());
    println!("failover on the embedded server while BIND hangs: {:.2}s after the kill", took.as_secs_f64());
    let unavailable = wait_until(Duration::from_secs(10), || {
        node.status().is_some_and(|s| {
            s["providersUnavailable"].as_array().is_some_and(|a| a.iter().any(|p| p["provider"] == "bind"))
        })
    });
    assert!(unavailable, "/v1/status names bind unavailable: {:?}", node.status());

    bind.signal("CONT");
    let only_e1: BTreeSet<String> = [ip(1).to_string()].into();
    let converged = wait_until(Duration::from_secs(90), || dig_set(&bind, APP) == only_e1);
    assert!(converged, "BIND converges to the current plan after it resumes\n{}", node.log());
    assert!(
        wait_until(Duration::from_secs(10), || node
            .status()
            .is_some_and(|s| s["providersUnavailable"].as_array().is_none_or(|a| a.is_empty()))),
        "bind is available again"
    );

    for (name, resolver) in [(APP, app), (SOLO, solo)] {
        let recording = resolver.stop();
        // Before the first publish the name does not exist yet; from then on it never empties.
        let published = recording.polls.iter().skip_while(|p| !matches!(p.outcome, Outcome::Answers(_)));
        let empty: Vec<_> = published.filter(|p| matches!(p.outcome, Outcome::Empty(_))).map(|p| p.at).collect();
        assert!(empty.is_empty(), "{name}: empty answers at {empty:?}");
        assert!(recording.polls.len() > 100, "{name}: the resolver polled throughout");
    }
}

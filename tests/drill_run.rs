//! Drills end to end: `veer run` with its embedded DNS server and real TCP
//! backends on loopback addresses, answers checked with `dig`, the drill driven
//! by its schedule or by `veer drill …`; then a leader drill between two
//! replicas on a real etcd, both publishing to a real BIND.

mod support;

use serde_json::Value;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::replica::{Replica, TcpBackend, dig, free_port, get, http, require_dig, wait_until};

const TOKEN: &str = "drill-admin-TOKEN-never-logged";

/// Three backends (`a`, `b`, `c`, capacity 100 each) listening on 127.0.0.{first..first+2}:port.
struct Backends {
    ips: [String; 3],
    port: u16,
    listeners: [Option<TcpBackend>; 3],
}

impl Backends {
    fn start(first: u8) -> Self {
        let port = free_port();
        let ips = [0, 1, 2].map(|i| format!("127.0.0.{}", first + i));
        let listeners = [0, 1, 2].map(|i| Some(TcpBackend::start(Ipv4Addr::new(127, 0, 0, first + i), port)));
        Self { ips, port, listeners }
    }

    fn all(&self) -> Vec<String> {
        self.ips.to_vec()
    }

    fn without(&self, i: usize) -> Vec<String> {
        self.ips.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, ip)| ip.clone()).collect()
    }

    /// Closes backend `i`: its probes are refused from now on.
    fn fail(&mut self, i: usize) {
        self.listeners[i] = None;
    }
}

/// A standalone controller with its embedded DNS on `dns` and admin API on `admin`,
/// one policy `app` over the backends, and `drills` appended to the policy file.
fn write_setup(dir: &Path, admin: u16, dns: u16, backends: &Backends, min_capacity: u32, drills: &str) {
    std::fs::write(
        dir.join("veer.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: drills\nvantage: r0\npolicies: [app.yaml]\n\
             admin: {{ listen: 127.0.0.1:{admin}, tokenEnv: VEER_TEST_ADMIN_TOKEN }}\n\
             coordination: {{ backend: standalone, stateFile: state.json }}\n\
             providers:\n  local: {{ type: embedded, listen: 127.0.0.1:{dns}, zones: [drill.test.] }}\n"
        ),
    )
    .unwrap();
    let [a, b, c] = &backends.ips;
    std::fs::write(
        dir.join("app.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: app }}\nspec:\n  \
             record: {{ name: app.drill.test., type: A, ttl: 5 }}\n  publishTo: [local]\n  routing: weighted\n  \
             pools: [{{ name: p, endpoints: [{{ id: a, address: {a} }}, {{ id: b, address: {b} }}, {{ id: c, address: {c} }}] }}]\n  \
             healthCheck: {{ type: tcp, port: {}, interval: 500ms, timeout: 250ms, rise: 1, fall: 2 }}\n  \
             warmup: {{ stages: [50, 100], hold: 1s }}\n  guards: {{ minHealthyEndpoints: 1, minCapacityPercent: {min_capacity} }}\n\
             ---\n{drills}",
            backends.port
        ),
    )
    .unwrap();
}

/// A daily window from a minute ago to half an hour from now (UTC), crossing
/// midnight when the test runs late in the day.
fn window_now() -> String {
    let minute = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() / 60 % 1440;
    let hhmm = |m: u64| format!("{:02}:{:02}", m / 60, m % 60);
    format!("daily {}-{}", hhmm((minute + 1439) % 1440), hhmm((minute + 30) % 1440))
}

fn drill(name: &str, target: &str, extra: &str) -> String {
    format!(
        "apiVersion: veer/v1\nkind: Drill\nmetadata: {{ name: {name} }}\nspec:\n  target: {target}\n  policy: app\n{extra}---\n"
    )
}

fn veer(dir: &Path, args: &[&str], admin: u16) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veer"))
        .args(args)
        .current_dir(dir)
        .env("VEER_SERVER", format!("http://127.0.0.1:{admin}"))
        .env("VEER_TOKEN", TOKEN)
        .env("VEER_AUTHOR", "ci")
        .output()
        .expect("veer runs")
}

/// Runs `veer ARGS` until it succeeds (a preflight waits for warm-up to end), for 20 s at most.
fn veer_until_ok(dir: &Path, args: &[&str], admin: u16) -> Output {
    let mut out = veer(dir, args, admin);
    let ok = wait_until(Duration::from_secs(20), || {
        if !out.status.success() {
            out = veer(dir, args, admin);
        }
        out.status.success()
    });
    assert!(ok, "veer {} kept failing: {}", args.join(" "), text(&out));
    out
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn report(admin: u16, drill: &str) -> Option<Value> {
    match get(admin, &format!("/v1/drills/{drill}/report")) {
        Some((200, body)) => serde_json::from_str(&body).ok(),
        _ => None,
    }
}

fn steps(report: &Value) -> Vec<(u64, String, String)> {
    report["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["at"].as_u64().unwrap(),
                s["step"].as_str().unwrap().to_string(),
                s["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn start(dir: &Path) -> Replica {
    Replica::start(dir, &[], &[("VEER_TEST_ADMIN_TOKEN", TOKEN)])
}

#[test]
fn a_scheduled_drill_drains_holds_and_restores_through_warm_up_with_every_step_reported() {
    require_dig();
    let dir = tempfile::tempdir().unwrap();
    let (admin, dns) = (free_port(), free_port());
    let backends = Backends::start(121);
    let schedule = format!("  schedule: {{ windows: \"{}\" }}\n  duration: 3s\n", window_now());
    write_setup(dir.path(), admin, dns, &backends, 30, &drill("rehearse-a", "a", &schedule));
    let mut child = start(dir.path());

    // The drill starts by itself once the record is calm; `a` disappears from DNS.
    let mut drained_seen = false;
    let finished = wait_until(Duration::from_secs(60), || {
        if dig(dns, "app.drill.test.") == backends.without(0) {
            drained_seen = true;
        }
        report(admin, "rehearse-a").is_some_and(|r| r["phase"] == "finished")
    });
    assert!(finished, "the drill finished within 60 s: {:?}\n{}", report(admin, "rehearse-a"), child.log());
    let report = report(admin, "rehearse-a").unwrap();
    assert_eq!(report["outcome"], "ok", "{report:#}");
    assert!(drained_seen, "a resolver saw the drain: {report:#}");
    assert_eq!(report["trigger"]["kind"], "schedule");
    let steps = steps(&report);
    let kinds: Vec<&str> = steps.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["preflight", "drain", "drained", "held", "lift", "stage", "stage", "restored", "done"],
        "{report:#}"
    );
    assert!(steps.windows(2).all(|w| w[0].0 <= w[1].0), "steps carry times in order: {steps:?}");
    let at = |kind: &str| steps.iter().find(|(_, k, _)| k == kind).unwrap().0;
    assert!(at("held") - at("drained") >= 3_000, "held drained for the drill's duration: {steps:?}");
    let stages: Vec<&str> =
        steps.iter().filter(|(_, k, _)| k == "stage").map(|(_, _, d)| d.split(" (").next().unwrap()).collect();
    assert_eq!(stages, ["a at 50%", "a at 100%"], "every warm-up stage read back");
    for figure in ["timeToDetectMs", "timeToRestoreMs", "durationMs"] {
        assert!(report["measures"][figure].as_u64().is_some(), "{figure} measured: {report:#}");
    }
    assert_eq!(sorted(dig(dns, "app.drill.test.")), backends.all(), "restored");
    println!("scheduled drill: {}", report["measures"]);

    // The drain went through the audited override path and shows in the history.
    let log = child.log();
    assert!(log.contains("override created") && log.contains("drill:rehearse-a"), "{log}");
    let (_, history) = get(admin, "/v1/history?record=app.drill.test.").unwrap();
    assert!(
        history.contains("\"drill\":\"rehearse-a\"") && history.contains("drained by drill-rehearse-a"),
        "{history}"
    );
    let (_, metrics) = get(admin, "/metrics").unwrap();
    assert!(metrics.contains("veer_drill_runs_total{drill=\"rehearse-a\",outcome=\"ok\"} 1"), "{metrics}");
    let restore = metrics
        .lines()
        .find_map(|l| l.strip_prefix("veer_drill_time_to_restore_seconds{drill=\"rehearse-a\"} "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(restore.is_some_and(|s| s > 0.5), "time to restore exported: {metrics}");

    // The command line shows the same report and the list.
    let out = veer(dir.path(), &["drill", "report", "rehearse-a"], admin);
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    for expected in ["outcome: ok", "time to restore", "drained", "a at 50%", "restored"] {
        assert!(shown.contains(expected), "`{expected}` missing from:\n{shown}");
    }
    let out = veer(dir.path(), &["drill", "list"], admin);
    assert!(out.status.success() && text(&out).contains("ok at "), "{}", text(&out));

    // `veer history` lists the run with its outcome, among the plans and override events, newest first.
    let out = veer(dir.path(), &["history", "app"], admin);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("drill     rehearse-a on app/endpoint/a (app.drill.test.): ok\n"), "{shown}");
    assert!(shown.contains("scheduled by veer · took "), "{shown}");
    println!("veer history app:\n{shown}");
    let out = veer(dir.path(), &["history", "-o", "json"], admin);
    assert!(out.status.success(), "{}", text(&out));
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries = history["entries"].as_array().unwrap();
    let times: Vec<u64> = entries.iter().filter_map(|e| e["atMs"].as_u64()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {history:#}");
    let position = |kind: &str, matches: &dyn Fn(&Value) -> bool| {
        entries.iter().position(|e| e["kind"] == kind && matches(e)).unwrap_or_else(|| panic!("no {kind}: {history:#}"))
    };
    let drill_entry = position("drill", &|e| e["drill"] == "rehearse-a");
    assert_eq!(entries[drill_entry]["outcome"], "ok", "{history:#}");
    assert!(entries[drill_entry]["measures"]["timeToRestoreMs"].is_u64(), "{history:#}");
    let drain_plan = position("plan", &|e| e.to_string().contains("drained by drill-rehearse-a"));
    let drain_created = position("override", &|e| e["event"] == "created" && e["reason"] == "drill:rehearse-a");
    let drain_lifted = position("override", &|e| e["event"] == "deleted" && e["by"] == "veer");
    assert_eq!(entries[drain_lifted]["reason"], "drill:rehearse-a: hold over", "{history:#}");
    assert!(
        drain_lifted < drain_plan && drain_plan < drill_entry && drain_created < drill_entry,
        "the run's plans and events are newer than its start, the lift newer than the drain: {history:#}"
    );

    // `veer status` and the status page show the last result and the next scheduled run (tomorrow's window).
    let out = veer(dir.path(), &["status"], admin);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("last drill: rehearse-a ok at "), "{shown}");
    assert!(shown.contains("next drill: rehearse-a on app/endpoint/a at "), "{shown}");
    let (_, page) = get(admin, "/").unwrap();
    assert!(
        page.contains("id=\"last-drill\">last <b>rehearse-a</b> on app/endpoint/a <span class=\"badge ok\">ok</span>"),
        "{page}"
    );
    assert!(page.contains("id=\"next-drill\">next <b>rehearse-a</b> on app/endpoint/a at <time>"), "{page}");
    assert!(!page.contains("id=\"running-drill\""), "nothing runs now: {page}");
    assert!(child.terminate(Duration::from_secs(20)).is_some_and(|s| s.success()));
    assert!(!child.log().contains(TOKEN), "the token never reaches the logs");
    drop(backends);
}

#[test]
fn a_drill_aborts_when_another_endpoint_fails_and_restores_at_once() {
    require_dig();
    let dir = tempfile::tempdir().unwrap();
    let (admin, dns) = (free_port(), free_port());
    let mut backends = Backends::start(131);
    write_setup(dir.path(), admin, dns, &backends, 30, &drill("rehearse-a", "a", "  duration: 60s\n"));
    let mut child = start(dir.path());
    assert!(wait_until(Duration::from_secs(30), || sorted(dig(dns, "app.drill.test.")) == backends.all()));
    let out = veer(dir.path(), &["drill", "abort", "rehearse-a"], admin);
    assert_eq!(out.status.code(), Some(1), "nothing to abort: {}", text(&out));

    // On request; the preflight waits for the warm-up to end, so retry until it clears.
    veer_until_ok(dir.path(), &["drill", "run", "rehearse-a", "--dry-run"], admin);
    // Without --yes the drill's name must be typed; no answer (stdin closed) changes nothing.
    let out = veer(dir.path(), &["drill", "run", "rehearse-a"], admin);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("Type \"rehearse-a\" to confirm") && text(&out).contains("not confirmed"));
    std::thread::sleep(Duration::from_secs(2));
    assert!(report(admin, "rehearse-a").is_none(), "nothing was filed: the leader started no run");
    let out = veer_until_ok(dir.path(), &["drill", "run", "rehearse-a", "--yes"], admin);
    assert!(text(&out).contains("answers: a 33%, b 33%, c 33% → b 50%, c 50%"), "impact shown: {}", text(&out));
    let holding =
        wait_until(Duration::from_secs(20), || report(admin, "rehearse-a").is_some_and(|r| r["phase"] == "holding"));
    assert!(holding, "{:?}", report(admin, "rehearse-a"));
    assert_eq!(sorted(dig(dns, "app.drill.test.")), backends.without(0), "a drained");
    let out = veer(dir.path(), &["status"], admin);
    assert!(text(&out).contains("drill running: rehearse-a on app/endpoint/a, holding since "), "{}", text(&out));
    let (_, page) = get(admin, "/").unwrap();
    assert!(page.contains("id=\"running-drill\"><b>Drill running:</b> <b>rehearse-a</b>"), "{page}");

    backends.fail(1);
    let failed_at = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let back = wait_until(Duration::from_secs(20), || dig(dns, "app.drill.test.").contains(&backends.ips[0]));
    assert!(back, "a is published again long before its 60 s hold ends: {:?}", report(admin, "rehearse-a"));
    let finished =
        wait_until(Duration::from_secs(30), || report(admin, "rehearse-a").is_some_and(|r| r["phase"] == "finished"));
    let report = report(admin, "rehearse-a").unwrap();
    assert!(finished, "{report:#}");
    assert_eq!(report["outcome"], "aborted", "{report:#}");
    assert!(report["reason"].as_str().unwrap().contains("endpoint b of app is unhealthy"), "{report:#}");
    let steps = steps(&report);
    let abort = steps.iter().position(|(_, k, _)| k == "abort").expect("an abort step");
    assert_eq!(steps[abort + 1].1, "lift", "lifted in the same tick: {steps:?}");
    assert!(steps[abort].0 >= failed_at && steps[abort].0 - failed_at < 10_000, "aborted soon after b failed");
    assert!(!steps.iter().any(|(_, k, _)| k == "held"), "the hold never completed");
    let stages = steps.iter().filter(|(_, k, _)| k == "stage").count();
    assert_eq!(stages, 2, "the return still went through warm-up: {steps:?}");
    assert_eq!(sorted(dig(dns, "app.drill.test.")), [backends.ips[0].clone(), backends.ips[2].clone()]);
    let out = veer(dir.path(), &["history", "app.drill.test."], admin);
    let shown = text(&out);
    assert!(shown.contains("rehearse-a on app/endpoint/a (app.drill.test.): aborted\n"), "{shown}");
    assert!(shown.contains("on request by ci") && shown.contains("endpoint b of app is unhealthy"), "{shown}");
    assert!(child.terminate(Duration::from_secs(20)).is_some());
}

#[test]
fn a_drill_that_would_breach_min_capacity_is_refused() {
    require_dig();
    let dir = tempfile::tempdir().unwrap();
    let (admin, dns) = (free_port(), free_port());
    let backends = Backends::start(141);
    let scheduled = format!("  schedule: {{ windows: \"{}\" }}\n", window_now());
    let drills = format!("{}{}", drill("manual-a", "a", ""), drill("scheduled-b", "b", &scheduled));
    // Draining one of three endpoints leaves 67 %, below the 70 % guard.
    write_setup(dir.path(), admin, dns, &backends, 70, &drills);
    let mut child = start(dir.path());
    assert!(wait_until(Duration::from_secs(30), || sorted(dig(dns, "app.drill.test.")) == backends.all()));

    let refused =
        wait_until(Duration::from_secs(30), || report(admin, "scheduled-b").is_some_and(|r| r["outcome"] == "refused"));
    let report_b = report(admin, "scheduled-b");
    assert!(refused, "the scheduled run is refused and recorded: {report_b:?}\n{}", child.log());
    let reason = report_b.unwrap()["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("refused by a guard") && reason.contains("minCapacityPercent 70"), "{reason}");

    let out = veer(dir.path(), &["drill", "run", "manual-a", "--dry-run"], admin);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("minCapacityPercent"), "{}", text(&out));
    let out = veer(dir.path(), &["drill", "run", "manual-a", "--yes"], admin);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let (status, body) = http(admin, "POST", "/v1/drills/manual-a/run", None, "").unwrap();
    assert_eq!(status, 401, "the token is required: {body}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(sorted(dig(dns, "app.drill.test.")), backends.all(), "nothing was drained");
    assert!(report(admin, "manual-a").is_none(), "a refused request never reaches the leader");
    let (_, metrics) = get(admin, "/metrics").unwrap();
    assert!(metrics.contains("veer_drill_runs_total{drill=\"scheduled-b\",outcome=\"refused\"} 1"), "{metrics}");
    assert!(child.terminate(Duration::from_secs(20)).is_some());
}

#[path = "coord_support/etcd.rs"]
#[allow(dead_code)]
mod etcd;

/// `(gen, epoch)` of the ownership record `_veer.<name>` at BIND.
fn ownership(bind: &veer_provider_testbed::DnsServer, name: &str) -> Option<(u64, u64)> {
    let txt = bind.dig(&format!("_veer.{name}"), "TXT").join("").replace('"', "");
    let field = |key: &str| txt.split(';').find_map(|f| f.strip_prefix(key)).and_then(|v| v.trim().parse().ok());
    Some((field("gen=")?, field("epoch=")?))
}

fn leaders(admins: &[u16]) -> Vec<usize> {
    (0..admins.len())
        .filter(|i| {
            get(admins[*i], "/metrics").is_some_and(|(_, m)| support::replica::gauge(&m, "veer_leader") == Some(1.0))
        })
        .collect()
}

#[test]
fn a_leader_drill_hands_over_to_the_other_replica_without_losing_or_repeating_a_write() {
    use veer_provider_testbed::{DnsServer, ServerKind, ZoneSpec};
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let Some(etcd) = runtime.block_on(etcd::Etcd::start(1)) else { return };
    let Some(bind) = DnsServer::start(ServerKind::Bind, &ZoneSpec::new("drill.test.")) else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _a = TcpBackend::start(Ipv4Addr::new(127, 0, 0, 151), port);
    let _b = TcpBackend::start(Ipv4Addr::new(127, 0, 0, 152), port);
    let key = bind.key();
    std::fs::write(
        dir.path().join("veer.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: handover\nvantage: ${{V}}\npolicies: [app.yaml]\n\
             admin: {{ listen: \"127.0.0.1:${{ADMIN}}\", tokenEnv: VEER_TEST_ADMIN_TOKEN }}\n\
             coordination:\n  backend: etcd\n  etcd: {{ endpoints: [{}] }}\n  \
             leaseDuration: 3s\n  renewDeadline: 2s\n  retryPeriod: 500ms\n\
             providers:\n  bind:\n    type: rfc2136\n    server: {}\n    zones: [drill.test.]\n    \
             tsig: {{ name: {}, algorithm: {}, secretEnv: VEER_TEST_TSIG }}\n",
            etcd.endpoints()[0],
            bind.addr(),
            key.name,
            key.algorithm
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("app.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: app }}\nspec:\n  \
             record: {{ name: app.drill.test., type: A, ttl: 5 }}\n  publishTo: [bind]\n  routing: weighted\n  \
             pools: [{{ name: p, endpoints: [{{ id: a, address: 127.0.0.151 }}, {{ id: b, address: 127.0.0.152 }}] }}]\n  \
             healthCheck: {{ type: tcp, port: {port}, interval: 500ms, timeout: 250ms, rise: 1, fall: 2 }}\n  \
             warmup: {{ stages: [100], hold: 1s, maxJoinPercent: 100 }}\n  guards: {{ minCapacityPercent: 40 }}\n\
             ---\napiVersion: veer/v1\nkind: Drill\nmetadata: {{ name: handover }}\nspec: {{ target: leader }}\n"
        ),
    )
    .unwrap();
    let admins = [free_port(), free_port()];
    let mut replicas: Vec<Replica> = (0..2)
        .map(|i| {
            let (v, admin) = (format!("r{i}"), admins[i].to_string());
            let env = [("V", v.as_str()), ("ADMIN", admin.as_str()), ("VEER_TEST_TSIG", key.secret_base64.as_str())];
            Replica::start(dir.path(), &[], &[env.as_slice(), &[("VEER_TEST_ADMIN_TOKEN", TOKEN)]].concat())
        })
        .collect();
    let both = ["127.0.0.151".to_string(), "127.0.0.152".to_string()];
    let mut leader = Vec::new();
    assert!(
        wait_until(Duration::from_secs(40), || {
            leader = leaders(&admins);
            leader.len() == 1 && bind.dig("app.drill.test.", "A") == both
        }),
        "one leader publishes both endpoints to BIND:\n{}\n{}",
        replicas[0].log(),
        replicas[1].log()
    );
    let (old, new) = (leader[0], 1 - leader[0]);

    // A change before the hand-over: drain b.
    let drain =
        r#"{"action":{"kind":"drain","target":{"kind":"endpoint","name":"b"}},"reason":"before","author":"ci"}"#;
    let (status, body) = http(admins[old], "POST", "/v1/overrides", Some(TOKEN), drain).unwrap();
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["override"]["id"].as_str().unwrap().to_string();
    assert!(wait_until(Duration::from_secs(20), || bind.dig("app.drill.test.", "A") == both[..1]), "b drained");
    std::thread::sleep(Duration::from_secs(1));
    let (generation, old_epoch) = ownership(&bind, "app.drill.test.").expect("an ownership record");

    let out = veer(dir.path(), &["drill", "run", "handover", "--yes"], admins[old]);
    assert!(out.status.success(), "{}", text(&out));
    let done = wait_until(Duration::from_secs(40), || {
        report(admins[new], "handover").is_some_and(|r| r["phase"] == "finished")
    });
    let report = report(admins[new], "handover").unwrap();
    assert!(done, "{report:#}\n{}", replicas[new].log());
    assert_eq!(report["outcome"], "ok", "{report:#}");
    assert!(wait_until(Duration::from_secs(10), || leaders(&admins) == [new]), "the other replica leads now");
    let take_over = steps(&report).into_iter().find(|(_, k, _)| k == "take-over").expect("a take-over step").2;
    let new_epoch: u64 =
        take_over.split("with epoch ").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
    assert!(
        take_over.starts_with(&format!("r{new} leads")) && take_over.contains(&format!("was r{old}")),
        "{take_over}"
    );
    assert!(new_epoch > old_epoch, "the new epoch {new_epoch} is above {old_epoch}");
    assert!(report["measures"]["takeOverMs"].as_u64().is_some_and(|ms| ms < 15_000), "{report:#}");
    println!("leader drill: {}", report["measures"]);

    // Nothing was written again by the new leader: same generation, old epoch.
    assert_eq!(ownership(&bind, "app.drill.test."), Some((generation, old_epoch)), "no write repeated");
    assert_eq!(bind.dig("app.drill.test.", "A"), both[..1], "the drain survived the hand-over");

    // The next change is applied exactly once, by the new leader.
    let (status, _) = http(admins[new], "DELETE", &format!("/v1/overrides/{id}"), Some(TOKEN), "").unwrap();
    assert_eq!(status, 204);
    let back = wait_until(Duration::from_secs(20), || bind.dig("app.drill.test.", "A") == both);
    assert!(back, "b back:\n{}", replicas[new].log());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(ownership(&bind, "app.drill.test."), Some((generation + 1, new_epoch)), "one write, new epoch");
    let (_, history) = get(admins[new], "/v1/history?record=app.drill.test.").unwrap();
    let history: Vec<Value> = serde_json::from_str(&history).unwrap();
    let generations: Vec<u64> = history.iter().filter_map(|e| e["generation"].as_u64()).collect();
    assert!(generations.windows(2).all(|w| w[1] == w[0] + 1), "contiguous plan history: {generations:?}");
    assert_eq!(generations.last(), Some(&(generation + 1)), "every write has its plan: {generations:?}");
    assert!(!history.iter().any(|e| e["drill"] == "handover"), "a leader drill applies to no record");
    let (_, all) = get(admins[new], "/v1/history").unwrap();
    assert!(all.contains("\"drill\":\"handover\""), "the drill is in the full history: {all}");

    let out = veer(dir.path(), &["drill", "report", "handover"], admins[new]);
    assert!(text(&out).contains("take-over") && text(&out).contains("outcome: ok"), "{}", text(&out));
    let out = veer(dir.path(), &["history"], admins[new]);
    assert!(text(&out).contains("drill     handover on leader: ok\n"), "{}", text(&out));
    for replica in &mut replicas {
        assert!(replica.terminate(Duration::from_secs(20)).is_some());
    }
}

#[test]
fn a_drill_in_progress_continues_on_the_next_leader() {
    require_dig();
    let dir = tempfile::tempdir().unwrap();
    let (admin, dns) = (free_port(), free_port());
    let backends = Backends::start(161);
    write_setup(dir.path(), admin, dns, &backends, 30, &drill("rehearse-a", "a", "  duration: 4s\n"));
    let mut first = start(dir.path());
    assert!(wait_until(Duration::from_secs(30), || sorted(dig(dns, "app.drill.test.")) == backends.all()));
    veer_until_ok(dir.path(), &["drill", "run", "rehearse-a", "--yes"], admin);
    assert!(
        wait_until(Duration::from_secs(20), || report(admin, "rehearse-a").is_some_and(|r| r["phase"] == "holding"))
    );

    // The leader goes away mid-drill; the next one (a new epoch) picks the run up from the store.
    assert!(first.terminate(Duration::from_secs(20)).is_some_and(|s| s.success()), "{}", first.log());
    let mut second = start(dir.path());
    let finished =
        wait_until(Duration::from_secs(60), || report(admin, "rehearse-a").is_some_and(|r| r["phase"] == "finished"));
    let report = report(admin, "rehearse-a").unwrap();
    assert!(finished, "{report:#}\n{}", second.log());
    assert_eq!(report["outcome"], "ok", "{report:#}");
    let kinds: Vec<String> = steps(&report).into_iter().map(|(_, k, _)| k).collect();
    assert_eq!(kinds[..5], ["preflight", "drain", "drained", "held", "lift"], "{report:#}");
    assert!(second.log().contains("step=Held"), "the second leader ended the hold: {}", second.log());
    assert_eq!(sorted(dig(dns, "app.drill.test.")), backends.all(), "restored");
    assert!(second.terminate(Duration::from_secs(20)).is_some());
}

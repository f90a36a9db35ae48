//! `veer plan` and `veer run --once` end to end: the built binary against a real
//! BIND 9 (RFC 2136 + TSIG) and real HTTP backends on loopback addresses; every
//! result is checked with a real DNS query.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use support::{HttpServer, Script};
use veer_provider_testbed::{DnsServer, ServerKind, ZoneSpec, free_port};

fn veer(dir: &Path, args: &[&str], secret: &str) -> Output {
    veer_with(dir, args, &[("VEER_TEST_TSIG", secret)])
}

fn veer_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_veer"));
    command.args(args).current_dir(dir).env_remove("VEER_CONFIG");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("veer runs")
}

/// A controller config publishing to `bind` over RFC 2136, the TSIG secret in `VEER_TEST_TSIG`.
fn write_bind_config(dir: &Path, bind: &DnsServer, cluster: &str, policy: &str) {
    let key = bind.key();
    let config = format!(
        "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: {cluster}\npolicies: [{policy}]\n\
         coordination: {{ backend: standalone, stateFile: state.json }}\n\
         providers:\n  bind:\n    type: rfc2136\n    server: {}\n    zones: [example.test.]\n    \
         tsig: {{ name: {}, algorithm: {}, secretEnv: VEER_TEST_TSIG }}\n",
        bind.addr(),
        key.name,
        key.algorithm
    );
    std::fs::write(dir.join("veer.yaml"), config).unwrap();
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_pending_changes_and_run_once_applies_them_to_bind() {
    let Some(bind) = DnsServer::start(ServerKind::Bind, &ZoneSpec::new("example.test.")) else { return };
    let port = free_port();
    let a = HttpServer::start_on(format!("127.0.0.41:{port}").parse().unwrap(), Script::ok("ok"), None).await;
    let b = HttpServer::start_on(format!("127.0.0.42:{port}").parse().unwrap(), Script::ok("ok"), None).await;
    let dir = tempfile::tempdir().unwrap();
    let key = bind.key();
    write_bind_config(dir.path(), &bind, "t1", "app.yaml");
    std::fs::write(
        dir.path().join("app.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: app }}\nspec:\n  \
             record: {{ name: app.example.test., type: A, ttl: 5 }}\n  publishTo: [bind]\n  routing: weighted\n  \
             pools:\n    - name: p\n      endpoints:\n        - {{ id: a, address: 127.0.0.41 }}\n        \
             - {{ id: b, address: 127.0.0.42 }}\n  \
             healthCheck: {{ type: http, port: {port}, path: /healthz, interval: 1s, timeout: 500ms }}\n  \
             warmup: {{ stages: [100], maxJoinPercent: 100 }}\n  shift: {{ maxRemovePercent: 50 }}\n  \
             guards: {{ minHealthyEndpoints: 1, minCapacityPercent: 0 }}\n"
        ),
    )
    .unwrap();
    let secret = key.secret_base64.clone();
    let d = dir.path().to_path_buf();
    let run = move |args: &'static [&'static str]| {
        let (d, s) = (d.clone(), secret.clone());
        tokio::task::spawn_blocking(move || veer(&d, args, &s))
    };

    let plan = run(&["plan", "-c", "veer.yaml"]).await.unwrap();
    assert_eq!(plan.status.code(), Some(2), "changes pending:\n{}", text(&plan));
    assert!(bind.dig("app.example.test.", "A").is_empty(), "plan writes nothing");

    let once = run(&["run", "--once", "-c", "veer.yaml"]).await.unwrap();
    assert_eq!(once.status.code(), Some(0), "{}", text(&once));
    assert_eq!(sorted(bind.dig("app.example.test.", "A")), ["127.0.0.41", "127.0.0.42"]);
    let txt = bind.dig("_veer.app.example.test.", "TXT").join(" ");
    assert!(txt.contains("owner=t1;gen=1;epoch="), "ownership record: {txt}");

    let again = run(&["plan", "-c", "veer.yaml"]).await.unwrap();
    assert_eq!(again.status.code(), Some(0), "converged, nothing to write:\n{}", text(&again));

    b.set(Script::status(503));
    let failover = run(&["run", "--once", "-c", "veer.yaml"]).await.unwrap();
    assert_eq!(failover.status.code(), Some(0), "{}", text(&failover));
    assert_eq!(bind.dig("app.example.test.", "A"), ["127.0.0.41"]);
    let txt = bind.dig("_veer.app.example.test.", "TXT").join(" ");
    assert!(txt.contains("owner=t1;gen=2;"), "generation moves on: {txt}");

    for out in [&plan, &once, &again, &failover] {
        assert!(!text(out).contains(&key.secret_base64), "the TSIG secret never appears in output");
    }
    drop(a);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_refuses_a_name_that_another_owner_holds() {
    let mut spec = ZoneSpec::new("example.test.");
    spec.records.push("legacy 300 IN A 192.0.2.99".into());
    let Some(bind) = DnsServer::start(ServerKind::Bind, &spec) else { return };
    let port = free_port();
    let _a = HttpServer::start_on(format!("127.0.0.43:{port}").parse().unwrap(), Script::ok("ok"), None).await;
    let dir = tempfile::tempdir().unwrap();
    let key = bind.key();
    write_bind_config(dir.path(), &bind, "t2", "legacy.yaml");
    std::fs::write(
        dir.path().join("legacy.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: legacy }}\nspec:\n  \
             record: {{ name: legacy.example.test., type: A }}\n  publishTo: [bind]\n  routing: weighted\n  \
             pools: [{{ name: p, endpoints: [{{ id: a, address: 127.0.0.43 }}] }}]\n  \
             healthCheck: {{ type: http, port: {port}, interval: 1s, timeout: 500ms }}\n  \
             warmup: {{ stages: [100] }}\n"
        ),
    )
    .unwrap();
    let (d, s) = (dir.path().to_path_buf(), key.secret_base64.clone());
    let out = tokio::task::spawn_blocking(move || veer(&d, &["run", "--once", "-c", "veer.yaml"], &s)).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("has answers but no ownership record"), "{}", text(&out));
    assert_eq!(bind.dig("legacy.example.test.", "A"), ["192.0.2.99"], "the unowned name is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_applies_through_powerdns_by_rfc2136_with_api_reads() {
    let Some(pdns) = DnsServer::start(ServerKind::PowerDns, &ZoneSpec::new("example.test.")) else { return };
    let api = pdns.http_api().expect("PowerDNS has an HTTP API").clone();
    let port = free_port();
    let _a = HttpServer::start_on(format!("127.0.0.44:{port}").parse().unwrap(), Script::ok("ok"), None).await;
    let dir = tempfile::tempdir().unwrap();
    let key = pdns.key();
    std::fs::write(
        dir.path().join("veer.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: t3\npolicies: [app.yaml]\n\
             coordination: {{ backend: standalone, stateFile: state.json }}\n\
             providers:\n  pdns:\n    type: powerdns\n    apiUrl: {}\n    apiKeyEnv: VEER_TEST_PDNS_KEY\n    \
             server: {}\n    zones: [example.test.]\n    \
             tsig: {{ name: {}, algorithm: {}, secretEnv: VEER_TEST_TSIG }}\n",
            api.base_url,
            pdns.addr(),
            key.name,
            key.algorithm
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("app.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: app }}\nspec:\n  \
             record: {{ name: app.example.test., type: A, ttl: 5 }}\n  publishTo: [pdns]\n  routing: weighted\n  \
             pools: [{{ name: p, endpoints: [{{ id: a, address: 127.0.0.44 }}] }}]\n  \
             healthCheck: {{ type: http, port: {port}, interval: 1s, timeout: 500ms }}\n  \
             warmup: {{ stages: [100] }}\n"
        ),
    )
    .unwrap();
    let (d, tsig, api_key) = (dir.path().to_path_buf(), key.secret_base64.clone(), api.api_key.clone());
    let env = move || vec![("VEER_TEST_TSIG", tsig.clone()), ("VEER_TEST_PDNS_KEY", api_key.clone())];
    let run = |args: &'static [&'static str]| {
        let (d, env) = (d.clone(), env());
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            veer_with(&d, args, &env)
        })
    };
    let once = run(&["run", "--once", "-c", "veer.yaml"]).await.unwrap();
    assert_eq!(once.status.code(), Some(0), "{}", text(&once));
    assert_eq!(pdns.dig("app.example.test.", "A"), ["127.0.0.44"]);
    assert!(pdns.dig("_veer.app.example.test.", "TXT").join(" ").contains("owner=t3;gen=1;"));
    let again = run(&["plan", "-c", "veer.yaml"]).await.unwrap();
    assert_eq!(again.status.code(), Some(0), "converged:\n{}", text(&again));
    for out in [&once, &again] {
        assert!(!text(out).contains(&key.secret_base64) && !text(out).contains(&api.api_key), "no secret in output");
    }
}

//! `veer check`, the built binary, against real servers on loopback.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use support::{HttpServer, Script, refused_port};

fn write_config(dir: &Path, policy_yaml: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("policies/api.yaml"), policy_yaml).unwrap();
    let config = dir.join("veer.yaml");
    std::fs::write(
        &config,
        "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: test\npolicies: [policies/]\n\
         providers:\n  local: { type: embedded, zones: [example.test.] }\n",
    )
    .unwrap();
    config
}

/// Runs the binary off the async runtime so the test's servers keep serving.
async fn veer(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || Command::new(env!("CARGO_BIN_EXE_veer")).args(&args).output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn check_of(port: u16) -> String {
    format!("{{ type: http, port: {port}, path: /healthz, interval: 10s, timeout: 2s }}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_exits_zero_and_prints_a_table_when_every_endpoint_is_healthy() {
    let server = HttpServer::start(Script::ok("ok")).await;
    let dir = tempfile::tempdir().unwrap();
    let endpoints = [
        "{ id: use1-a, address: 192.0.2.10, check: { address: 127.0.0.1 } }",
        "{ id: use1-b, address: 192.0.2.11, check: { address: 127.0.0.1 } }",
    ];
    let config = write_config(dir.path(), &support::policy_yaml("api", &check_of(server.addr.port()), &endpoints));
    let out = veer(vec!["check".into(), "-c".into(), config.display().to_string()]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("POLICY") && lines[0].contains("REASON"), "{stdout}");
    assert!(lines[1].contains("use1-a") && lines[1].contains(" up "), "{stdout}");
    assert!(lines.iter().all(|l| l.chars().count() <= 80), "{stdout}");
    assert_eq!(lines.last(), Some(&"2 endpoints: 2 up, 0 down"));
    assert_eq!(server.seen().len(), 2, "each endpoint probed exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_exits_one_and_names_the_reason_when_an_endpoint_fails() {
    let server = HttpServer::start(Script::ok("ok")).await;
    let refused = refused_port();
    let dir = tempfile::tempdir().unwrap();
    let up = "{ id: use1-a, address: 192.0.2.10, check: { address: 127.0.0.1 } }".to_string();
    let down =
        format!("{{ id: use1-b, address: 192.0.2.11, check: {{ address: 127.0.0.1, port: {} }} }}", refused.port());
    let yaml = support::policy_yaml("api", &check_of(server.addr.port()), &[&up, &down]);
    let config = write_config(dir.path(), &yaml);
    let out = veer(vec!["check".into(), "-c".into(), config.display().to_string()]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    let line = stdout.lines().find(|l| l.contains("use1-b")).unwrap();
    assert!(line.contains("DOWN") && line.ends_with("connect refused"), "{stdout}");

    let out = veer(vec!["check".into(), "-c".into(), config.display().to_string(), "-o".into(), "json".into()]).await;
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["healthy"], 1);
    assert_eq!(doc["unhealthy"], 1);
    let failed = doc["endpoints"].as_array().unwrap().iter().find(|e| e["endpoint"] == "use1-b").unwrap();
    assert_eq!(failed["healthy"], false);
    assert_eq!(failed["reason"], "connect refused");
    assert_eq!(failed["address"], format!("127.0.0.1:{}", refused.port()));
    assert_eq!(failed["pool"], "main");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_config_errors_with_positions_and_exits_one() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = support::policy_yaml("api", "{ type: http, port: 80, rise: 0 }", &["{ id: e1, address: 192.0.2.1 }"]);
    let config = write_config(dir.path(), &yaml);
    let out = veer(vec!["check".into(), "-c".into(), config.display().to_string()]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing is probed when the config is invalid");
    assert!(stderr.contains("api.yaml:") && stderr.contains(": error: "), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_without_a_config_explains_what_to_give() {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || {
            Command::new(env!("CARGO_BIN_EXE_veer")).arg("check").current_dir(dir).env_remove("VEER_CONFIG").output()
        }
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("veer check -c veer.yaml"), "{}", text(&out.stderr));
}

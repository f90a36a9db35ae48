//! `veer run --once` and `veer plan` against Route 53 as served by a real
//! `moto_server` (SDK wiring, weighted record sets, the ownership record): the
//! first round publishes, the next plans nothing (I9: what is read back equals
//! what was written). Conflict semantics are tested on the CAS-faithful fake in
//! `providers/route53`.

mod support;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{HttpServer, Script};

struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> Option<PathBuf> {
    std::env::var_os("VEER_MOTO_SERVER").map(PathBuf::from).filter(|p| p.exists()).or_else(|| {
        std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).map(|d| d.join("moto_server")).find(|p| p.exists()))
    })
}

fn start_moto() -> Option<Moto> {
    let Some(binary) = moto_binary() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "moto_server not found: run scripts/test (it installs moto in .venv)"
        );
        eprintln!("SKIPPED route53_run: moto_server not found (set VEER_MOTO_SERVER or run scripts/test)");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(binary)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let moto = Moto { child, port };
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "moto did not listen within 60 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(moto)
}

/// The plain SDK against moto on `port` (as an operator would use it).
fn moto_client(port: u16) -> aws_sdk_route53::Client {
    let config = aws_sdk_route53::Config::builder()
        .behavior_version(veer_provider_route53::behavior_version())
        .region(aws_sdk_route53::config::Region::new("us-east-1"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .credentials_provider(aws_sdk_route53::config::Credentials::new("AKIDMOTO", "not-checked", None, None, "test"))
        .build();
    aws_sdk_route53::Client::from_conf(config)
}

/// Creates a hosted zone in moto.
async fn create_zone(port: u16, zone: &str) {
    moto_client(port)
        .create_hosted_zone()
        .name(zone)
        .caller_reference(format!("veer-{zone}"))
        .send()
        .await
        .expect("zone created");
}

fn veer(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veer"))
        .args(args)
        .current_dir(dir)
        .env_remove("VEER_CONFIG")
        .env("AWS_ACCESS_KEY_ID", "AKIDVEERMOTO")
        .env("AWS_SECRET_ACCESS_KEY", "veerMOTOsecretNEVERprinted")
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("veer runs")
}

/// The `api` policy: weighted, two endpoints of capacity 100 and 300 at `addresses`,
/// published to `publish_to`, probed over HTTP on `port`.
fn api_policy(publish_to: &str, addresses: [&str; 2], port: u16) -> String {
    format!(
        "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: api }}\nspec:\n  \
         record: {{ name: api.example.com., type: A, ttl: 30 }}\n  publishTo: [{publish_to}]\n  routing: weighted\n  \
         pools:\n    - name: p\n      endpoints:\n        - {{ id: use1-a, address: {}, capacity: 100 }}\n        \
         - {{ id: use1-b, address: {}, capacity: 300 }}\n  \
         healthCheck: {{ type: http, port: {port}, interval: 1s, timeout: 500ms }}\n  warmup: {{ stages: [100] }}\n",
        addresses[0], addresses[1]
    )
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_publishes_weighted_sets_to_route53_and_the_next_plan_is_empty() {
    let Some(moto) = start_moto() else { return };
    create_zone(moto.port, "example.com.").await;
    let port = veer_provider_testbed::free_port();
    let _a = HttpServer::start_on(format!("127.0.0.61:{port}").parse().unwrap(), Script::ok("ok"), None).await;
    let _b = HttpServer::start_on(format!("127.0.0.62:{port}").parse().unwrap(), Script::ok("ok"), None).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("veer.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: moto\npolicies: [api.yaml]\n\
             coordination: {{ backend: standalone, stateFile: state.json }}\n\
             providers:\n  r53:\n    type: route53\n    zones: [example.com.]\n    apiUrl: http://127.0.0.1:{}\n",
            moto.port
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("api.yaml"), api_policy("r53", ["127.0.0.61", "127.0.0.62"], port)).unwrap();
    let d = dir.path().to_path_buf();
    let run = |args: &'static [&'static str]| {
        let d = d.clone();
        tokio::task::spawn_blocking(move || veer(&d, args))
    };
    let once = run(&["run", "--once", "-c", "veer.yaml"]).await.unwrap();
    assert_eq!(once.status.code(), Some(0), "{}", text(&once));
    assert!(text(&once).contains("applied (generation 1)"), "{}", text(&once));
    let plan = run(&["plan", "-c", "veer.yaml", "-o", "json"]).await.unwrap();
    assert_eq!(plan.status.code(), Some(0), "what Route 53 holds equals the plan:\n{}", text(&plan));
    let doc: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("plan -o json is JSON");
    assert_eq!(doc["writes"].as_array().map(Vec::len), Some(0), "{doc:#}");
    let weights: Vec<u64> = doc["plan"]["records"][0]["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["weight"].as_u64().unwrap())
        .collect();
    assert_eq!(weights, [85, 255], "weights scaled to Route 53's 0–255 range by capacity");
    for out in [&once, &plan] {
        assert!(!text(out).contains("veerMOTOsecretNEVERprinted"), "the AWS secret never appears in output");
    }
}

/// Every weighted record set of `name` in moto: (set id, address, weight).
async fn weighted_sets(port: u16, zone: &str, name: &str) -> Vec<(String, String, i64)> {
    let client = moto_client(port);
    let Ok(zones) = client.list_hosted_zones_by_name().dns_name(zone).send().await else { return Vec::new() };
    let Some(id) = zones.hosted_zones().iter().find(|z| z.name() == zone).map(|z| z.id().to_string()) else {
        return Vec::new();
    };
    let Ok(sets) = client.list_resource_record_sets().hosted_zone_id(id).send().await else { return Vec::new() };
    let mut out: Vec<_> = sets
        .resource_record_sets()
        .iter()
        .filter(|s| s.name() == name && s.weight().is_some())
        .flat_map(|s| {
            s.resource_records().iter().map(|r| {
                (s.set_identifier().unwrap_or_default().to_string(), r.value().to_string(), s.weight().unwrap_or(-1))
            })
        })
        .collect();
    out.sort();
    out
}

/// Issue: a weighted policy published to Route 53 and to BIND (set-only) gets
/// capacity-proportional weights on Route 53 and membership on BIND.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_published_to_route53_and_bind_gets_capacity_weights_on_route53_and_membership_on_bind() {
    let Some(moto) = start_moto() else { return };
    let zone = veer_provider_testbed::ZoneSpec::new("example.com.");
    let Some(bind) = veer_provider_testbed::DnsServer::start(veer_provider_testbed::ServerKind::Bind, &zone) else {
        return;
    };
    create_zone(moto.port, "example.com.").await;
    let port = veer_provider_testbed::free_port();
    let _a = HttpServer::start_on(format!("127.0.0.63:{port}").parse().unwrap(), Script::ok("ok"), None).await;
    let _b = HttpServer::start_on(format!("127.0.0.64:{port}").parse().unwrap(), Script::ok("ok"), None).await;
    let dir = tempfile::tempdir().unwrap();
    let key = bind.key();
    std::fs::write(
        dir.path().join("veer.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: mixed\npolicies: [api.yaml]\n\
             coordination: {{ backend: standalone, stateFile: state.json }}\n\
             providers:\n  r53:\n    type: route53\n    zones: [example.com.]\n    apiUrl: http://127.0.0.1:{}\n  \
             bind:\n    type: rfc2136\n    server: {}\n    zones: [example.com.]\n    \
             tsig: {{ name: {}, algorithm: {}, secretEnv: VEER_TEST_TSIG }}\n",
            moto.port,
            bind.addr(),
            key.name,
            key.algorithm
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("api.yaml"), api_policy("r53, bind", ["127.0.0.63", "127.0.0.64"], port)).unwrap();
    let (d, secret) = (dir.path().to_path_buf(), key.secret_base64.clone());
    let once = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_veer"))
            .args(["run", "--once", "-c", "veer.yaml"])
            .current_dir(&d)
            .env_remove("VEER_CONFIG")
            .env("VEER_TEST_TSIG", secret)
            .env("AWS_ACCESS_KEY_ID", "AKIDVEERMOTO")
            .env("AWS_SECRET_ACCESS_KEY", "veerMOTOsecretNEVERprinted")
            .env("AWS_REGION", "us-east-1")
            .output()
            .expect("veer runs")
    })
    .await
    .unwrap();
    assert_eq!(once.status.code(), Some(0), "{}", text(&once));
    let sets = weighted_sets(moto.port, "example.com.", "api.example.com.").await;
    assert_eq!(
        sets,
        [("use1-a".to_string(), "127.0.0.63".to_string(), 85), ("use1-b".to_string(), "127.0.0.64".to_string(), 255)],
        "Route 53 weights are proportional to capacity (1:3 in 0–255)\n{}",
        text(&once)
    );
    let mut members = bind.dig("api.example.com.", "A");
    members.sort();
    assert_eq!(members, ["127.0.0.63", "127.0.0.64"], "BIND gets membership\n{}", text(&once));
}

/// Issue: a veer process starts and fails over the records of other providers while
/// Route 53 cannot be reached (moto frozen with SIGSTOP: its API hangs, as in a
/// regional outage), and publishes to Route 53 once it answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn veer_starts_and_fails_over_other_providers_while_route53_is_unreachable_then_publishes_there() {
    let Some(moto) = start_moto() else { return };
    support::replica::require_dig();
    let moto_port = moto.port;
    let signal = |name: &str| {
        let status = Command::new("kill").args([&format!("-{name}"), &moto.child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} moto");
    };
    signal("STOP");
    let (dns, port) = (veer_provider_testbed::free_port(), veer_provider_testbed::free_port());
    let a = HttpServer::start_on(format!("127.0.0.65:{port}").parse().unwrap(), Script::ok("ok"), None).await;
    let b = HttpServer::start_on(format!("127.0.0.66:{port}").parse().unwrap(), Script::ok("ok"), None).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("veer.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: outage\npolicies: [api.yaml, app.yaml]\n\
             coordination: {{ backend: standalone, stateFile: state.json }}\n\
             providers:\n  r53:\n    type: route53\n    zones: [example.com.]\n    apiUrl: http://127.0.0.1:{moto_port}\n  \
             edns:\n    type: embedded\n    listen: 127.0.0.1:{dns}\n    zones: [example.test.]\n"
        ),
    )
    .unwrap();
    for (file, name, target) in [("api.yaml", "api.example.com.", "r53"), ("app.yaml", "app.example.test.", "edns")] {
        std::fs::write(
            dir.path().join(file),
            format!(
                "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: {} }}\nspec:\n  \
                 record: {{ name: {name}, type: A, ttl: 1 }}\n  publishTo: [{target}]\n  routing: weighted\n  \
                 pools:\n    - name: p\n      endpoints:\n        - {{ id: a, address: 127.0.0.65 }}\n        \
                 - {{ id: b, address: 127.0.0.66 }}\n  \
                 healthCheck: {{ type: http, port: {port}, interval: 500ms, timeout: 250ms, fall: 2 }}\n  \
                 warmup: {{ stages: [100] }}\n  shift: {{ maxRemovePercent: 100 }}\n",
                file.trim_end_matches(".yaml")
            ),
        )
        .unwrap();
    }
    let env = [
        ("AWS_ACCESS_KEY_ID", "AKIDVEERMOTO"),
        ("AWS_SECRET_ACCESS_KEY", "veerMOTOsecretNEVERprinted"),
        ("AWS_REGION", "us-east-1"),
    ];
    let replica = support::replica::Replica::start(dir.path(), &[], &env);
    let wait =
        |within: u64, done: &mut dyn FnMut() -> bool| support::replica::wait_until(Duration::from_secs(within), done);
    let both = ["127.0.0.65".to_string(), "127.0.0.66".to_string()];
    assert!(
        wait(30, &mut || support::replica::dig(dns, "app.example.test.") == both),
        "the embedded record is published although Route 53 is unreachable\n{}",
        replica.log()
    );
    assert!(replica.log().contains("provider unavailable at start"), "{}", replica.log());
    b.set(Script::status(503));
    assert!(
        wait(15, &mut || support::replica::dig(dns, "app.example.test.") == ["127.0.0.65"]),
        "the embedded record fails over while Route 53 is unreachable\n{}",
        replica.log()
    );

    // Route 53 comes back: the record is published there, with the current plan.
    signal("CONT");
    create_zone(moto.port, "example.com.").await;
    let mut published = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        published = weighted_sets(moto.port, "example.com.", "api.example.com.").await;
        if !published.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let addresses: Vec<&str> = published.iter().map(|(_, address, _)| address.as_str()).collect();
    assert_eq!(addresses, ["127.0.0.65"], "Route 53 gets the record's current plan once it answers\n{}", replica.log());
    drop(a);
    assert!(!replica.log().contains("veerMOTOsecretNEVERprinted"), "the AWS secret never appears in logs");
}

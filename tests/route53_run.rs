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

/// Creates a hosted zone in moto with the plain SDK (as an operator would).
async fn create_zone(port: u16, zone: &str) {
    let config = aws_sdk_route53::Config::builder()
        .behavior_version(veer_provider_route53::behavior_version())
        .region(aws_sdk_route53::config::Region::new("us-east-1"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .credentials_provider(aws_sdk_route53::config::Credentials::new("AKIDMOTO", "not-checked", None, None, "test"))
        .build();
    let client = aws_sdk_route53::Client::from_conf(config);
    client.create_hosted_zone().name(zone).caller_reference(format!("veer-{zone}")).send().await.expect("zone created");
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
    std::fs::write(
        dir.path().join("api.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: api }}\nspec:\n  \
             record: {{ name: api.example.com., type: A, ttl: 30 }}\n  publishTo: [r53]\n  routing: weighted\n  \
             pools:\n    - name: p\n      endpoints:\n        - {{ id: use1-a, address: 127.0.0.61, capacity: 100 }}\n        \
             - {{ id: use1-b, address: 127.0.0.62, capacity: 300 }}\n  \
             healthCheck: {{ type: http, port: {port}, interval: 1s, timeout: 500ms }}\n  warmup: {{ stages: [100] }}\n"
        ),
    )
    .unwrap();
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

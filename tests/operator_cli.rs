//! The operator commands against a real `veer run` (embedded DNS provider, TCP
//! backends on loopback): each change is visible in DNS answers (dig) and in
//! `veer status`; guards refuse with exit 3 and show the impact; `--force` never
//! empties a record; overrides survive a restart and expire at their TTL, and the
//! audit history says who did what and why. Terminal behaviour (the typed
//! confirmation, colour only on a terminal) is checked in a tmux pseudo-terminal.

mod support;

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use support::replica::{Replica, dig, free_port, get, require_dig, wait_until};

const TOKEN: &str = "operator-cli-TOKEN-never-printed";

/// One endpoint: id, pool, last octet of its 127.0.0.x address, capacity.
type Endpoint = (&'static str, &'static str, u8, u32);

/// A `veer run` with one or more policies on the embedded provider, and the
/// backends its TCP checks probe.
struct Lab {
    dir: tempfile::TempDir,
    replica: Replica,
    admin: u16,
    dns: u16,
    backends: Vec<(u8, Option<TcpListener>)>,
    port: u16,
}

fn policy(name: &str, routing: &str, zone: &str, port: u16, endpoints: &[Endpoint], guards: &str) -> String {
    let mut pools: Vec<(&str, Vec<String>)> = Vec::new();
    for (id, pool, octet, capacity) in endpoints {
        let e = format!("{{ id: {id}, address: 127.0.0.{octet}, capacity: {capacity} }}");
        match pools.iter_mut().find(|(p, _)| p == pool) {
            Some((_, list)) => list.push(e),
            None => pools.push((pool, vec![e])),
        }
    }
    let pools: Vec<String> =
        pools.iter().map(|(p, list)| format!("    - {{ name: {p}, endpoints: [{}] }}\n", list.join(", "))).collect();
    format!(
        "apiVersion: veer/v1\nkind: FailoverPolicy\nmetadata: {{ name: {name} }}\nspec:\n  \
         record: {{ name: {name}.{zone}, type: A, ttl: 5 }}\n  publishTo: [local]\n  routing: {routing}\n  \
         pools:\n{}  healthCheck: {{ type: tcp, port: {port}, interval: 500ms, timeout: 250ms, rise: 1, fall: 2 }}\n  \
         warmup: {{ stages: [100], hold: 0s }}\n  guards: {guards}\n",
        pools.concat()
    )
}

impl Lab {
    /// Starts veer with `policies` (name, routing, endpoints, guards) in zone `zone`.
    fn start(zone: &str, policies: &[(&str, &str, &[Endpoint], &str)]) -> Self {
        require_dig();
        let dir = tempfile::tempdir().unwrap();
        let (dns, admin, port) = (free_port(), free_port(), free_port());
        let mut backends = Vec::new();
        let mut texts = Vec::new();
        for (name, routing, endpoints, guards) in policies {
            for (_, _, octet, _) in endpoints.iter() {
                let listener = TcpListener::bind((Ipv4Addr::new(127, 0, 0, *octet), port)).unwrap();
                backends.push((*octet, Some(listener)));
            }
            texts.push(policy(name, routing, zone, port, endpoints, guards));
        }
        std::fs::write(dir.path().join("policies.yaml"), texts.join("---\n")).unwrap();
        std::fs::write(
            dir.path().join("veer.yaml"),
            format!(
                "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: ops\nvantage: ops\npolicies: [policies.yaml]\n\
                 admin: {{ listen: 127.0.0.1:{admin}, tokenEnv: VEER_TEST_ADMIN_TOKEN }}\n\
                 coordination: {{ backend: standalone, stateFile: state.json }}\n\
                 providers:\n  local: {{ type: embedded, listen: 127.0.0.1:{dns}, zones: [{zone}] }}\n"
            ),
        )
        .unwrap();
        let replica = Replica::start(dir.path(), &[], &[("VEER_TEST_ADMIN_TOKEN", TOKEN)]);
        let lab = Self { dir, replica, admin, dns, backends, port };
        lab.wait_ready();
        lab
    }

    /// Waits until the leader has planned with every live backend seen healthy, so
    /// that previews use real health.
    fn wait_ready(&self) {
        let live: Vec<u8> = self.backends.iter().filter(|(_, l)| l.is_some()).map(|(o, _)| *o).collect();
        let ready = wait_until(Duration::from_secs(40), || {
            let Some((200, status)) = get(self.admin, "/v1/status") else { return false };
            let Ok(status) = serde_json::from_str::<serde_json::Value>(&status) else { return false };
            let records = status["records"].as_array().cloned().unwrap_or_default();
            let up: Vec<String> = records
                .iter()
                .flat_map(|r| r["endpoints"].as_array().cloned().unwrap_or_default())
                .filter(|e| e["health"] == "up")
                .filter_map(|e| e["address"].as_str().map(str::to_string))
                .collect();
            !records.is_empty() && live.iter().all(|o| up.contains(&format!("127.0.0.{o}")))
        });
        assert!(ready, "veer did not see every backend healthy within 40 s\n{}", self.replica.log());
        // One more round, so that the preview inputs hold that health.
        std::thread::sleep(Duration::from_millis(1200));
    }

    /// Runs `veer ARGS` against this lab (server, token and author set).
    fn veer(&self, args: &[&str]) -> Output {
        self.veer_env(args, &[])
    }

    fn veer_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_veer"));
        command
            .args(args)
            .env("VEER_SERVER", format!("http://127.0.0.1:{}", self.admin))
            .env("VEER_TOKEN", TOKEN)
            .env("VEER_AUTHOR", "ci-operator")
            .env_remove("VEER_TOKEN_FILE")
            .env_remove("NO_COLOR")
            .stdin(std::process::Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    }

    fn answers(&self, name: &str) -> Vec<String> {
        dig(self.dns, name)
    }

    fn wait_answers(&self, name: &str, expected: &[&str], what: &str) {
        let mut seen = Vec::new();
        let ok = wait_until(Duration::from_secs(20), || {
            seen = self.answers(name);
            seen == expected
        });
        let status = String::from_utf8_lossy(&self.veer(&["status"]).stdout).into_owned();
        assert!(ok, "{what}: expected {expected:?}, dig shows {seen:?}\n{status}\n{}", self.replica.log());
    }

    /// Stops the backend of 127.0.0.`octet` (its TCP check fails from then on).
    fn stop_backend(&mut self, octet: u8) {
        for (o, listener) in &mut self.backends {
            if *o == octet {
                listener.take();
            }
        }
    }

    fn restart(&mut self) {
        assert!(self.replica.terminate(Duration::from_secs(20)).is_some_and(|s| s.success()), "clean stop");
        self.replica = Replica::start(self.dir.path(), &[], &[("VEER_TEST_ADMIN_TOKEN", TOKEN)]);
        self.wait_ready();
    }
}

fn text(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn addresses(octets: &[u8]) -> Vec<String> {
    octets.iter().map(|o| format!("127.0.0.{o}")).collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// 80 % of the capacity in pool `big` (a, b), 20 % in pool `small` (c).
const FAT: &[Endpoint] = &[("a", "big", 111, 200), ("b", "big", 112, 200), ("c", "small", 113, 100)];
const FAT_GUARDS: &str = "{ minHealthyEndpoints: 1, minCapacityPercent: 30 }";

#[test]
fn drains_show_in_dns_and_status_a_fat_finger_is_refused_and_force_never_empties_the_record() {
    let lab = Lab::start("fat.test.", &[("app", "weighted", FAT, FAT_GUARDS)]);
    let name = "app.fat.test.";
    let all = addresses(&[111, 112, 113]);
    lab.wait_answers(name, &strs(&all), "first answers");

    // The fat finger: the pool holding 80 % of the capacity. Refused, impact shown, nothing written.
    let (code, stdout, stderr) = text(&lab.veer(&["drain", "pool/big", "--reason", "oops", "--yes"]));
    assert_eq!(code, 3, "a guard refusal exits 3\n{stdout}\n{stderr}");
    let stdout = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(stdout.contains("drain pool big of app.fat.test."), "{stdout}");
    assert!(stdout.contains("healthy capacity 100%"), "the capacity figures are shown: {stdout}");
    assert!(stdout.contains("REFUSED by guard") && stdout.contains("minCapacityPercent 30%"), "{stdout}");
    assert!(stderr.contains("20% of capacity left") && stderr.contains("--force"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(lab.answers(name), all, "nothing was written");

    // A drain the guards allow: c leaves the answers and `veer status` shows why.
    let (code, stdout, stderr) = text(&lab.veer(&["drain", "c", "--reason", "patching c", "--yes", "--ttl", "1h"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("created override"), "{stdout}");
    lab.wait_answers(name, &strs(&addresses(&[111, 112])), "c drained");
    let (code, status, _) = text(&lab.veer(&["status", "app"]));
    assert_eq!(code, 0);
    assert!(status.contains("drain app/endpoint/c") && status.contains("by ci-operator: \"patching c\""), "{status}");
    assert!(!status.contains('\x1b'), "no colour when piped: {status:?}");
    let (_, json, _) = text(&lab.veer(&["status", "-o", "json"]));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["overrides"].as_array().map(Vec::len), Some(1), "{json:#}");

    // Undrain: previewed, then c is back.
    let (code, stdout, stderr) = text(&lab.veer(&["undrain", "c", "--reason", "patched", "--yes"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("removes o-") && stdout.contains("removed"), "{stdout}");
    lab.wait_answers(name, &strs(&all), "c undrained");
    let (_, status, _) = text(&lab.veer(&["status", "app"]));
    assert!(!status.contains("override"), "no override left: {status}");

    // Forced: the big pool goes although the guard says no; forcing the rest too
    // still leaves an answer (I1, I4).
    let (code, stdout, stderr) =
        text(&lab.veer(&["drain", "pool/big", "--force", "--reason", "region evacuation", "--yes", "-o", "json"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((doc["command"].as_str(), doc["applied"].as_bool()), (Some("drain"), Some(true)), "{doc:#}");
    assert!(doc["impact"]["records"][0]["guard_bypassed"].is_string(), "{doc:#}");
    lab.wait_answers(name, &strs(&addresses(&[113])), "the big pool drained by force");
    let (code, stdout, stderr) =
        text(&lab.veer(&["drain", "pool/small", "--force", "--reason", "everything", "--yes"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    std::thread::sleep(Duration::from_secs(3));
    let left = lab.answers(name);
    assert!(!left.is_empty(), "a forced drain of everything still leaves an answer\n{}", lab.replica.log());

    // The audit history names who and why, newest first.
    let (code, history, stderr) = text(&lab.veer(&["history", "app", "-o", "json"]));
    assert_eq!(code, 0, "{stderr}");
    let history: serde_json::Value = serde_json::from_str(&history).unwrap();
    let entries = history["entries"].as_array().unwrap();
    let events: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["kind"] == "override")
        .map(|e| (e["event"].as_str().unwrap(), e["reason"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        events,
        [
            ("created", "everything"),
            ("created", "region evacuation"),
            ("deleted", "patched"),
            ("created", "patching c")
        ],
        "{history:#}"
    );
    assert!(entries.iter().filter(|e| e["kind"] == "override").all(|e| e["by"] == "ci-operator"));
    assert!(entries.iter().any(|e| e["kind"] == "plan" && e["epoch"].is_u64()), "{history:#}");
    let times: Vec<u64> = entries.iter().filter_map(|e| e["atMs"].as_u64()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
    let (_, table, _) = text(&lab.veer(&["history"]));
    assert!(
        table.contains("created   drain app/pool/big") && table.contains("by ci-operator: \"region evacuation\""),
        "{table}"
    );
    assert!(!lab.replica.log().contains(TOKEN), "the token is never logged");
}

#[test]
fn overrides_survive_a_restart_and_expire_at_their_ttl() {
    let mut lab = Lab::start("ttl.test.", &[("app", "weighted", FAT, FAT_GUARDS)]);
    let name = "app.ttl.test.";
    lab.wait_answers(name, &strs(&addresses(&[111, 112, 113])), "first answers");
    let (code, stdout, stderr) = text(&lab.veer(&["drain", "c", "--reason", "long job", "--yes"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    lab.wait_answers(name, &strs(&addresses(&[111, 112])), "c drained");

    lab.restart();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(lab.answers(name), addresses(&[111, 112]), "the drain survives the restart");
    let (_, status, _) = text(&lab.veer(&["status"]));
    assert!(status.contains("drain app/endpoint/c") && status.contains("expires in 3h5"), "{status}");

    // A short TTL: b leaves, then comes back by itself; the expiry is in the history.
    let (code, stdout, stderr) = text(&lab.veer(&["drain", "b", "--reason", "quick look", "--ttl", "3s", "--yes"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    lab.wait_answers(name, &strs(&addresses(&[111])), "b drained for 3 s");
    lab.wait_answers(name, &strs(&addresses(&[111, 112])), "b back after its TTL");
    let expired = wait_until(Duration::from_secs(10), || {
        let (_, history, _) = text(&lab.veer(&["history", "--since", "10m", "-o", "json"]));
        history.contains("\"event\": \"expired\"") && history.contains("quick look")
    });
    assert!(expired, "the expiry is recorded in the history");
    let (code, stdout, stderr) = text(&lab.veer(&["undrain", "b", "--reason", "gone", "--yes"]));
    assert_eq!(code, 1, "an expired drain cannot be undrained: {stdout}");
    assert!(stderr.contains("no active drain of endpoint b"), "{stderr}");
}

#[test]
fn pin_failover_and_freeze_change_dns_and_bad_targets_and_tokens_fail_with_one_clear_line() {
    let web: &[Endpoint] = &[("a", "primary", 121, 100), ("s", "standby", 122, 100)];
    let api: &[Endpoint] = &[("a", "east", 123, 100), ("b", "east", 124, 100)];
    let guards = "{ minHealthyEndpoints: 1, minCapacityPercent: 30 }";
    let mut lab = Lab::start("mix.test.", &[("web", "failover", web, guards), ("api", "weighted", api, guards)]);
    lab.wait_answers("web.mix.test.", &["127.0.0.121"], "failover serves the primary");
    lab.wait_answers("api.mix.test.", &["127.0.0.123", "127.0.0.124"], "weighted serves both");

    // Slips: ambiguous, unknown, globs, a wrong token, nothing listening.
    let (code, _, stderr) = text(&lab.veer(&["drain", "a", "--reason", "x", "--yes"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("ambiguous") && stderr.contains("api/a, web/a"), "{stderr}");
    let (code, _, stderr) = text(&lab.veer(&["drain", "pool/standbi", "--reason", "x", "--yes"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("no pool `standbi`") && stderr.contains("did you mean pool/standby?"), "{stderr}");
    let (code, _, stderr) = text(&lab.veer(&["pin", "apj", "b=1", "--reason", "x", "--yes"]));
    assert_eq!(code, 1);
    assert!(stderr.contains("no record `apj`") && stderr.contains("did you mean api"), "{stderr}");
    let (code, _, stderr) = text(&lab.veer(&["drain", "api/*", "--reason", "x", "--yes"]));
    assert!(code == 1 && stderr.contains("globs are not accepted"), "{stderr}");
    let (code, _, stderr) = text(&lab.veer_env(&["drain", "s", "--reason", "x", "--yes"], &[("VEER_TOKEN", "wrong")]));
    assert_eq!(code, 1);
    assert!(stderr.contains("refused the bearer token (401"), "{stderr}");
    assert!(stderr.contains("VEER_TOKEN") && !stderr.contains(TOKEN), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let (code, _, stderr) = text(&lab.veer(&["drain", "s", "--reason", "no ttl", "--ttl", "none", "--yes"]));
    assert!(code == 1 && stderr.contains("--ttl none needs --force"), "{stderr}");
    let closed = free_port();
    let (code, _, stderr) = text(&lab.veer_env(&["status"], &[("VEER_SERVER", &format!("http://127.0.0.1:{closed}"))]));
    assert_eq!(code, 1);
    assert_eq!(
        stderr.trim(),
        format!(
            "veer: error: cannot reach veer at http://127.0.0.1:{closed} (connection refused) \
             (hint: is `veer run` running? set --server or VEER_SERVER)"
        )
    );

    // failover --to standby --now: the standby serves at once; undoing it is its TTL's job.
    let (code, stdout, stderr) = text(
        &lab.veer(&["failover", "web", "--to", "standby", "--now", "--reason", "db move", "--yes", "--ttl", "20s"]),
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    lab.wait_answers("web.mix.test.", &["127.0.0.122"], "failed over to the standby");
    let (_, status, _) = text(&lab.veer(&["status", "web"]));
    assert!(status.contains("failover web to standby now (no warm-up)") && status.contains("\"db move\""), "{status}");
    let (code, _, stderr) = text(&lab.veer(&["failover", "api", "--to", "east", "--reason", "x", "--yes"]));
    assert!(code == 1 && stderr.contains("routing: weighted"), "{stderr}");

    // pin: b only.
    let (code, stdout, stderr) = text(&lab.veer(&["pin", "api", "b=1", "--reason", "canary", "--yes"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    lab.wait_answers("api.mix.test.", &["127.0.0.124"], "pinned to b");
    let (_, status, _) = text(&lab.veer(&["status", "api.mix.test"]));
    assert!(status.contains("pin api b=1"), "{status}");
    let (code, stdout, stderr) = text(&lab.veer(&["unpin", "api", "--yes"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    lab.wait_answers("api.mix.test.", &["127.0.0.123", "127.0.0.124"], "unpinned");

    // freeze: a failing backend is not removed while frozen; unfreeze lets automation act.
    let (code, stdout, stderr) = text(&lab.veer(&["freeze", "api", "--reason", "investigating", "--yes"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    lab.stop_backend(124);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(lab.answers("api.mix.test."), ["127.0.0.123", "127.0.0.124"], "frozen: nothing changes");
    let (_, status, _) = text(&lab.veer(&["status", "api"]));
    assert!(status.contains("FROZEN") || status.contains("freeze api"), "{status}");
    let (code, _, stderr) = text(&lab.veer(&["unfreeze", "--provider", "local", "--yes"]));
    assert!(code == 1 && stderr.contains("no freeze of every record published to local"), "{stderr}");
    let (code, stdout, stderr) = text(&lab.veer(&["unfreeze", "api", "--reason", "found it", "--yes"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    lab.wait_answers("api.mix.test.", &["127.0.0.123"], "unfrozen: the dead backend leaves");
    let _ = lab.port;
}

#[path = "coord_support/etcd.rs"]
#[allow(dead_code)]
mod etcd;

#[test]
fn a_change_sent_to_a_follower_is_previewed_and_made_by_the_leader_it_names() {
    require_dig();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let Some(etcd) = runtime.block_on(etcd::Etcd::start(1)) else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _backends: Vec<TcpListener> =
        [131, 132].iter().map(|o| TcpListener::bind((Ipv4Addr::new(127, 0, 0, *o), port)).unwrap()).collect();
    std::fs::write(
        dir.path().join("veer.yaml"),
        format!(
            "apiVersion: veer/v1\nkind: ControllerConfig\nclusterId: pair\nvantage: ${{V}}\npolicies: [app.yaml]\n\
             admin: {{ listen: \"127.0.0.1:${{ADMIN}}\", tokenEnv: VEER_TEST_ADMIN_TOKEN }}\n\
             coordination:\n  backend: etcd\n  etcd: {{ endpoints: [{}] }}\n  \
             leaseDuration: 6s\n  renewDeadline: 4s\n  retryPeriod: 1s\n\
             providers:\n  local: {{ type: embedded, listen: \"127.0.0.1:${{DNS}}\", zones: [pair.test.] }}\n",
            etcd.endpoints()[0]
        ),
    )
    .unwrap();
    let endpoints: &[Endpoint] = &[("a", "p", 131, 100), ("b", "p", 132, 100)];
    std::fs::write(dir.path().join("app.yaml"), policy("app", "weighted", "pair.test.", port, endpoints, FAT_GUARDS))
        .unwrap();
    let ports: Vec<(u16, u16)> = (0..2).map(|_| (free_port(), free_port())).collect();
    let _replicas: Vec<Replica> = ports
        .iter()
        .enumerate()
        .map(|(i, (admin, dns))| {
            let (v, admin, dns) = (format!("r{i}"), admin.to_string(), dns.to_string());
            let env = [("V", v.as_str()), ("ADMIN", &admin), ("DNS", &dns), ("VEER_TEST_ADMIN_TOKEN", TOKEN)];
            Replica::start(dir.path(), &[], &env)
        })
        .collect();
    let role = |admin: u16| -> Option<String> {
        let (_, body) = get(admin, "/v1/status")?;
        serde_json::from_str::<serde_json::Value>(&body).ok()?["role"].as_str().map(str::to_string)
    };
    let mut leader = None;
    let settled = wait_until(Duration::from_secs(40), || {
        leader = ports.iter().position(|(admin, _)| role(*admin).as_deref() == Some("leader"));
        let follower_knows = |admin: u16| {
            get(admin, "/v1/status").is_some_and(|(_, b)| b.contains("\"role\":\"follower\"") && b.contains("adminUrl"))
        };
        leader.is_some_and(|l| follower_knows(ports[1 - l].0))
    });
    assert!(settled, "one leader, and a follower that names it");
    let leader = leader.unwrap();
    let (leader_dns, follower_admin) = (ports[leader].1, ports[1 - leader].0);
    let both = addresses(&[131, 132]);
    assert!(wait_until(Duration::from_secs(30), || dig(leader_dns, "app.pair.test.") == both), "first answers");
    std::thread::sleep(Duration::from_secs(2));

    let out = Command::new(env!("CARGO_BIN_EXE_veer"))
        .args(["drain", "b", "--reason", "via the follower", "--yes"])
        .env("VEER_SERVER", format!("http://127.0.0.1:{follower_admin}"))
        .env("VEER_TOKEN", TOKEN)
        .env("VEER_AUTHOR", "ci-operator")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let (code, stdout, stderr) = text(&out);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stderr.contains("is a follower; sending the change to the leader"), "{stderr}");
    assert!(stdout.contains("healthy capacity 100% → 50%"), "the leader's preview: {stdout}");
    let drained = wait_until(Duration::from_secs(20), || dig(leader_dns, "app.pair.test.") == ["127.0.0.131"]);
    assert!(drained, "the leader applies the drain");
}

/// A tmux server of its own (socket name), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Self {
        let found = Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success());
        assert!(found, "tmux not found: install tmux (scripts/test does)");
        Self { socket: format!("veer-operator-{}", std::process::id()) }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-L").arg(&self.socket).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `command` (a shell line; end it with a sleep so the pane stays to be
    /// read) in a new 100×40 session `name`.
    fn start(&self, name: &str, dir: &Path, command: &str) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "new-session", "-d", "-x", "100", "-y", "40", "-s", name, "-c"])
            .arg(dir)
            .arg(command)
            .status()
            .unwrap();
        assert!(status.success(), "tmux new-session");
    }

    fn screen(&self, name: &str, escapes: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", name];
        if escapes {
            args.push("-e");
        }
        self.run(&args)
    }

    fn wait_for(&self, name: &str, text: &str) -> String {
        let mut screen = String::new();
        let ok = wait_until(Duration::from_secs(20), || {
            screen = self.screen(name, false);
            screen.contains(text)
        });
        assert!(ok, "{text:?} did not appear in the terminal:\n{screen}");
        screen
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}

#[test]
fn in_a_terminal_the_change_waits_for_the_typed_name_a_wrong_one_aborts_and_only_terminals_get_colour() {
    let lab = Lab::start("tty.test.", &[("app", "weighted", FAT, FAT_GUARDS)]);
    let name = "app.tty.test.";
    let all = addresses(&[111, 112, 113]);
    lab.wait_answers(name, &strs(&all), "first answers");
    let tmux = Tmux::new();
    let veer = env!("CARGO_BIN_EXE_veer");
    let shell = |args: &str| {
        format!(
            "env VEER_SERVER=http://127.0.0.1:{} VEER_TOKEN={TOKEN} VEER_AUTHOR=tty-op {veer} {args}; echo EXIT=$?; sleep 120",
            lab.admin
        )
    };

    // A wrong name aborts: exit 1, nothing written.
    tmux.start("wrong", lab.dir.path(), &shell("drain c --reason 'tty test'"));
    let screen = tmux.wait_for("wrong", "Type \"c\" to confirm:");
    assert!(
        screen.contains("drain endpoint c of app.tty.test.") && screen.contains("healthy capacity 100% → 80%"),
        "{screen}"
    );
    tmux.run(&["send-keys", "-t", "wrong", "b", "Enter"]);
    let screen = tmux.wait_for("wrong", "EXIT=");
    assert!(screen.contains("not confirmed: nothing was changed") && screen.contains("EXIT=1"), "{screen}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(lab.answers(name), all, "an aborted drain writes nothing");

    // The right name applies it.
    tmux.start("right", lab.dir.path(), &shell("drain c --reason 'tty test'"));
    tmux.wait_for("right", "to confirm:");
    tmux.run(&["send-keys", "-t", "right", "c", "Enter"]);
    let screen = tmux.wait_for("right", "EXIT=");
    assert!(screen.contains("created override") && screen.contains("EXIT=0"), "{screen}");
    lab.wait_answers(name, &strs(&addresses(&[111, 112])), "confirmed drain applied");

    // Colour on the terminal, none when piped or with NO_COLOR.
    tmux.start("colour", lab.dir.path(), &shell("status"));
    tmux.wait_for("colour", "EXIT=0");
    let coloured = tmux.screen("colour", true);
    assert!(coloured.contains("\x1b["), "colour on a terminal:\n{coloured:?}");
    tmux.start("nocolour", lab.dir.path(), &format!("NO_COLOR=1 {}", shell("status")));
    tmux.wait_for("nocolour", "EXIT=0");
    let plain = tmux.screen("nocolour", true);
    let body: String = plain.lines().filter(|l| l.contains("app.tty.test.") || l.contains("override")).collect();
    assert!(!body.contains("\x1b["), "NO_COLOR turns colour off:\n{plain:?}");
    let (_, piped, _) = text(&lab.veer(&["status"]));
    assert!(!piped.contains('\x1b') && piped.contains("app.tty.test."), "{piped:?}");
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_veer")).args(["completions", shell]).output().unwrap();
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && script.contains("drain") && script.contains("undrain"), "{shell}: {script}");
    }
}

//! Real etcd for tests: members on free loopback ports in a temp dir, killed by PID on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The etcd binary, or `None` (test skipped) when it is missing or veer lacks the `etcd`
/// feature, outside CI. In CI either is a failure that says how to fix it.
pub fn etcd_binary() -> Option<PathBuf> {
    if !cfg!(feature = "etcd") {
        if std::env::var_os("CI").is_some() {
            panic!(
                "veer was built without the etcd cargo feature: run the tests with --features veer/etcd (scripts/test does)"
            );
        }
        eprintln!("skipped: veer was built without the etcd cargo feature (--features veer/etcd)");
        return None;
    }
    let found = ["/usr/bin/etcd", "/usr/local/bin/etcd"].into_iter().map(PathBuf::from).find(|p| p.exists());
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("etcd is not installed: install the Debian package etcd-server (scripts/test does it)");
        }
        eprintln!("skipped: etcd is not installed (Debian package etcd-server)");
    }
    found
}

/// A free loopback port (bound then released: a tiny race, acceptable in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Member {
    name: String,
    client_url: String,
    child: Option<Child>,
}

/// A running etcd cluster.
pub struct Etcd {
    members: Vec<Member>,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts `n` members and waits until the cluster answers writes. `None` if etcd is
    /// missing (outside CI).
    pub async fn start(n: usize) -> Option<Etcd> {
        let binary = etcd_binary()?;
        let dir = tempfile::tempdir().unwrap();
        let peers: Vec<(String, u16, u16)> = (0..n).map(|i| (format!("n{i}"), free_port(), free_port())).collect();
        let initial: Vec<String> =
            peers.iter().map(|(name, _, peer)| format!("{name}=http://127.0.0.1:{peer}")).collect();
        let mut members = Vec::new();
        for (name, client, peer) in &peers {
            let client_url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let log = std::fs::File::create(dir.path().join(format!("{name}.log"))).unwrap();
            let child = Command::new(&binary)
                .args(["--name", name])
                .arg("--data-dir")
                .arg(dir.path().join(name))
                .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
                .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
                .args(["--initial-cluster", &initial.join(","), "--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", "veer-test", "--logger", "zap", "--log-level", "warn"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start etcd");
            members.push(Member { name: name.clone(), client_url, child: Some(child) });
        }
        let etcd = Etcd { members, _dir: dir };
        etcd.wait_writable(Duration::from_secs(30)).await;
        Some(etcd)
    }

    /// Client URLs of all members (also the stopped ones: clients must cope).
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// Kills member `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Index of the raft leader among running members.
    #[cfg(feature = "etcd")]
    pub async fn raft_leader(&self) -> Option<usize> {
        for (i, member) in self.members.iter().enumerate() {
            if member.child.is_none() {
                continue;
            }
            let Ok(Ok(mut client)) =
                tokio::time::timeout(Duration::from_secs(2), etcd_client::Client::connect([&member.client_url], None))
                    .await
            else {
                continue;
            };
            if let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(2), client.status()).await
                && status.header().is_some_and(|h| h.member_id() == status.leader())
            {
                return Some(i);
            }
        }
        None
    }

    /// Without the `etcd` feature no cluster is ever started ([`etcd_binary`] is `None`).
    #[cfg(not(feature = "etcd"))]
    async fn wait_writable(&self, _within: Duration) {
        unreachable!("no etcd cluster starts without the etcd feature")
    }

    /// Waits until a put succeeds through all endpoints.
    #[cfg(feature = "etcd")]
    pub async fn wait_writable(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let attempt = async {
                let options = etcd_client::ConnectOptions::new().with_require_leader(true);
                let mut client = etcd_client::Client::connect(self.endpoints(), Some(options)).await?;
                client.put("/health", "ok", None).await
            };
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), attempt).await {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "etcd did not become writable within {within:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Member names (for messages).
    pub fn names(&self) -> Vec<String> {
        self.members.iter().map(|m| m.name.clone()).collect()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

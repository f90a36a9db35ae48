//! The standalone backend survives kill -9 at any point of its state writes: the file is
//! always the old or the new state, never torn, and acknowledged writes are durable.

#[path = "coord_support/mod.rs"]
mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::{Helper, Lines};
use veer::coord::standalone::StandaloneCoordinator;
use veer::coord::{Coordinator, Entry, Key, Space, Writer};

/// Helper mode: writes the state file as fast as it can, printing `@ WROTE i` after each
/// acknowledged write. Every write replaces `planner/counter` with `i` repeated, so a torn or
/// mixed file is detectable.
#[test]
fn helper_state_writer() {
    if std::env::var("VEER_COORD_HELPER").as_deref() != Ok("writer") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let coord = StandaloneCoordinator::open(std::env::var("VEER_STATE").unwrap(), "writer").unwrap();
        let epoch = coord.campaign().await.unwrap();
        println!("@ EPOCH {epoch}");
        for i in 1u64.. {
            let value = json!({"i": i, "payload": vec![i; 2000]});
            coord.put(&Key::new(Space::Planner, "counter"), &Entry::new(value), Writer::Leader(epoch)).await.unwrap();
            let drain = Entry::new(json!({"i": i}));
            coord.put(&Key::new(Space::Overrides, format!("o-{}", i % 20)), &drain, Writer::Replica).await.unwrap();
            println!("@ WROTE {i}");
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_state_writes_never_leaves_a_torn_file_or_loses_an_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("veer-state.json");
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    println!("seed {seed}");
    let mut rng = seed;
    let mut next = move || {
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        rng >> 33
    };
    let mut last_epoch = 0;
    let temp_files = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    };
    let mut torn_rounds = 0;
    for round in 0..15 {
        let lines = Lines::default();
        let envs = [("VEER_COORD_HELPER", "writer".to_owned()), ("VEER_STATE", path.display().to_string())];
        let mut writer = Helper::spawn("helper_state_writer", &envs, 0, &lines);
        lines.wait_for(0, Duration::from_secs(20), |l| l.words[0] == "WROTE").expect("the writer writes");
        std::thread::sleep(Duration::from_millis(next() % 150));
        writer.kill();
        let acknowledged = lines
            .snapshot()
            .iter()
            .filter(|l| l.words[0] == "WROTE")
            .filter_map(|l| l.words[1].parse::<u64>().ok())
            .max()
            .unwrap();

        torn_rounds += usize::from(!temp_files(dir.path()).is_empty());
        let started = Instant::now();
        let coord = StandaloneCoordinator::open(&path, "checker")
            .unwrap_or_else(|e| panic!("round {round} (seed {seed}): the state does not load: {e}"));
        assert!(started.elapsed() < Duration::from_secs(5));
        let epoch = coord.campaign().await.unwrap();
        assert!(epoch.0 > last_epoch, "round {round}: epoch {epoch} after {last_epoch}");
        last_epoch = epoch.0;
        let counter = coord.get(&Key::new(Space::Planner, "counter")).await.unwrap().unwrap().value;
        let i = counter["i"].as_u64().unwrap();
        assert!(counter["payload"].as_array().unwrap().iter().all(|v| v.as_u64() == Some(i)), "mixed state");
        // The override of write i lands after the counter: at most one behind.
        assert!(i >= acknowledged, "round {round}: acknowledged write {acknowledged} lost (file has {i})");
        let leftovers = temp_files(dir.path());
        assert!(leftovers.is_empty(), "temp files left after open: {leftovers:?}");
        drop(coord);
    }
    println!("{torn_rounds} of 15 kills left a temp file behind (cleaned on open)");
}

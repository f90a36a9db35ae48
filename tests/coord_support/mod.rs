//! Helpers shared by the coordination integration tests: child processes (the test binary
//! re-run in a helper mode) and the lines they print.

#![allow(dead_code)]

pub mod etcd;
pub mod fake_kube;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One line a helper process printed, stamped when the parent read it.
#[derive(Debug, Clone)]
pub struct Line {
    pub at: Instant,
    pub proc: usize,
    pub words: Vec<String>,
}

/// Lines of all helper processes of a test, in arrival order.
#[derive(Debug, Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<Line>>>);

impl Lines {
    pub fn snapshot(&self) -> Vec<Line> {
        self.0.lock().unwrap().clone()
    }

    /// Waits for the first line at or after index `from` matching `pred`.
    pub fn wait_for(&self, from: usize, within: Duration, pred: impl Fn(&Line) -> bool) -> Option<(usize, Line)> {
        let deadline = Instant::now() + within;
        loop {
            let lines = self.snapshot();
            if let Some((i, line)) = lines.iter().enumerate().skip(from).find(|(_, l)| pred(l)) {
                return Some((i, line.clone()));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A helper process: this test binary re-run with `--exact <entry>` and an environment that
/// selects the helper mode. Killed by PID on drop.
pub struct Helper {
    pub child: Child,
    pub index: usize,
}

impl Helper {
    /// Spawns the helper `entry` (a test function that checks `mode_var`) as process `index`.
    /// Lines it prints starting with `@ ` are collected into `lines` (without the marker).
    pub fn spawn(entry: &str, envs: &[(&str, String)], index: usize, lines: &Lines) -> Helper {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.args([entry, "--exact", "--nocapture", "--test-threads=1"]);
        for (k, v) in envs {
            command.env(k, v);
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn helper");
        let stdout = child.stdout.take().unwrap();
        let sink = lines.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may print its "test name ... " prefix on the same line.
                if let Some(rest) = line.find("@ ").map(|at| &line[at + 2..]) {
                    let words = rest.split_whitespace().map(str::to_owned).collect();
                    sink.lock().unwrap().push(Line { at: Instant::now(), proc: index, words });
                }
            }
        });
        Helper { child, index }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([&format!("-{signal}"), &self.pid().to_string()]).status().unwrap();
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.kill();
    }
}

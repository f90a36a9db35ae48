//! The machine and the moment a figure was measured on: CPUs, load average,
//! the date and the commit.

use serde::Serialize;
use std::process::Command;

#[derive(Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    pub memory_gb: f64,
}

pub fn nproc() -> usize {
    std::thread::available_parallelism().map_or(0, usize::from)
}

pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut fields = text.split_whitespace().map(|v| v.parse().unwrap_or(f64::NAN));
    [(); 3].map(|_| fields.next().unwrap_or(f64::NAN))
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kb: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:")?.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    Machine { nproc: nproc(), cpu, kernel, memory_gb: memory_kb / 1024.0 / 1024.0 }
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub fn utc_now() -> String {
    output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"])
}

/// The commit measured, `+dirty` when the tree has uncommitted changes.
pub fn commit() -> String {
    let head = output("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = !output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    if dirty { format!("{head}+dirty") } else { head }
}

//! The benchmark commands the report runs, and running one: its output goes to
//! the terminal and to a log, its `BENCH_JSON` lines are kept.

use crate::machine::{load_average, nproc, utc_now};
use serde::Serialize;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What a benchmark prints before its one-line JSON figures.
const MARKER: &str = "BENCH_JSON ";
const ROUTE53_TEST: &str = "a_failover_of_1000_names_in_one_zone_takes_the_fewest_calls_the_limits_allow";

/// One benchmark command.
pub struct Step {
    name: &'static str,
    command: Vec<String>,
}

/// A step from its command line (words separated by spaces, no quoting needed).
fn step(name: &'static str, command: &str) -> Step {
    Step { name, command: command.split_whitespace().map(str::to_string).collect() }
}

/// The benchmarks, in the order they run (the latency-sensitive ones first).
pub fn steps(quick: bool) -> Vec<Step> {
    let trials = if quick { 5 } else { 50 };
    let probe_seconds = if quick { 10 } else { 60 };
    // Steady state: a window of a few minutes (seconds when quick) after `quiet` seconds without a write.
    let (writes_window, quiet, rss_window) = if quick { (30, 10, 30) } else { (180, 15, 120) };
    let failover = |provider| format!("cargo bench --bench failover -- --trials {trials} --provider {provider}");
    vec![
        step("failover-embedded", &failover("embedded")),
        step("failover-bind", &failover("bind")),
        step("failover-hung", &failover("hung")),
        step("planner", "cargo bench --bench planner"),
        step("probes", &format!("scripts/bench-probes 10000 {probe_seconds} 64 1000")),
        step(
            "route53",
            &format!("cargo test --release -p veer-provider-route53 --test cas {ROUTE53_TEST} -- --exact --nocapture"),
        ),
        step(
            "steady-writes",
            &format!("cargo bench --bench steady -- --measure writes --window {writes_window} --quiet {quiet}"),
        ),
        step(
            "steady-rss",
            &format!("cargo bench --bench steady -- --measure rss --endpoints 10000 --window {rss_window}"),
        ),
    ]
}

/// Where and when a step ran; every figure it measured carries these along.
#[derive(Serialize, Clone, Default)]
pub struct Conditions {
    pub command: String,
    pub started: String,
    pub finished: String,
    pub nproc: usize,
    /// Load average over 1, 5 and 15 minutes when the step started, and when it finished.
    pub load_start: [f64; 3],
    pub load_end: [f64; 3],
}

/// What one step did.
#[derive(Serialize)]
pub struct StepRun {
    pub name: &'static str,
    #[serde(flatten)]
    pub ran: Conditions,
    pub seconds: f64,
    pub exit_code: Option<i32>,
    pub log: String,
    /// Every `BENCH_JSON` object the step printed.
    pub figures: Vec<Value>,
}

/// Runs a step: its output goes to the terminal and to `logs/NAME.log`; the
/// `BENCH_JSON` lines of its standard output are kept.
pub fn run(step: &Step, logs: &Path) -> StepRun {
    let command = step.command.join(" ");
    println!("\n==> {}: {command}", step.name);
    let log_path = logs.join(format!("{}.log", step.name));
    let log = Arc::new(Mutex::new(std::fs::File::create(&log_path).expect("create the step log")));
    let (started, load_start, clock) = (utc_now(), load_average(), Instant::now());
    let mut figures = Vec::new();
    let exit_code = match Command::new(&step.command[0])
        .args(&step.command[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Err(e) => {
            writeln!(log.lock().unwrap(), "cannot start `{command}`: {e}").ok();
            eprintln!("cannot start `{command}`: {e}");
            None
        }
        Ok(mut child) => {
            let stderr = child.stderr.take().expect("piped");
            let err_log = log.clone();
            let copier = std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("{line}");
                    writeln!(err_log.lock().unwrap(), "{line}").ok();
                }
            });
            for line in BufReader::new(child.stdout.take().expect("piped")).lines().map_while(Result::ok) {
                println!("{line}");
                writeln!(log.lock().unwrap(), "{line}").ok();
                if let Some(json) = line.strip_prefix(MARKER) {
                    match serde_json::from_str::<Value>(json) {
                        Ok(v) => figures.push(v),
                        Err(e) => eprintln!("report: unreadable {MARKER}line ({e}): {json}"),
                    }
                }
            }
            copier.join().ok();
            child.wait().ok().and_then(|s| s.code())
        }
    };
    StepRun {
        name: step.name,
        ran: Conditions { command, started, finished: utc_now(), nproc: nproc(), load_start, load_end: load_average() },
        seconds: clock.elapsed().as_secs_f64(),
        exit_code,
        log: log_path.display().to_string(),
        figures,
    }
}

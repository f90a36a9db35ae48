//! The benchmark report (issue 11, ARCHITECTURE.md §9): runs every benchmark behind
//! `scripts/bench`, keeps the `BENCH_JSON` lines each one prints together with
//! the command that produced them, the machine (nproc, load average before and
//! after) and the date, and writes `report.md` and `report.json` with every
//! figure beside its target and a pass/miss mark.
//!
//! Figures come only from those runs. A benchmark that fails leaves its figures
//! "not measured" with the reason, and the report exits 1 so that a report with
//! holes never passes for a complete one.
//!
//!     scripts/bench report [--quick] [--publish]
//!     cargo bench --bench report -- --report [--quick] [--publish] [--out DIR]
//!
//! `--quick` runs small trial counts and short windows (a few minutes in all);
//! the figures are then indicative only. `--publish` also copies the Markdown
//! report to `docs/bench/latest.md`, the committed copy the README links.

mod catalogue;
mod figures;
mod machine;
mod render;
mod steps;

use figures::{Figure, Mark};
use machine::{Machine, commit, machine, utc_now};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;
use steps::StepRun;

/// The committed copy of a report of record, which the README links (target/ is not committed).
const PUBLISHED: &str = "docs/bench/latest.md";

struct Options {
    report: bool,
    quick: bool,
    /// Also copy the Markdown report to [`PUBLISHED`], the copy the README links.
    publish: bool,
    out: PathBuf,
}

fn options() -> Options {
    let mut o = Options { report: false, quick: false, publish: false, out: PathBuf::from("target/bench") };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--report" => o.report = true,
            "--quick" => o.quick = true,
            "--publish" => o.publish = true,
            "--out" => o.out = args.next().map(PathBuf::from).expect("--out DIR"),
            _ => {} // cargo bench passes --bench
        }
    }
    o
}

fn main() {
    let o = options();
    if !o.report {
        // A plain `cargo bench` must not start the whole report (and every other bench again).
        println!("report: not run; use `scripts/bench report [--quick]`");
        return;
    }
    let started = Instant::now();
    let machine = machine();
    let logs = o.out.join("logs");
    std::fs::create_dir_all(&logs).unwrap_or_else(|e| panic!("cannot create {}: {e}", logs.display()));
    let runs: Vec<StepRun> = steps::steps(o.quick).iter().map(|s| steps::run(s, &logs)).collect();
    let figures = catalogue::figures(&runs);
    let report = Report {
        generated: utc_now(),
        quick: o.quick,
        command: format!("scripts/bench report{}", if o.quick { " --quick" } else { "" }),
        commit: commit(),
        machine,
        seconds: started.elapsed().as_secs_f64(),
        figures,
        steps: runs,
    };
    let json = serde_json::to_string_pretty(&report).expect("the report serializes");
    let (md_path, json_path) = (o.out.join("report.md"), o.out.join("report.json"));
    std::fs::write(&json_path, json + "\n").unwrap_or_else(|e| panic!("cannot write {}: {e}", json_path.display()));
    std::fs::write(&md_path, render::markdown(&report))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", md_path.display()));
    if o.publish {
        std::fs::create_dir_all(Path::new(PUBLISHED).parent().expect("a folder")).ok();
        std::fs::copy(&md_path, PUBLISHED).unwrap_or_else(|e| panic!("cannot write {PUBLISHED}: {e}"));
        println!("report: published as {PUBLISHED}");
    }
    println!("\n{}", render::table(&report.figures));
    println!("report: {} and {} ({:.0} s)", md_path.display(), json_path.display(), report.seconds);
    let missing: Vec<&str> =
        report.figures.iter().filter(|f| f.mark == Mark::Missing).map(|f| f.label.as_str()).collect();
    if !missing.is_empty() {
        eprintln!("report: {} figure(s) not measured: {}", missing.len(), missing.join("; "));
        std::process::exit(1);
    }
}

/// Everything `report.json` holds; `report.md` renders it.
#[derive(Serialize)]
pub struct Report {
    generated: String,
    quick: bool,
    command: String,
    commit: String,
    machine: Machine,
    seconds: f64,
    figures: Vec<Figure>,
    steps: Vec<StepRun>,
}

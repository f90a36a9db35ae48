//! The benchmark report (issue 11, SPEC §12): runs every benchmark behind
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

use serde::Serialize;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What a benchmark prints before its one-line JSON figures.
const MARKER: &str = "BENCH_JSON ";
/// The committed copy of a report of record, which the README links (target/ is not committed).
const PUBLISHED: &str = "docs/bench/latest.md";
const ROUTE53_TEST: &str = "a_failover_of_1000_names_in_one_zone_takes_the_fewest_calls_the_limits_allow";

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
    let runs: Vec<StepRun> = steps(o.quick).iter().map(|s| run(s, &logs)).collect();
    let figures = figures(&runs);
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
    std::fs::write(&md_path, markdown(&report)).unwrap_or_else(|e| panic!("cannot write {}: {e}", md_path.display()));
    if o.publish {
        std::fs::create_dir_all(Path::new(PUBLISHED).parent().expect("a folder")).ok();
        std::fs::copy(&md_path, PUBLISHED).unwrap_or_else(|e| panic!("cannot write {PUBLISHED}: {e}"));
        println!("report: published as {PUBLISHED}");
    }
    println!("\n{}", table(&report.figures));
    println!("report: {} and {} ({:.0} s)", md_path.display(), json_path.display(), report.seconds);
    let missing: Vec<&str> =
        report.figures.iter().filter(|f| f.mark == Mark::Missing).map(|f| f.label.as_str()).collect();
    if !missing.is_empty() {
        eprintln!("report: {} figure(s) not measured: {}", missing.len(), missing.join("; "));
        std::process::exit(1);
    }
}

// --- the steps ---------------------------------------------------------------------

/// One benchmark command.
struct Step {
    name: &'static str,
    command: Vec<String>,
}

fn step(name: &'static str, command: &[&str]) -> Step {
    Step { name, command: command.iter().map(|s| s.to_string()).collect() }
}

/// The benchmarks, in the order they run (the latency-sensitive ones first).
fn steps(quick: bool) -> Vec<Step> {
    let trials = if quick { "5" } else { "50" };
    let probe_seconds = if quick { "10" } else { "60" };
    let (writes_window, rss_window) = if quick { ("45", "30") } else { ("180", "120") };
    let failover =
        |provider| ["cargo", "bench", "--bench", "failover", "--", "--trials", trials, "--provider", provider];
    vec![
        step("failover-embedded", &failover("embedded")),
        step("failover-bind", &failover("bind")),
        step("planner", &["cargo", "bench", "--bench", "planner"]),
        step("probes", &["scripts/bench-probes", "10000", probe_seconds, "64", "1000"]),
        step(
            "route53",
            &[
                "cargo",
                "test",
                "--release",
                "-p",
                "veer-provider-route53",
                "--test",
                "cas",
                ROUTE53_TEST,
                "--",
                "--exact",
                "--nocapture",
            ],
        ),
        step(
            "steady-writes",
            &["cargo", "bench", "--bench", "steady", "--", "--measure", "writes", "--window", writes_window],
        ),
        step(
            "steady-rss",
            &[
                "cargo",
                "bench",
                "--bench",
                "steady",
                "--",
                "--measure",
                "rss",
                "--endpoints",
                "10000",
                "--window",
                rss_window,
            ],
        ),
    ]
}

/// What one step did, with the conditions it ran in.
#[derive(Serialize)]
struct StepRun {
    name: &'static str,
    command: String,
    started: String,
    finished: String,
    seconds: f64,
    nproc: usize,
    load_start: [f64; 3],
    load_end: [f64; 3],
    exit_code: Option<i32>,
    log: String,
    /// Every `BENCH_JSON` object the step printed.
    figures: Vec<Value>,
}

/// Runs a step: its output goes to the terminal and to `logs/NAME.log`; the
/// `BENCH_JSON` lines of its standard output are kept.
fn run(step: &Step, logs: &Path) -> StepRun {
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
        command,
        started,
        finished: utc_now(),
        seconds: clock.elapsed().as_secs_f64(),
        nproc: nproc(),
        load_start,
        load_end: load_average(),
        exit_code,
        log: log_path.display().to_string(),
        figures,
    }
}

// --- the figures and their targets -------------------------------------------------

#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum Mark {
    Pass,
    Miss,
    /// No target: reported for context.
    Info,
    /// Not measured (the step failed or skipped it).
    Missing,
}

#[derive(Serialize, Clone, Copy, PartialEq, Debug)]
enum Op {
    #[serde(rename = "<=")]
    AtMost,
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<")]
    Below,
    #[serde(rename = "==")]
    Exactly,
}

#[derive(Serialize, Clone, Debug)]
struct Target {
    op: Op,
    bound: f64,
    /// Where the target comes from and how it reads.
    text: String,
}

impl Target {
    fn holds(&self, value: f64) -> bool {
        match self.op {
            Op::AtMost => value <= self.bound,
            Op::AtLeast => value >= self.bound,
            Op::Below => value < self.bound,
            Op::Exactly => value == self.bound,
        }
    }
}

/// One figure of the report, with the step that measured it.
#[derive(Serialize)]
struct Figure {
    id: String,
    label: String,
    value: Option<f64>,
    unit: &'static str,
    target: Option<Target>,
    mark: Mark,
    /// Context (trial counts, the other side of a ratio), or why it is missing.
    note: String,
    step: &'static str,
    command: String,
    started: String,
    finished: String,
    nproc: usize,
    load_start: [f64; 3],
    load_end: [f64; 3],
}

/// Builds figures from one step's output.
struct FigureSet<'a> {
    run: Option<&'a StepRun>,
    out: Vec<Figure>,
}

impl<'a> FigureSet<'a> {
    /// The step's first `BENCH_JSON` object with `bench` = `bench` that `matches`.
    fn find(&self, bench: &str, matches: impl Fn(&Value) -> bool) -> Option<&'a Value> {
        self.run?.figures.iter().find(|v| v["bench"] == bench && matches(v))
    }

    /// Why a figure of this step is missing.
    fn why_missing(&self) -> String {
        match self.run {
            None => "the step did not run".into(),
            Some(r) if r.exit_code != Some(0) => {
                format!("`{}` failed (exit {:?}); see {}", r.command, r.exit_code, r.log)
            }
            Some(r) => format!("`{}` printed no such figure; see {}", r.command, r.log),
        }
    }

    fn add(&mut self, id: String, label: String, value: Option<f64>, unit: &'static str, target: Option<Target>) {
        let mark = match (value, &target) {
            (None, _) => Mark::Missing,
            (Some(_), None) => Mark::Info,
            (Some(v), Some(t)) if t.holds(v) => Mark::Pass,
            (Some(_), Some(_)) => Mark::Miss,
        };
        let note = if value.is_none() { self.why_missing() } else { String::new() };
        let run = self.run;
        let of = |f: fn(&StepRun) -> String| run.map(f).unwrap_or_default();
        self.out.push(Figure {
            id,
            label,
            value,
            unit,
            target,
            mark,
            note,
            step: run.map_or("", |r| r.name),
            command: of(|r| r.command.clone()),
            started: of(|r| r.started.clone()),
            finished: of(|r| r.finished.clone()),
            nproc: run.map_or(0, |r| r.nproc),
            load_start: run.map_or([0.0; 3], |r| r.load_start),
            load_end: run.map_or([0.0; 3], |r| r.load_end),
        });
    }

    /// Adds context to the last figure (or replaces the reason it is missing).
    fn note(&mut self, text: String) {
        if let Some(f) = self.out.last_mut() {
            f.note = if f.note.is_empty() || f.mark != Mark::Missing { text } else { format!("{text}; {}", f.note) };
        }
    }
}

fn at_most(bound: f64, text: impl Into<String>) -> Option<Target> {
    Some(Target { op: Op::AtMost, bound, text: text.into() })
}

fn at_least(bound: f64, text: impl Into<String>) -> Option<Target> {
    Some(Target { op: Op::AtLeast, bound, text: text.into() })
}

fn below(bound: f64, text: impl Into<String>) -> Option<Target> {
    Some(Target { op: Op::Below, bound, text: text.into() })
}

fn exactly(bound: f64, text: impl Into<String>) -> Option<Target> {
    Some(Target { op: Op::Exactly, bound, text: text.into() })
}

fn number(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, key| v.get(key))?.as_f64()
}

/// Every figure of the report, in the order of SPEC §12 / issue 11.
fn figures(runs: &[StepRun]) -> Vec<Figure> {
    let of = |name: &str| FigureSet { run: runs.iter().find(|r| r.name == name), out: Vec::new() };
    let mut all = Vec::new();

    for provider in ["embedded", "bind"] {
        let mut set = of(if provider == "embedded" { "failover-embedded" } else { "failover-bind" });
        let line = set.find("failover", |v| v["provider"] == provider).cloned();
        let label = if provider == "bind" { "BIND (RFC 2136)" } else { "embedded server" };
        let bound = line.as_ref().and_then(|l| number(l, &["bound_s"])).unwrap_or(3.25);
        let context = line.as_ref().map(|l| match l["skipped"].as_str() {
            Some(why) => format!("skipped: {why}"),
            None => {
                format!("{} of {} trials; max {:.2} s", l["samples"], l["trials"], number(l, &["max_s"]).unwrap_or(0.0))
            }
        });
        for (quantile, id) in [("p50", "p50_s"), ("p95", "p95_s")] {
            let target = if quantile == "p95" {
                at_most(bound, "interval × fall + 250 ms; SPEC §12")
            } else {
                at_most(bound, "interval × fall + 250 ms; SPEC §12 sets it at p95")
            };
            set.add(
                format!("failover.{provider}.{id}"),
                format!("Failover latency {quantile}, {label}: endpoint down → authoritative answer changed (interval 1 s, fall 3)"),
                line.as_ref().and_then(|l| number(l, &[id])),
                "s",
                target,
            );
            if let Some(c) = &context {
                set.note(c.clone());
            }
        }
        all.extend(set.out);
    }

    let mut set = of("planner");
    for endpoints in [1_000u64, 10_000, 100_000] {
        let line = set.find("planner", |v| v["endpoints"].as_u64() == Some(endpoints)).cloned();
        set.add(
            format!("planner.{endpoints}.cpu_ms"),
            format!("Planner: one plan over {} endpoints (CPU time per plan)", thousands(endpoints as f64)),
            line.as_ref().and_then(|l| number(l, &["cpu_ms_mean"]).or_else(|| number(l, &["wall_ms_median"]))),
            "ms",
            at_most(50.0, "SPEC §12, set at 100 000 endpoints"),
        );
        if let Some(l) = &line {
            set.note(format!(
                "wall {:.2} ms (median of {}); {} records",
                number(l, &["wall_ms_median"]).unwrap_or(f64::NAN),
                l["runs"],
                l["records"]
            ));
        }
    }
    all.extend(set.out);

    let mut set = of("probes");
    let line = set.find("probes", |_| true).cloned();
    let get = |path: &[&str]| line.as_ref().and_then(|l| number(l, path));
    let endpoints = get(&["endpoints"]).unwrap_or(10_000.0);
    set.add(
        "probes.engine.probes_per_s".into(),
        format!("Probe engine: probes/s over {} HTTP endpoints at 1 s", thousands(endpoints)),
        get(&["engine", "probes_per_s"]),
        "probes/s",
        at_least(9_900.0, "sustains 10 000 endpoints at 1 s; SPEC §12, issue 12"),
    );
    set.add(
        "probes.engine_over_floor".into(),
        "Probe engine CPU per probe ÷ a bare connect + GET loop (the floor)".into(),
        get(&["engine_over_floor"]),
        "×",
        at_most(1.3, "SPEC §12"),
    );
    if let (Some(engine), Some(floor)) = (get(&["engine", "cpu_us_per_probe"]), get(&["floor", "cpu_us_per_probe"])) {
        set.note(format!("engine {engine:.1} µs, floor {floor:.1} µs of CPU per probe"));
    }
    set.add(
        "probes.engine.peak_rss_mb".into(),
        "Probe engine: peak resident memory (VmHWM)".into(),
        get(&["engine", "peak_rss_mb"]),
        "MB",
        below(150.0, "SPEC §12"),
    );
    set.add(
        "probes.blackbox_over_engine".into(),
        "prometheus blackbox_exporter CPU per probe ÷ the probe engine's".into(),
        get(&["blackbox_over_engine"]),
        "×",
        at_least(6.0, "issue 12; SPEC §12: a ratio measured in one run"),
    );
    match (get(&["blackbox", "cpu_us_per_probe"]), get(&["blackbox", "probes_per_s"])) {
        (Some(cpu), Some(rate)) => set.note(format!("blackbox_exporter {cpu:.1} µs per probe at {rate:.0} probes/s")),
        _ => {
            if let Some(why) = line.as_ref().and_then(|l| l["blackbox_missing"].as_str()) {
                set.note(why.to_string());
            }
        }
    }
    set.add(
        "probes.blackbox.peak_rss_mb".into(),
        "prometheus blackbox_exporter: peak resident memory (VmHWM)".into(),
        get(&["blackbox", "peak_rss_mb"]),
        "MB",
        None,
    );
    if let (Some(rate), Some(engine)) = (get(&["blackbox", "probes_per_s"]), get(&["engine", "peak_rss_mb"])) {
        set.note(format!("at {rate:.0} probes/s; the engine: {engine:.1} MB at {} endpoints", thousands(endpoints)));
    }
    all.extend(set.out);

    let mut set = of("route53");
    let line = set.find("route53_failover", |_| true).cloned();
    let get = |key: &str| line.as_ref().and_then(|l| number(l, &[key]));
    let fewest = match (get("names"), get("records"), get("batch_records_max")) {
        (Some(names), Some(records), Some(max)) if names > 0.0 => {
            let names_per_call = (max / (records / names)).floor().max(1.0);
            Some((names / names_per_call).ceil())
        }
        _ => None,
    };
    set.add(
        "route53.failover_1000.change_calls".into(),
        format!(
            "Route 53: ChangeResourceRecordSets calls to fail over {} names ({} records)",
            thousands(get("names").unwrap_or(1000.0)),
            thousands(get("records").unwrap_or(6000.0))
        ),
        get("change_calls"),
        "calls",
        fewest.and_then(|f| at_most(f, "the fewest the 1 000-records-per-call limit allows; SPEC §12 names no figure")),
    );
    set.add(
        "route53.failover_1000.calls_total".into(),
        "Route 53: every API call of that failover (reads, changes, INSYNC polls)".into(),
        get("calls_total"),
        "calls",
        None,
    );
    if let Some(by_op) = line.as_ref().and_then(|l| l["calls_by_operation"].as_object()) {
        let parts: Vec<String> =
            by_op.iter().filter(|(_, n)| n.as_u64() != Some(0)).map(|(op, n)| format!("{op} {n}")).collect();
        set.note(parts.join(", "));
    }
    all.extend(set.out);

    let mut set = of("steady-writes");
    let line = set.find("steady_writes", |_| true).cloned();
    for provider in ["embedded", "bind"] {
        let get = |key: &str| line.as_ref().and_then(|l| number(l, &["providers", provider, key]));
        set.add(
            format!("steady.{provider}.writes_per_hour"),
            format!(
                "Provider writes per hour in steady state, {} (veer run, 10 records)",
                if provider == "bind" { "BIND" } else { "embedded" }
            ),
            get("writes_per_hour"),
            "writes/h",
            exactly(0.0, "SPEC §12"),
        );
        if let (Some(l), Some(writes), Some(reads)) = (&line, get("writes"), get("reads_per_hour")) {
            set.note(format!(
                "{writes} writes in a {:.0} s window after converging in {:.0} s; {} reads/h",
                number(l, &["window_s"]).unwrap_or(0.0),
                number(l, &["converged_after_s"]).unwrap_or(0.0),
                thousands(reads)
            ));
        }
    }
    all.extend(set.out);

    let mut set = of("steady-rss");
    let line = set.find("steady_rss", |_| true).cloned();
    let get = |key: &str| line.as_ref().and_then(|l| number(l, &[key]));
    set.add(
        "rss.veer_run.peak_rss_mb".into(),
        format!(
            "Peak resident memory of veer run with {} endpoints (VmHWM)",
            thousands(get("endpoints").unwrap_or(10_000.0))
        ),
        get("peak_rss_mb"),
        "MB",
        below(150.0, "SPEC §12's bound for the probe engine, applied to the whole process"),
    );
    if let Some(l) = &line {
        set.note(format!(
            "{:.1} MB before the first /metrics scrape; after {:.0} s converging and a {:.0} s window with {} scrapes; \
             {:.0} probes/s, {:.1} µs CPU per probe",
            number(l, &["peak_rss_mb_before_scrapes"]).unwrap_or(f64::NAN),
            number(l, &["converged_after_s"]).unwrap_or(0.0),
            number(l, &["window_s"]).unwrap_or(0.0),
            l["metrics_scrapes"],
            number(l, &["probes_per_s"]).unwrap_or(0.0),
            number(l, &["cpu_us_per_probe"]).unwrap_or(0.0)
        ));
    }
    all.extend(set.out);
    all
}

// --- rendering --------------------------------------------------------------------

#[derive(Serialize)]
struct Machine {
    nproc: usize,
    cpu: String,
    kernel: String,
    memory_gb: f64,
}

#[derive(Serialize)]
struct Report {
    generated: String,
    quick: bool,
    command: String,
    commit: String,
    machine: Machine,
    seconds: f64,
    figures: Vec<Figure>,
    steps: Vec<StepRun>,
}

fn value_text(f: &Figure) -> String {
    let Some(v) = f.value else { return "not measured".into() };
    match f.unit {
        "s" => format!("{v:.2} s"),
        "ms" if v < 1.0 => format!("{v:.3} ms"),
        "ms" => format!("{v:.2} ms"),
        "MB" => format!("{v:.1} MB"),
        "×" => format!("{v:.2}×"),
        unit => format!("{} {unit}", thousands(v)),
    }
}

fn target_text(f: &Figure) -> String {
    let Some(t) = &f.target else { return "—".into() };
    let bound = match f.unit {
        "s" => format!("{:.2} s", t.bound),
        "×" => format!("{}×", t.bound),
        unit => format!("{} {unit}", thousands(t.bound)),
    };
    let op = match t.op {
        Op::AtMost => "≤",
        Op::AtLeast => "≥",
        Op::Below => "<",
        Op::Exactly => "=",
    };
    format!("{op} {bound} ({})", t.text)
}

fn mark_text(mark: Mark) -> &'static str {
    match mark {
        Mark::Pass => "pass",
        Mark::Miss => "**miss**",
        Mark::Info => "—",
        Mark::Missing => "**not measured**",
    }
}

/// `12345.6` → `12 346`; small numbers keep up to one decimal.
fn thousands(v: f64) -> String {
    if v.abs() < 100.0 && v.fract() != 0.0 {
        return format!("{v:.1}");
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

fn load_text(l: [f64; 3]) -> String {
    format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])
}

fn table(figures: &[Figure]) -> String {
    let mut out = String::from("| figure | value | target | mark | notes |\n|---|---|---|---|---|\n");
    for f in figures {
        out += &format!(
            "| {} | {} | {} | {} | {} |\n",
            f.label,
            value_text(f),
            target_text(f),
            mark_text(f.mark),
            f.note.replace('|', "\\|")
        );
    }
    out
}

fn markdown(r: &Report) -> String {
    let count = |m: Mark| r.figures.iter().filter(|f| f.mark == m).count();
    let mut out = format!(
        "# veer benchmark report\n\n\
         Generated {} by `{}` at commit `{}` in {:.0} s.\n\
         Machine: {} CPUs ({}), {:.1} GB memory, Linux {}.\n\n\
         **{} pass, {} miss, {} not measured** ({} figures for context).\n\n",
        r.generated,
        r.command,
        r.commit,
        r.seconds,
        r.machine.nproc,
        r.machine.cpu,
        r.machine.memory_gb,
        r.machine.kernel,
        count(Mark::Pass),
        count(Mark::Miss),
        count(Mark::Missing),
        count(Mark::Info)
    );
    if r.quick {
        out += "> **Quick run**: small trial counts and short windows. The figures are indicative only; \
                the report of record is `scripts/bench report` on an idle machine.\n\n";
    }
    out += &table(&r.figures);
    out += "\nTargets: SPEC §12, and issue 12 where SPEC §12 names no number. CPU figures are CPU time \
            (/proc), so other load on the machine inflates them less than wall time.\n\n\
            ## How each figure was measured\n\n\
            Run from the repository root; each row's figures come from that command's `BENCH_JSON` lines \
            (also in `report.json`, with the raw objects).\n\n\
            | step | command | started (UTC) | took | nproc | load avg 1/5/15 min, start → end | exit |\n\
            |---|---|---|---|---|---|---|\n";
    for s in &r.steps {
        out += &format!(
            "| {} | `{}` | {} | {:.0} s | {} | {} → {} | {} |\n",
            s.name,
            s.command,
            s.started,
            s.seconds,
            s.nproc,
            load_text(s.load_start),
            load_text(s.load_end),
            s.exit_code.map_or("killed".to_string(), |c| c.to_string())
        );
    }
    out += "\nReproduce: `scripts/bench report` (about 25 minutes; `--quick` for a few). \
            Logs of each step are in `target/bench/logs/`.\n";
    out
}

// --- the machine ------------------------------------------------------------------

fn nproc() -> usize {
    std::thread::available_parallelism().map_or(0, usize::from)
}

fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut fields = text.split_whitespace().map(|v| v.parse().unwrap_or(f64::NAN));
    [(); 3].map(|_| fields.next().unwrap_or(f64::NAN))
}

fn machine() -> Machine {
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

fn utc_now() -> String {
    output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"])
}

/// The commit measured, `+dirty` when the tree has uncommitted changes.
fn commit() -> String {
    let head = output("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = !output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    if dirty { format!("{head}+dirty") } else { head }
}

//! Every figure of the report, where it comes from and its target (ARCHITECTURE.md §9,
//! and issue 12 where ARCHITECTURE.md §9 names no number).

use crate::figures::{Figure, FigureSet, at_least, at_most, below, exactly, number};
use crate::render::thousands;
use crate::steps::StepRun;

/// Every figure of the report, in the order of ARCHITECTURE.md §9 / issue 11.
pub fn figures(runs: &[StepRun]) -> Vec<Figure> {
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
                at_most(bound, "interval × fall + 250 ms; ARCHITECTURE.md §9")
            } else {
                at_most(bound, "interval × fall + 250 ms; ARCHITECTURE.md §9 sets it at p95")
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

    let mut set = of("failover-hung");
    let line = set.find("failover", |v| v["provider"] == "hung").cloned();
    let bound = line.as_ref().and_then(|l| number(l, &["bound_s"])).unwrap_or(3.25);
    set.add(
        "failover.hung.p95_s".into(),
        "Failover latency p95 on the embedded server while the record's other provider (BIND) hangs (SIGSTOP)".into(),
        line.as_ref().and_then(|l| number(l, &["p95_s"])),
        "s",
        at_most(bound, "the same bound as without the outage: interval × fall + 250 ms (issue 19)"),
    );
    if let Some(l) = &line {
        set.note(format!(
            "{} of {} trials; p50 {:.2} s",
            l["samples"],
            l["trials"],
            number(l, &["p50_s"]).unwrap_or(f64::NAN)
        ));
    }
    set.add(
        "failover.hung.round_p95_s".into(),
        "Leader round duration p95 while one provider hangs".into(),
        line.as_ref().and_then(|l| number(l, &["round_p95_s"])),
        "s",
        at_most(2.0, "the round deadline at interval 1 s (2 × interval, at least 2 s)"),
    );
    all.extend(set.out);

    let mut set = of("planner");
    for endpoints in [1_000u64, 10_000, 100_000] {
        let line = set.find("planner", |v| v["endpoints"].as_u64() == Some(endpoints)).cloned();
        set.add(
            format!("planner.{endpoints}.cpu_ms"),
            format!("Planner: one plan over {} endpoints (CPU time per plan)", thousands(endpoints as f64)),
            line.as_ref().and_then(|l| number(l, &["cpu_ms_mean"]).or_else(|| number(l, &["wall_ms_median"]))),
            "ms",
            at_most(50.0, "ARCHITECTURE.md §9, set at 100 000 endpoints"),
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
        at_least(9_900.0, "sustains 10 000 endpoints at 1 s; ARCHITECTURE.md §9, issue 12"),
    );
    set.add(
        "probes.engine_over_floor".into(),
        "Probe engine CPU per probe ÷ a bare connect + GET loop (the floor)".into(),
        get(&["engine_over_floor"]),
        "×",
        at_most(1.3, "ARCHITECTURE.md §9"),
    );
    if let (Some(engine), Some(floor)) = (get(&["engine", "cpu_us_per_probe"]), get(&["floor", "cpu_us_per_probe"])) {
        set.note(format!("engine {engine:.1} µs, floor {floor:.1} µs of CPU per probe"));
    }
    set.add(
        "probes.engine.peak_rss_mb".into(),
        "Probe engine: peak resident memory (VmHWM)".into(),
        get(&["engine", "peak_rss_mb"]),
        "MB",
        below(150.0, "ARCHITECTURE.md §9"),
    );
    set.add(
        "probes.blackbox_over_engine".into(),
        "prometheus blackbox_exporter CPU per probe ÷ the probe engine's".into(),
        get(&["blackbox_over_engine"]),
        "×",
        at_least(6.0, "issue 12; ARCHITECTURE.md §9: a ratio measured in one run"),
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
        fewest.and_then(|f| {
            at_most(f, "the fewest the 1 000-records-per-call limit allows; ARCHITECTURE.md §9 names no figure")
        }),
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
            exactly(0.0, "ARCHITECTURE.md §9"),
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
        below(150.0, "ARCHITECTURE.md §9's bound for the probe engine, applied to the whole process"),
    );
    if let Some(l) = &line {
        set.note(format!(
            "{:.1} MB before the first /metrics scrape; after {:.0} s converging and a {:.0} s window with {} scrapes \
             of {:.1} MB each; {:.0} probes/s, {:.1} µs CPU per probe",
            number(l, &["peak_rss_mb_before_scrapes"]).unwrap_or(f64::NAN),
            number(l, &["converged_after_s"]).unwrap_or(0.0),
            number(l, &["window_s"]).unwrap_or(0.0),
            l["metrics_scrapes"],
            number(l, &["metrics_mb"]).unwrap_or(f64::NAN),
            number(l, &["probes_per_s"]).unwrap_or(0.0),
            number(l, &["cpu_us_per_probe"]).unwrap_or(0.0)
        ));
    }
    all.extend(set.out);
    all
}

//! The shipped scenarios (policies/scenarios/, ARCHITECTURE.md §8 items 2–4) run through
//! the simulator: no invariant breaks, and each shows the outcome it promises.

use std::path::Path;
use std::process::Command;
use veer::sim::{self, Run, Step};

fn run(name: &str) -> Run {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/scenarios").join(name);
    let loaded = sim::scenario::load(&path, None).unwrap_or_else(|d| panic!("{name}: {d:?}"));
    let run = sim::run(&loaded.scenario, &loaded.policies);
    assert!(run.violations.is_empty(), "{name} (seed {}): {:#?}", run.seed, run.violations);
    run
}

fn at(run: &Run, t: f64) -> &Step {
    run.steps.iter().find(|s| s.t == t).unwrap_or_else(|| panic!("no step at {t}s"))
}

#[test]
fn mass_recovery_keeps_every_returning_endpoint_within_its_stage_and_capacity() {
    let run = run("mass-recovery.yaml");
    let returning = ["use1-a", "use1-b", "use1-c", "use1-d"];
    let stages = [0.10, 0.25, 0.50, 1.0];
    for step in run.steps.iter().filter(|s| s.t >= 60.0) {
        // Four returning endpoints at level L next to four at full weight.
        let stage = (((step.t - 60.0) / 30.0).floor() as usize).min(3);
        let level = stages[stage];
        let ceiling = level * 100.0 / (4.0 * level + 4.0);
        for id in returning {
            assert!(step.weights[id] <= ceiling + 0.15, "{id} at {}s: {} > {ceiling}", step.t, step.weights[id]);
        }
        // The endpoints that stayed up never carry more than during the outage
        // (four of eight equal endpoints: 25 % each): recovery only relieves them.
        for (id, w) in step.weights.iter().filter(|(id, _)| !returning.contains(&id.as_str())) {
            assert!(*w <= 25.0 + 0.15, "{id} above its outage share at {}s: {w}", step.t);
        }
    }
    assert_eq!(at(&run, 60.0).decisions.len(), 4, "all four return together at the first stage");
    assert!(at(&run, 150.0).weights.values().all(|w| (*w - 12.5).abs() < 0.01), "fully recovered");
}

#[test]
fn set_only_mass_recovery_rejoins_at_most_max_join_percent_per_hold() {
    let run = run("mass-recovery-set-only.yaml");
    let mut joins: Vec<f64> = Vec::new();
    for step in &run.steps {
        for d in step.decisions.iter().filter(|d| d.from == 0.0 && d.to > 0.0) {
            joins.push(step.t);
            let _ = d;
        }
    }
    assert_eq!(joins.len(), 4);
    for (i, t) in joins.iter().enumerate() {
        let in_window = joins[..=i].iter().filter(|j| t - **j < 60.0).count();
        assert!(in_window <= 2, "25 % of eight equal endpoints is two per minute: {joins:?}");
    }
}

#[test]
fn flapping_checks_remove_only_the_really_flapping_endpoint_within_the_velocity_cap() {
    let run = run("flapping.yaml");
    for step in &run.steps {
        assert!(step.weights["euw1-a"] > 0.0 && step.weights["use1-b"] > 0.0, "at {}s: {:?}", step.t, step.weights);
    }
    let removals = run.steps.iter().flat_map(|s| &s.decisions).filter(|d| d.to == 0.0).count();
    assert_eq!(removals, 1, "use1-a leaves once; its later failures are held by the velocity cap");
    assert!(run.steps.iter().any(|s| s.held.iter().any(|h| h.reason.contains("velocity cap"))));
}

#[test]
fn a_fat_finger_drain_is_refused_and_even_forced_never_empties_the_record() {
    let run = run("fat-finger-drain.yaml");
    let refused = at(&run, 10.0);
    assert_eq!(refused.answers.len(), 8);
    assert!(
        refused.held.iter().any(|h| h.reason.contains("refused by guard") && h.reason.contains("minCapacityPercent"))
    );
    let forced = at(&run, 40.0);
    assert_eq!(forced.answers, ["198.51.100.30", "198.51.100.31"]);
    for step in run.steps.iter().filter(|s| s.t >= 70.0 && s.t < 100.0) {
        assert!(!step.answers.is_empty(), "forced drains of everything still leave answers at {}s", step.t);
    }
    assert!(at(&run, 100.0).decisions.iter().all(|d| d.reason.contains("warm-up starts at 10%")));
}

#[test]
fn the_json_output_follows_the_documented_schema() {
    let run = run("fat-finger-drain.yaml");
    let value: serde_json::Value = serde_json::from_str(&sim::render::json(&run)).unwrap();
    assert_eq!(value["scenario"], "fat-finger-drain");
    assert_eq!(value["seed"], 5);
    assert!(value["violations"].as_array().unwrap().is_empty());
    let step = &value["steps"][40];
    assert_eq!(step["t"], 40.0);
    assert_eq!(step["record"], "web.example.com.");
    assert_eq!(step["weights"]["euw1-a"], 50.0);
    assert_eq!(step["weights"]["use1-a"], 0.0);
    assert_eq!(step["answers"].as_array().unwrap().len(), 2);
    let decision = &step["decisions"][0];
    assert_eq!(
        (decision["endpoint"].as_str(), decision["from"].as_f64(), decision["to"].as_f64()),
        (Some("use1-a"), Some(12.5), Some(0.0))
    );
    assert!(decision["reason"].as_str().unwrap().contains("drained by o2"));
    assert!(value["steps"][10]["held"][0]["reason"].as_str().unwrap().contains("refused"));
}

#[test]
fn the_same_scenario_gives_the_same_timeline() {
    let a = sim::render::json(&run("flapping.yaml"));
    let b = sim::render::json(&run("flapping.yaml"));
    assert_eq!(a, b);
}

#[test]
fn veer_simulate_prints_each_format_and_exits_zero_when_invariants_hold() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for format in ["table", "json", "svg"] {
        let out = Command::new(env!("CARGO_BIN_EXE_veer"))
            .args(["simulate", "--scenario", "policies/scenarios/mass-recovery.yaml", "-o", format])
            .current_dir(root)
            .output()
            .unwrap();
        assert!(out.status.success(), "{format}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        match format {
            "table" => assert!(text.contains("invariants I1 I4 I5 I6 I7: ok"), "{text}"),
            "json" => assert!(text.starts_with(r#"{"scenario":"mass-recovery","seed":7,"steps":["#)),
            _ => assert!(text.starts_with("<svg") && text.contains("<polyline") && text.trim_end().ends_with("</svg>")),
        }
    }
}

#[test]
fn veer_simulate_reports_scenario_errors_with_positions_and_exit_1() {
    let dir = std::env::temp_dir().join(format!("veer-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: veer/v1\nkind: Scenario\nmetadata: { name: bad }\nspec:\n  duration: 1m\n  events:\n    - { at: 5s, endpoint: nope, health: down }\n    - { at: 6s, pool: aws-use1, health: sideways }\n",
    )
    .unwrap();
    let policy = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples/multicloud/weighted.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_veer"))
        .args(["simulate", "--scenario"])
        .arg(&file)
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yaml:8:"), "{stderr}");
    std::fs::write(&file, "apiVersion: veer/v1\nkind: Scenario\nmetadata: { name: bad }\nspec:\n  duration: 1m\n  events:\n    - { at: 5s, endpoint: nope, health: down }\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_veer"))
        .args(["simulate", "--scenario"])
        .arg(&file)
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("bad.yaml:7:27: error: unknown endpoint `nope`"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn every_shipped_scenario_loads_and_keeps_every_invariant() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/scenarios");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 4, "{names:?}");
    for name in names {
        run(&name);
    }
}

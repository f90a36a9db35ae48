//! `veer simulate --scenario S [--policy P] [-o table|json|svg]`.

use crate::sim;
use std::path::PathBuf;
use std::process::ExitCode;

/// Output formats of `veer simulate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The changes and holds, tick by tick.
    Table,
    /// One JSON object (ARCHITECTURE.md §7).
    Json,
    /// A line chart of the weights over time.
    Svg,
}

/// Arguments of `veer simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scenario file (`kind: Scenario`).
    #[arg(long, value_name = "FILE")]
    pub scenario: PathBuf,
    /// Run against this policy file instead of the scenario's `spec.policy`.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: Format,
}

/// Runs the scenario, prints the timeline, and exits 1 if an invariant broke.
pub fn run(args: &Args) -> ExitCode {
    let loaded = match sim::scenario::load(&args.scenario, args.policy.as_deref()) {
        Ok(l) => l,
        Err(diagnostics) => {
            for d in diagnostics {
                eprintln!("{d}");
            }
            return ExitCode::from(1);
        }
    };
    let run = sim::run(&loaded.scenario, &loaded.policies);
    let text = match args.output {
        Format::Table => sim::render::table(&run),
        Format::Json => sim::render::json(&run) + "\n",
        Format::Svg => sim::render::svg(&run),
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
    if run.violations.is_empty() {
        return ExitCode::SUCCESS;
    }
    for v in &run.violations {
        super::error_line(&format!("invariant {} broke at {}s: {}", v.invariant, v.t, v.detail), None);
    }
    ExitCode::from(1)
}

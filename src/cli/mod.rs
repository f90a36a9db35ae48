//! The `veer` command line (ARCHITECTURE.md §7). Each subcommand is a small function that
//! reads inputs, calls the core, prints, and returns an exit code.

mod check;
pub mod client;
mod operator;
mod plan;
pub use plan::shutdown_signal;
mod simulate;
mod validate;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// `veer --version`: the crate version and the git revision it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (revision ", env!("VEER_REVISION"), ")");

/// Exit code of a command line that cannot be parsed (an unknown flag, a missing
/// argument): EX_USAGE of sysexits.h, distinct from every command's own codes
/// (`veer plan` exits 2 for "changes pending").
pub const USAGE_ERROR: u8 = 64;

/// veer — multi-cloud DNS failover orchestrator.
#[derive(Debug, Parser)]
#[command(name = "veer", version = VERSION, about, propagate_version = true)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// veer's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the controller config and policies; print every error as PATH:LINE:COL.
    Validate(validate::Args),
    /// Probe every endpoint once and print a table; exit 1 when any is unhealthy.
    Check(check::Args),
    /// Read providers, probe once, plan and print the diff; write nothing (exit 2: changes pending).
    Plan(plan::Args),
    /// Run the controller; `--once` does one observe → plan → enact round and exits.
    Run(plan::RunArgs),
    /// A self-contained demo: embedded DNS, local backends, a failure and a staged recovery, narrated.
    Demo {
        /// Keep running after the narration, for exploring.
        #[arg(long)]
        keep_running: bool,
    },
    /// Print the configuration reference (Markdown), as in the README.
    Reference {
        /// Print the metrics table instead.
        #[arg(long)]
        metrics: bool,
    },
    /// Run the planner on virtual time through a scenario; exit 1 if an invariant broke.
    Simulate(simulate::Args),
    /// Failover and leader hand-off rehearsals: list, run, abort, report (exit 3: refused).
    Drill(operator::drill::Args),
    /// Leader, epoch and per record: answers, weights, health, warm-up, overrides, held changes.
    Status(operator::StatusArgs),
    /// Take an endpoint or pool out of service (impact preview, confirmation; exit 3 if a guard refuses).
    Drain(operator::DrainArgs),
    /// Remove the drain of an endpoint or pool.
    Undrain(operator::UndrainArgs),
    /// Publish fixed relative weights for a record.
    Pin(operator::PinArgs),
    /// Remove a record's pin.
    Unpin(operator::UnpinArgs),
    /// Serve a failover record from a pool (through warm-up unless --now).
    Failover(operator::FailoverArgs),
    /// Stop automated changes for a record, a provider's records, or all.
    Freeze(operator::FreezeArgs),
    /// Resume automated changes.
    Unfreeze(operator::UnfreezeArgs),
    /// The audit trail: applied plans and override events, newest first.
    History(operator::HistoryArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Options shared by commands that read the controller config.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// Controller config file.
    #[arg(short = 'c', long = "config", env = "VEER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    /// The config file: `-c`, `VEER_CONFIG`, or `./veer.yaml`; prints a one-line
    /// error naming `command` when there is none.
    pub fn resolve(&self, command: &str) -> Option<PathBuf> {
        let default = PathBuf::from("veer.yaml");
        match &self.config {
            Some(path) => Some(path.clone()),
            None if default.exists() => Some(default),
            None => {
                error_line(
                    "no controller config: ./veer.yaml does not exist",
                    Some(&format!("veer {command} -c veer.yaml")),
                );
                None
            }
        }
    }
}

/// Prints positioned diagnostics to stderr; exit code 1.
pub fn report(diagnostics: &[crate::policy::Diagnostic]) -> ExitCode {
    for d in diagnostics {
        eprintln!("{d}");
    }
    ExitCode::from(1)
}

/// The async runtime for one command (two worker threads: the machines are small).
pub fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => Some(r),
        Err(e) => {
            error_line(&format!("cannot start the async runtime: {e}"), None);
            None
        }
    }
}

/// How a command prints its result (`-o table|json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns for a person.
    Table,
    /// One JSON document, for scripts.
    Json,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per event.
    Json,
}

/// The log filter without `RUST_LOG`: veer's events at `info`; the embedded
/// server's per-query lines (hickory logs every query at `info`) only from `warn`.
pub const DEFAULT_LOG_FILTER: &str = "info,hickory_server=warn";

/// Logs to stderr, filtered by `RUST_LOG` (default [`DEFAULT_LOG_FILTER`]).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Plan(args) => plan::run_plan(&args),
        Command::Run(args) => plan::run_once(&args),
        Command::Simulate(args) => simulate::run(&args),
        Command::Drill(args) => operator::drill::run(&args),
        Command::Demo { keep_running } => {
            let Some(runtime) = runtime() else { return ExitCode::from(1) };
            match runtime.block_on(crate::demo::run(keep_running)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    error_line(&format!("demo: {e:#}"), None);
                    ExitCode::from(1)
                }
            }
        }
        Command::Status(args) => operator::status(&args),
        Command::Drain(args) => operator::drain(&args),
        Command::Undrain(args) => operator::undrain(&args),
        Command::Pin(args) => operator::pin(&args),
        Command::Unpin(args) => operator::unpin(&args),
        Command::Failover(args) => operator::failover(&args),
        Command::Freeze(args) => operator::freeze(&args),
        Command::Unfreeze(args) => operator::unfreeze(&args),
        Command::History(args) => operator::history(&args),
        Command::Completions { shell } => operator::completions(shell),
        Command::Reference { metrics } => {
            match metrics {
                true => print!("{}", crate::metrics::Metrics::new().reference_markdown()),
                false => print!("{}", crate::policy::reference::markdown()),
            }
            ExitCode::SUCCESS
        }
    }
}

/// Prints a one-line error with an optional hint, the way every command does.
pub fn error_line(message: &str, hint: Option<&str>) {
    match hint {
        Some(hint) => eprintln!("veer: error: {message} (hint: {hint})"),
        None => eprintln!("veer: error: {message}"),
    }
}

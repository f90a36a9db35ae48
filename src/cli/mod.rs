//! The `veer` command line (SPEC §10). Each subcommand is a small function that
//! reads inputs, calls the core, prints, and returns an exit code.

mod simulate;
mod validate;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// veer — multi-cloud DNS failover orchestrator.
#[derive(Debug, Parser)]
#[command(name = "veer", version, about, propagate_version = true)]
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
    /// Print the configuration reference (Markdown), as in the README.
    Reference,
    /// Run the planner on virtual time through a scenario; exit 1 if an invariant broke.
    Simulate(simulate::Args),
}

/// Options shared by commands that read the controller config.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// Controller config file.
    #[arg(short = 'c', long = "config", env = "VEER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Runs the parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        Command::Simulate(args) => simulate::run(&args),
        Command::Reference => {
            print!("{}", crate::policy::reference::markdown());
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

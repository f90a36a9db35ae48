//! The `veer` binary: parse the command line and hand over to the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    veer::cli::run(veer::cli::Cli::parse())
}

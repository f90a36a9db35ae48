//! The `veer` binary: parse the command line and hand over to the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    match veer::cli::Cli::try_parse() {
        Ok(cli) => veer::cli::run(cli),
        // --help and --version are "errors" that print to stdout and succeed.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = e.print();
            ExitCode::from(veer::cli::USAGE_ERROR)
        }
    }
}

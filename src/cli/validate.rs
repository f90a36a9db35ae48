//! `veer validate [PATHS…]`.

use super::ConfigArg;
use crate::config;
use crate::policy;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `veer validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files, folders or globs (default: the config's policy paths).
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    config: ConfigArg,
}

/// Validates and prints `ok: N policies, M records` or every error.
pub fn run(args: &Args) -> ExitCode {
    let default_config = Path::new("veer.yaml");
    let config_path = args
        .config
        .config
        .clone()
        .or_else(|| (args.paths.is_empty() && default_config.exists()).then(|| default_config.to_path_buf()));
    let config = match config_path.as_deref().map(config::load) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(diagnostics)) => return super::report(&diagnostics),
    };
    let paths = if args.paths.is_empty() {
        match &config {
            Some(c) if !c.config.policies.is_empty() => c.policy_paths(),
            Some(c) => {
                super::error_line(
                    &format!("{} lists no policies", c.path.display()),
                    Some("add `policies:` to the config or name paths: veer validate PATH…"),
                );
                return ExitCode::from(1);
            }
            None => {
                super::error_line(
                    "nothing to validate: no paths given and no ./veer.yaml",
                    Some("veer validate policies/ or veer validate -c veer.yaml"),
                );
                return ExitCode::from(1);
            }
        }
    } else {
        args.paths.clone()
    };
    let loaded = policy::load(&paths, config.as_ref());
    if !loaded.is_valid() {
        return super::report(&loaded.diagnostics);
    }
    for warning in &loaded.diagnostics {
        eprintln!("{warning}");
    }
    let records: std::collections::BTreeSet<_> =
        loaded.policies.iter().map(|p| p.policy.record_name().clone()).collect();
    let count = |n: usize, what: &str| match n {
        0 => String::new(),
        1 => format!(", 1 {what}"),
        n => format!(", {n} {what}s"),
    };
    let (chaos, drills) = (count(loaded.chaos.len(), "chaos document"), count(loaded.drills.len(), "drill"));
    println!("ok: {} policies, {} records{chaos}{drills}", loaded.policies.len(), records.len());
    ExitCode::SUCCESS
}

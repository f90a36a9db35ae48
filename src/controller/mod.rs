//! The controller's rounds: load config and policies, build providers, observe,
//! plan, enact, persist (SPEC §2). The binary's commands (`veer plan`,
//! `veer run --once`) are thin wrappers around [`round`].

pub mod providers;
pub mod round;
pub mod state;

use crate::config::{self, LoadedConfig};
use crate::policy::{self, Diagnostic, LoadedPolicy};
use std::path::Path;

/// A validated controller config with its policies.
pub struct Setup {
    /// The controller config.
    pub config: LoadedConfig,
    /// Its policies, validated against it.
    pub policies: Vec<LoadedPolicy>,
}

/// Loads the config and the policies it names; any error (I10) is returned with
/// its position, and nothing is used.
pub fn load(config_path: &Path) -> Result<Setup, Vec<Diagnostic>> {
    let config = config::load(config_path)?;
    let loaded = policy::load(&config.policy_paths(), Some(&config));
    if !loaded.is_valid() {
        return Err(loaded.diagnostics);
    }
    if loaded.policies.is_empty() {
        return Err(vec![Diagnostic::error_in_file(config_path, "the config's `policies` match no policy")]);
    }
    Ok(Setup { config, policies: loaded.policies })
}

//! Loading policies from files, folders and globs, with every error at once.

use super::diagnostic::{self, Diagnostic, Findings};
use super::model::FailoverPolicy;
use super::source::{self, DocumentKind};
use super::validate;
use crate::config::{self, LoadedConfig};
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A validated policy with its source and content hash.
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    /// The file it came from.
    pub path: PathBuf,
    /// The policy.
    pub policy: FailoverPolicy,
    /// Content hash of the policy (12 hex digits of SHA-256 over its canonical JSON),
    /// written into ownership records.
    pub hash: String,
}

/// The outcome of loading a set of paths.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Policies that parsed (they may still have semantic errors in `diagnostics`).
    pub policies: Vec<LoadedPolicy>,
    /// Controller configs found among the paths.
    pub configs: Vec<LoadedConfig>,
    /// Scenario files found among the paths (checked by `veer simulate`).
    pub scenarios: Vec<PathBuf>,
    /// Chaos documents found among the paths (`veer run --chaos`), checked
    /// against the config's providers and the policies' endpoints.
    pub chaos: Vec<(PathBuf, crate::chaos::ChaosDocument)>,
    /// Drills that parsed and resolved (they may still have findings in `diagnostics`).
    pub drills: Vec<crate::drill::LoadedDrill>,
    /// Every finding, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    /// True when no finding is an error.
    pub fn is_valid(&self) -> bool {
        !self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Content hash of a policy, independent of formatting and comments.
pub fn policy_hash(policy: &FailoverPolicy) -> String {
    let canonical = serde_json::to_vec(policy).expect("policy serializes");
    let digest = Sha256::digest(&canonical);
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Expands files, folders (recursively, `*.yaml`/`*.yml`, sorted) and globs.
pub fn collect_files(paths: &[PathBuf], diagnostics: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        let text = path.to_string_lossy();
        if text.contains(['*', '?', '[']) {
            match glob::glob(&text) {
                Ok(matches) => {
                    let mut found: Vec<PathBuf> = matches.filter_map(Result::ok).collect();
                    if found.is_empty() {
                        diagnostics.push(Diagnostic::error_in_file(path, "pattern matches no file"));
                    }
                    found.sort();
                    for p in found {
                        walk(&p, &mut files, diagnostics);
                    }
                }
                Err(e) => diagnostics.push(Diagnostic::error_in_file(path, format!("invalid pattern: {e}"))),
            }
        } else {
            walk(path, &mut files, diagnostics);
        }
    }
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(f.clone()));
    files
}

fn walk(path: &Path, files: &mut Vec<PathBuf>, diagnostics: &mut Vec<Diagnostic>) {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
                Err(e) => {
                    diagnostics.push(Diagnostic::error_in_file(path, format!("cannot read folder: {e}")));
                    return;
                }
            };
            entries.sort();
            for entry in entries {
                let is_yaml = entry.extension().is_some_and(|x| x == "yaml" || x == "yml");
                // Hidden entries are skipped: a ConfigMap mounted by the kubelet holds
                // each file again under `..data/` and `..<timestamp>/`.
                let hidden = entry.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if !hidden && (entry.is_dir() || is_yaml) {
                    walk(&entry, files, diagnostics);
                }
            }
        }
        Ok(_) => files.push(path.to_path_buf()),
        Err(e) => diagnostics.push(Diagnostic::error_in_file(path, format!("cannot read: {e}"))),
    }
}

/// Loads every document under `paths`. Policies are checked against `config`
/// when given, otherwise against the nearest ControllerConfig found among the
/// paths in the policy's folder or a parent folder.
pub fn load(paths: &[PathBuf], config: Option<&LoadedConfig>) -> Loaded {
    let mut loaded = Loaded::default();
    let files = collect_files(paths, &mut loaded.diagnostics);
    let mut parsed = Parsed::default();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                loaded.diagnostics.push(Diagnostic::error_in_file(&file, format!("cannot read: {e}")));
                continue;
            }
        };
        parse_text(&file, &text, &mut loaded, &mut parsed);
    }
    check_all(parsed, config, &mut loaded);
    loaded
}

/// Names that must be unique across documents, with where each was first defined.
#[derive(Default)]
pub(crate) struct UniqueNames(HashMap<String, (PathBuf, u64)>);

impl UniqueNames {
    /// Records `name` from `file`, or reports it as a duplicate `what` name.
    pub(crate) fn check(&mut self, what: &str, name: &Spanned<String>, file: &Path, findings: &mut Findings<'_>) {
        if let Some((first, line)) = self.0.get(&name.value) {
            let message =
                format!("duplicate {what} name `{}` (first defined at {}:{line})", name.value, first.display());
            findings.error(name, message);
        } else {
            self.0.insert(name.value.clone(), (file.to_path_buf(), name.referenced.line()));
        }
    }
}

/// Documents that parsed and await semantic checks.
#[derive(Default)]
struct Parsed {
    policies: Vec<(PathBuf, FailoverPolicy)>,
    drills: Vec<(PathBuf, crate::drill::Drill)>,
}

/// Semantic checks of each policy and across policies (duplicate names and
/// records), then of each drill against the policies.
fn check_all(parsed: Parsed, config: Option<&LoadedConfig>, loaded: &mut Loaded) {
    let mut names = UniqueNames::default();
    let mut records: HashMap<(String, String), String> = HashMap::new();
    for (file, policy) in parsed.policies {
        let mut findings = Findings::new(&file, policy.kind.referenced);
        let applicable = config.or_else(|| nearest_config(&file, &loaded.configs));
        validate::check_policy(&policy, applicable.map(|c| &c.config.providers), &mut findings);
        if applicable.is_none() {
            findings.list.push(
                Diagnostic::error_at(
                    &file,
                    policy.spec.publish_to.referenced,
                    "provider references not checked: no controller config found (give -c veer.yaml)",
                )
                .warning(),
            );
        }
        names.check("policy", &policy.metadata.name, &file, &mut findings);
        let record = &policy.spec.record;
        let key = (record.name.value.to_string(), format!("{:?}", record.record_type.value));
        if let Some(owner) = records.get(&key) {
            findings.error(&record.name, format!("record {} {} is already managed by policy `{owner}`", key.0, key.1));
        } else {
            records.insert(key, policy.metadata.name.value.clone());
        }
        loaded.diagnostics.extend(findings.list);
        let hash = policy_hash(&policy);
        loaded.policies.push(LoadedPolicy { path: file, policy, hash });
    }
    check_chaos(config, loaded);
    crate::drill::validate::check_all(parsed.drills, loaded);
    diagnostic::sort(&mut loaded.diagnostics);
}

/// Checks chaos documents against the applicable config's providers and, when
/// policies were loaded with them, against their endpoints.
fn check_chaos(config: Option<&LoadedConfig>, loaded: &mut Loaded) {
    let endpoints = crate::chaos::endpoint_ids(loaded.policies.iter().map(|p| &p.policy));
    for (file, document) in &loaded.chaos {
        let providers = config.or_else(|| nearest_config(file, &loaded.configs)).map(|c| &c.config.providers);
        let known = crate::chaos::Known { providers, endpoints: (!endpoints.is_empty()).then_some(&endpoints) };
        if let Err(errors) = crate::chaos::document::resolve(file, document, known) {
            loaded.diagnostics.extend(errors);
        }
    }
}

/// Parses every document of one file's text into `loaded` (configs, scenarios,
/// diagnostics) and `parsed` (policies awaiting semantic checks).
fn parse_text(file: &Path, text: &str, loaded: &mut Loaded, parsed: &mut Parsed) {
    let docs = source::split_documents(text);
    if docs.is_empty() {
        loaded.diagnostics.push(Diagnostic::error_in_file(file, "file holds no YAML document"));
    }
    for doc in docs {
        match source::document_kind(file, &doc) {
            Err(d) => loaded.diagnostics.push(d),
            Ok((DocumentKind::FailoverPolicy, _)) => match source::parse_document::<FailoverPolicy>(file, &doc) {
                Ok(p) => parsed.policies.push((file.to_path_buf(), p)),
                Err(d) => loaded.diagnostics.push(d),
            },
            Ok((DocumentKind::ControllerConfig, _)) => match config::parse(file, &doc, &std::env::vars().collect()) {
                Ok(c) => loaded.configs.push(c),
                Err(ds) => loaded.diagnostics.extend(ds),
            },
            Ok((DocumentKind::Scenario, _)) => loaded.scenarios.push(file.to_path_buf()),
            Ok((DocumentKind::Chaos, _)) => match crate::chaos::document::parse_document(file, &doc) {
                Ok(c) => loaded.chaos.push((file.to_path_buf(), c)),
                Err(d) => loaded.diagnostics.push(d),
            },
            Ok((DocumentKind::Drill, _)) => match source::parse_document::<crate::drill::Drill>(file, &doc) {
                Ok(d) => parsed.drills.push((file.to_path_buf(), d)),
                Err(d) => loaded.diagnostics.push(d),
            },
        }
    }
}

/// Validates policy text that is not in a file (fuzzing, the admin API):
/// every document is parsed and checked, against `config` when given.
pub fn load_text(name: &Path, text: &str, config: Option<&LoadedConfig>) -> Loaded {
    let mut loaded = Loaded::default();
    let mut parsed = Parsed::default();
    parse_text(name, text, &mut loaded, &mut parsed);
    check_all(parsed, config, &mut loaded);
    loaded
}

/// The config whose folder is the closest ancestor of `file`.
fn nearest_config<'c>(file: &Path, configs: &'c [LoadedConfig]) -> Option<&'c LoadedConfig> {
    let dir = file.parent().unwrap_or(Path::new(""));
    configs.iter().filter(|c| dir.starts_with(c.base_dir())).max_by_key(|c| c.base_dir().components().count())
}

//! The operator commands (ARCHITECTURE.md §7, issues 7 and 13): `veer status`, `drain`,
//! `undrain`, `pin`, `unpin`, `failover`, `freeze`, `unfreeze`, `history`, `drill`.
//! They talk to a replica's admin API only; every change is previewed by the
//! server first, shown, confirmed by typing its name (unless `--yes`), and refused
//! with exit 3 when a guard says no. This module holds what they share: the
//! arguments, the failure type, the author, the hand-over to the leader and the
//! confirmation.

pub(crate) mod drill;
mod history;
pub(crate) mod model;
mod mutate;
mod status;
pub(crate) mod target;
pub(super) mod term;

use super::Output;
use super::client::{AdminClient, ClientError, ServerArgs};
use crate::planner::OverrideAction;
use std::process::ExitCode;

/// Exit code of a change a guard refused (ARCHITECTURE.md §7).
const REFUSED: u8 = 3;

/// Arguments of `veer status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Show one record (policy or record name).
    pub record: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Options of every command that creates an override.
#[derive(Debug, clap::Args)]
pub struct ChangeArgs {
    /// Why (required; kept in the audit history).
    #[arg(long)]
    pub reason: Option<String>,
    /// How long the override lasts, or `none` (only with --force).
    #[arg(long, default_value = "4h", value_name = "DURATION|none")]
    pub ttl: String,
    /// Pass the capacity guards (minCapacityPercent, minHealthyEndpoints); never empties a record.
    #[arg(long)]
    pub force: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Who asks (default: VEER_AUTHOR, else the OS user).
    #[arg(long, env = "VEER_AUTHOR")]
    pub author: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Options of every command that removes overrides.
#[derive(Debug, clap::Args)]
pub struct UndoArgs {
    /// Why (optional; kept in the audit history).
    #[arg(long)]
    pub reason: Option<String>,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Who asks (default: VEER_AUTHOR, else the OS user).
    #[arg(long, env = "VEER_AUTHOR")]
    pub author: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Arguments of `veer drain`.
#[derive(Debug, clap::Args)]
pub struct DrainArgs {
    /// ENDPOINT-ID, pool/NAME (either may be prefixed with POLICY/).
    pub target: String,
    #[command(flatten)]
    pub change: ChangeArgs,
}

/// Arguments of `veer undrain`.
#[derive(Debug, clap::Args)]
pub struct UndrainArgs {
    /// The drained ENDPOINT-ID or pool/NAME.
    pub target: String,
    #[command(flatten)]
    pub undo: UndoArgs,
}

/// Arguments of `veer pin`.
#[derive(Debug, clap::Args)]
pub struct PinArgs {
    /// The record (policy or record name).
    pub record: String,
    /// Relative weights; endpoints not listed get 0.
    #[arg(required = true, value_name = "ENDPOINT=WEIGHT")]
    pub weights: Vec<String>,
    #[command(flatten)]
    pub change: ChangeArgs,
}

/// Arguments of `veer unpin`.
#[derive(Debug, clap::Args)]
pub struct UnpinArgs {
    /// The pinned record.
    pub record: String,
    #[command(flatten)]
    pub undo: UndoArgs,
}

/// Arguments of `veer failover`.
#[derive(Debug, clap::Args)]
pub struct FailoverArgs {
    /// A record with `routing: failover`.
    pub record: String,
    /// The pool to serve from.
    #[arg(long = "to", value_name = "POOL")]
    pub to: String,
    /// Skip warm-up: serve the pool at full weight at once.
    #[arg(long)]
    pub now: bool,
    #[command(flatten)]
    pub change: ChangeArgs,
}

/// Which records a freeze names: one record, a provider's, or all.
#[derive(Debug, clap::Args)]
pub struct FreezeScopeArgs {
    /// The record (policy or record name).
    pub record: Option<String>,
    /// Every record published to this provider.
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    /// Every record.
    #[arg(long)]
    pub all: bool,
}

/// Arguments of `veer freeze`.
#[derive(Debug, clap::Args)]
pub struct FreezeArgs {
    #[command(flatten)]
    pub scope: FreezeScopeArgs,
    #[command(flatten)]
    pub change: ChangeArgs,
}

/// Arguments of `veer unfreeze`.
#[derive(Debug, clap::Args)]
pub struct UnfreezeArgs {
    #[command(flatten)]
    pub scope: FreezeScopeArgs,
    #[command(flatten)]
    pub undo: UndoArgs,
}

/// Arguments of `veer history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// One record (policy or record name).
    pub record: Option<String>,
    /// Only entries since this long ago (`2h`, `30m`) or this time (`2026-11-02`, RFC 3339).
    #[arg(long, value_name = "DURATION|TIME")]
    pub since: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(flatten)]
    pub server: ServerArgs,
}

pub use history::run as history;
pub use mutate::{drain, failover, freeze, pin, undrain, unfreeze, unpin};
pub use status::run as status;

/// Why an operator command stopped: printed as one line with a hint, exit 1.
#[derive(Debug)]
enum Failure {
    Client(ClientError),
    Usage { message: String, hint: Option<String> },
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Self::Client(e)
    }
}

impl From<target::Unresolved> for Failure {
    fn from(e: target::Unresolved) -> Self {
        Self::Usage { message: e.message, hint: e.hint }
    }
}

impl Failure {
    fn usage(message: impl Into<String>, hint: Option<&str>) -> Self {
        Self::Usage { message: message.into(), hint: hint.map(str::to_string) }
    }

    fn exit(self) -> ExitCode {
        match self {
            Self::Client(e) => e.report(),
            Self::Usage { message, hint } => super::error_line(&message, hint.as_deref()),
        }
        ExitCode::from(1)
    }
}

/// Runs `work` on a fresh runtime; a failure is reported and exits 1.
fn block_on<T>(work: impl std::future::Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
    let runtime = super::runtime().ok_or_else(|| Failure::usage("cannot start the async runtime", None))?;
    runtime.block_on(work)
}

/// The status document: raw (for `-o json`) and typed.
async fn fetch_status(client: &AdminClient) -> Result<(serde_json::Value, model::Status), Failure> {
    let raw = client.get("/v1/status", &[]).await?;
    let typed = serde_json::from_value(raw.clone()).map_err(|e| {
        Failure::Client(ClientError::BadResponse { server: client.server(), why: format!("status: {e}") })
    })?;
    Ok((raw, typed))
}

/// One line for an override's action: "drain app/endpoint/b", "pin api a=2 b=1", ….
fn describe_action(action: &OverrideAction) -> String {
    use crate::planner::FreezeScope;
    match action {
        OverrideAction::Drain { target } => format!("drain {target}"),
        OverrideAction::Pin { record, weights } => {
            let pairs: Vec<String> = weights.iter().map(|(e, w)| format!("{e}={w}")).collect();
            format!("pin {record} {}", pairs.join(" "))
        }
        OverrideAction::Freeze { scope: FreezeScope::All } => "freeze all".into(),
        OverrideAction::Freeze { scope: FreezeScope::Provider { provider } } => format!("freeze provider {provider}"),
        OverrideAction::Freeze { scope: FreezeScope::Record { record } } => format!("freeze {record}"),
        OverrideAction::FailoverToPool { record, pool, immediate } => {
            format!("failover {record} to {pool}{}", if *immediate { " now (no warm-up)" } else { "" })
        }
    }
}

/// Whether an override bears on `record`.
fn concerns(action: &OverrideAction, record: &model::RecordStatus) -> bool {
    use crate::planner::{FreezeScope, TargetKind};
    match action {
        OverrideAction::Drain { target } => {
            target.policy.as_deref().is_none_or(|p| record.is_named(p))
                && match target.kind {
                    TargetKind::Endpoint => record.endpoints.iter().any(|e| e.id == target.name),
                    TargetKind::Pool => record.endpoints.iter().any(|e| e.pool == target.name),
                }
        }
        OverrideAction::Pin { record: name, .. } | OverrideAction::FailoverToPool { record: name, .. } => {
            record.is_named(name)
        }
        OverrideAction::Freeze { scope: FreezeScope::All } => true,
        OverrideAction::Freeze { scope: FreezeScope::Provider { provider } } => record.providers.contains(provider),
        OverrideAction::Freeze { scope: FreezeScope::Record { record: name } } => record.is_named(name),
    }
}

/// Who is acting: `--author`/`VEER_AUTHOR`, else the OS user (`USER`, `LOGNAME`,
/// or the name of this process's uid in /etc/passwd).
fn author(given: Option<&str>) -> Result<String, Failure> {
    given
        .map(str::to_string)
        .or_else(|| ["USER", "LOGNAME", "USERNAME"].iter().find_map(|v| std::env::var(v).ok()))
        .or_else(os_user)
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Failure::usage("cannot tell who you are", Some("pass --author NAME or set VEER_AUTHOR")))
}

/// The name of this process's uid, from /etc/passwd.
fn os_user() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let fields: Vec<&str> = l.split(':').collect();
        (fields.len() > 2 && fields[2] == uid).then(|| fields[0].to_string())
    })
}

/// The client for changes: previews need a replica that led a round, so a
/// follower hands over to the leader it names.
async fn change_client(
    client: AdminClient,
    server: &ServerArgs,
    status: &model::Status,
) -> Result<AdminClient, Failure> {
    let leader = status.leader.as_ref().and_then(|l| l.admin_url.as_deref());
    match (status.role.as_deref(), leader) {
        (Some("leader"), _) | (_, None) => Ok(client),
        (_, Some(url)) => {
            eprintln!("veer: {} is a follower; sending the change to the leader at {url}", client.server());
            Ok(AdminClient::new(&ServerArgs { server: url.to_string(), ..server.clone() })?)
        }
    }
}

/// A preview goes where the operator reads it: stdout for tables, stderr beside JSON.
fn show(output: Output, text: &str) {
    use std::io::Write as _;
    match output {
        Output::Table => {
            print!("{text}");
            let _ = std::io::stdout().flush();
        }
        Output::Json => eprint!("{text}"),
    }
}

/// Asks to type `word` before `summary` happens; `false` on a wrong answer or
/// when the terminal cannot be read.
fn confirmed(summary: &str, word: &str) -> bool {
    match term::confirm(&format!("About to {summary}."), word) {
        Ok(true) => true,
        Ok(false) => false,
        Err(e) => {
            super::error_line(&format!("cannot read the confirmation: {e}"), Some("pass --yes to skip it"));
            false
        }
    }
}

/// Not confirmed: nothing was changed (exit 1); JSON output still gets its document.
fn not_confirmed(output: Output, document: &serde_json::Value) -> ExitCode {
    if output == Output::Json {
        println!("{document:#}");
    }
    super::error_line("not confirmed: nothing was changed", Some("type the name exactly, or pass --yes"));
    ExitCode::from(1)
}

/// `veer completions SHELL`: the completion script on stdout.
pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut command = <super::Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut command, "veer", &mut std::io::stdout());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_author_comes_from_the_flag_or_the_environment() {
        assert_eq!(author(Some(" ana ")).unwrap(), "ana");
        assert!(author(Some("  ")).is_err());
    }
}

//! `veer plan` and `veer run --once`: one observe → probe → plan round against
//! live providers; `plan` prints the diff and writes nothing, `run --once`
//! applies it through the fenced enactor and persists the planner state.

use super::{ConfigArg, Output};
use crate::controller::reconcile::{Reconciler, RoundInput, RoundReport, Writer};
use crate::controller::{self, Setup, providers, round, state::StateSource};
use crate::coord;
use crate::enactor::Outcome;
use crate::health::probe::{self, tls::TlsConfigs};
use crate::time::{Clock, SystemClock};
use std::process::ExitCode;

/// Arguments of `veer plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// Arguments of `veer run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// One observe → plan → enact round, then exit (0 converged, 1 otherwise).
    #[arg(long)]
    once: bool,
    /// Output format of the round's summary.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Log format (logs go to stderr; `RUST_LOG` filters them).
    #[arg(long, value_enum, default_value_t = super::LogFormat::Text)]
    log_format: super::LogFormat,
    /// Game day: inject the faults of this `kind: Chaos` file into provider calls
    /// and probes (test zones only).
    #[arg(long, value_name = "FILE", conflicts_with = "once")]
    chaos: Option<std::path::PathBuf>,
}

/// One round of the controller's reconcile against live providers, with a single,
/// definitive probe round as health; `writer` `None` plans only.
async fn reconcile(
    setup: &Setup,
    providers: &providers::ProviderSet,
    state: &StateSource,
    writer: Option<&Writer>,
) -> anyhow::Result<RoundReport> {
    probe::tls::install_default_provider();
    let mut tls = TlsConfigs::default();
    let targets = setup.policies.iter().flat_map(|p| probe::targets_for(p, &mut tls)).collect();
    let health = round::health_from_round(&probe::probe_all(targets, 256).await);
    let input = RoundInput { setup, providers, health: &health, state, now: SystemClock::default().now(), writer };
    Reconciler::default().round(input).await
}

fn load(config: &ConfigArg, command: &str) -> Result<Setup, ExitCode> {
    let path = config.resolve(command).ok_or(ExitCode::from(1))?;
    controller::load(&path).map_err(|d| super::report(&d))
}

/// `veer plan`: exit 0 no changes, 2 changes pending, 1 error.
pub fn run_plan(args: &Args) -> ExitCode {
    let setup = match load(&args.config, "plan") {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(runtime) = super::runtime() else { return ExitCode::from(1) };
    let result = runtime.block_on(async {
        let providers = providers::build(&setup.config, false, &crate::metrics::Metrics::new()).await?;
        let state = match setup.config.config.coordination.backend {
            crate::config::Backend::Standalone => {
                StateSource::Snapshot(coord::standalone::StandaloneCoordinator::peek(&setup.config.state_file())?)
            }
            _ => StateSource::Coordinator(controller::open_coordinator(&setup).await?),
        };
        reconcile(&setup, &providers, &state, None).await
    });
    match result {
        Ok(r) => {
            print_round(&r, args.output);
            if !r.unread.is_empty() {
                ExitCode::from(1)
            } else if r.planned.intents.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(e) => {
            super::error_line(&format!("{e:#}"), None);
            ExitCode::from(1)
        }
    }
}

/// `veer run --once`: exit 0 when every record converged, 1 otherwise.
pub fn run_once(args: &RunArgs) -> ExitCode {
    if !args.once {
        return run_forever(args);
    }
    let setup = match load(&args.config, "run") {
        Ok(s) => s,
        Err(code) => return code,
    };
    let Some(runtime) = super::runtime() else { return ExitCode::from(1) };
    let result = runtime.block_on(async {
        let providers = providers::build(&setup.config, false, &crate::metrics::Metrics::new()).await?;
        let coordinator = controller::open_coordinator(&setup).await?;
        let epoch = tokio::time::timeout(setup.config.config.coordination.lease_duration() * 2, coordinator.campaign())
            .await
            .map_err(|_| anyhow::anyhow!("did not become leader in time: another replica leads"))??;
        let state = StateSource::Coordinator(coordinator.clone());
        let writer = Writer::leader(coordinator.clone(), epoch, &setup.config.config.coordination);
        let r = reconcile(&setup, &providers, &state, Some(&writer)).await;
        coordinator.release().await?;
        r
    });
    match result {
        Ok(r) => {
            print_round(&r, args.output);
            if r.converged() { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(e) => {
            super::error_line(&format!("{e:#}"), None);
            ExitCode::from(1)
        }
    }
}

fn outcome_text(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Unchanged => "unchanged".into(),
        Outcome::Applied { generation } => format!("applied (generation {generation})"),
        Outcome::WouldEmpty => "refused: would leave no answers".into(),
        Outcome::NotOwned(why) => format!("refused: {why}"),
        Outcome::Conflict(why) => format!("conflict: {why}"),
        Outcome::Fenced => "not written: leadership lost".into(),
        Outcome::Quarantined(why) => format!("not written: quarantined {why}"),
        Outcome::InFlight => "sent, no answer yet at the round deadline".into(),
        Outcome::Failed(e) => format!("failed: {e}"),
    }
}

fn print_round(round: &RoundReport, output: Output) {
    let (r, report) = (&round.planned, round.enacted.as_ref());
    let unread: Vec<_> = round
        .unread
        .iter()
        .map(|((policy, provider), why)| serde_json::json!({ "policy": policy, "provider": provider, "reason": why }))
        .collect();
    match output {
        Output::Json => {
            let writes: Vec<_> = r
                .intents
                .iter()
                .enumerate()
                .map(|(i, intent)| {
                    serde_json::json!({
                        "provider": intent.provider,
                        "record": intent.desired.name,
                        "answers": intent.desired.answers,
                        "outcome": report.map(|rep| outcome_text(&rep.outcomes[i].2)),
                    })
                })
                .collect();
            println!(
                "{:#}",
                serde_json::json!({ "plan": r.plan, "writes": writes, "unread": unread, "saveError": round.saved.as_ref().err() })
            );
        }
        Output::Table => {
            for record in &r.plan.records {
                println!("{} ({}, {:?})", record.record, record.policy, record.mode);
                for a in &record.answers {
                    println!("  {:<14} {:<18} {:>6.1}%  weight {}", a.endpoint, a.address, a.share * 100.0, a.weight);
                }
                for c in &record.changes {
                    let w = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
                    println!("  ~ {:<12} {} → {}  {}", c.endpoint, w(c.from), w(c.to), c.reason);
                }
                for h in &record.held {
                    println!("  held: {}", h.reason);
                }
            }
            for ((policy, provider), why) in &round.unread {
                println!("not read: {policy} at {provider}: {why}");
            }
            if let Err(e) = &round.saved {
                println!("not saved: {e}");
            }
            if r.intents.is_empty() && round.unread.is_empty() {
                println!("no changes: every provider publishes the plan");
            }
            for (i, intent) in r.intents.iter().enumerate() {
                let outcome = report.map_or("pending".to_string(), |rep| outcome_text(&rep.outcomes[i].2));
                println!("write {} → {}: {}", intent.desired.name, intent.provider, outcome);
            }
        }
    }
}

/// `veer run`: the controller until SIGTERM or SIGINT; 0 on a clean shutdown.
fn run_forever(args: &RunArgs) -> ExitCode {
    let setup = match load(&args.config, "run") {
        Ok(s) => s,
        Err(code) => return code,
    };
    let chaos = match args.chaos.as_deref().map(|path| crate::chaos::load(path, &setup)) {
        None => None,
        Some(Ok(plan)) => Some(plan),
        Some(Err(diagnostics)) => return super::report(&diagnostics),
    };
    super::init_logging(args.log_format);
    let Some(runtime) = super::runtime() else { return ExitCode::from(1) };
    let result = runtime.block_on(async {
        let controller = controller::run::Controller::start_with_chaos(setup, chaos).await?;
        let admin = controller.serve_admin().await?;
        let result = controller.run(shutdown_signal()).await;
        let _ = admin.send(());
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            super::error_line(&format!("{e:#}"), None);
            ExitCode::from(1)
        }
    }
}

/// Completes at the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops veer");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

//! ARCHITECTURE.md §8 scenario 1, the racing enactor of §1.1, faithfully: the old leader
//! reads state, builds its change, passes the fence, and is paused right there,
//! before the change leaves (inside or outside its retry layer, by seed). Its
//! lease runs out; a new leader takes over and applies several generations, and
//! the plan-history clean-up deletes the old entries (the plan the old leader is
//! about to apply among them). Then the old leader resumes and sends.
//!
//! Expect: the stale write is refused by the provider (I2), no resolver ever
//! sees an empty answer (I1), and the stale writer stops: no write of its epoch
//! lands after the new leader's, and it sends nothing more even if its loop
//! kept running rounds with its old epoch (I3).
//!
//! The checks are shown to fail with a safety mechanism switched off: without
//! compare-and-swap at the provider the stale write lands (I2), and without the
//! fence the deposed leader keeps writing (I3).

use super::world::{Backend, Fleet, Gate, GateAt, Health, Replica, StackOptions, World, history};
use super::{Rng, on_virtual_time, run_seeds};
use std::sync::Arc;
use std::time::Duration;
use veer::coord::Epoch;
use veer::enactor::Outcome;
use veer_provider::RecordType;

/// Which safety mechanism is switched off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switched {
    /// Nothing: the real thing.
    Nothing,
    /// The provider writes without compare-and-swap.
    CompareAndSwapOff,
    /// The old leader writes without checking the fence.
    FenceOff,
}

/// What a run saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Race {
    /// Violations the checkers reported.
    pub violations: Vec<String>,
    /// The generation the old leader's change was built from, and the one the new leader reached.
    pub built_from: u64,
    /// The generation at the provider when the old leader resumed.
    pub overtaken_by: u64,
    /// What the provider said to the stale write.
    pub stale_outcome: String,
    /// Every write that reached the provider (time, epoch, generations, landed), for determinism.
    pub writes: Vec<String>,
}

const PERIOD: Duration = Duration::from_secs(1);

/// One racing-writer run.
pub fn race(seed: u64, switched: Switched) -> Result<Race, String> {
    on_virtual_time(async move {
        let mut rng = Rng::new(seed, 1);
        let fleet = Fleet::random(&mut rng, 1, (3, 5));
        let backend = if switched == Switched::CompareAndSwapOff { Backend::Unconditional } else { Backend::Memory };
        let world = Arc::new(World::new(fleet, backend));
        let record = world.records()[0].clone();
        let gate = Arc::new(Gate::default());
        let at = if rng.chance(0.5) { GateAt::BeforeRetries } else { GateAt::InsideRetries };
        let old_stack = StackOptions { gate: Some((gate.clone(), at)), ..StackOptions::plain(seed) };
        let old = Replica::new(&world, "old", &old_stack, seed);
        let new = Replica::new(&world, "new", &StackOptions::plain(seed ^ 1), seed ^ 2);
        let mut health = Health::all_up(&world.fleet);

        // The old leader publishes a few generations.
        let old_epoch = old.lead().await;
        for i in 0..rng.between(1, 3) {
            if i > 0 {
                health.flip_random(&mut rng);
            }
            old.round(&world, &health).await?;
            world.recorder.observe().await;
            tokio::time::sleep(PERIOD).await;
        }

        // It builds a change and is paused after the fence, before sending it.
        let mut stale_round = None;
        for _ in 0..20 {
            health.flip_random(&mut rng);
            gate.arm();
            let mut round = tokio::spawn({
                let (old, world, health) = (old.clone(), world.clone(), health.clone());
                async move { old.round_as(&world, &health, old_epoch).await }
            });
            tokio::select! {
                biased;
                () = gate.holding() => {
                    stale_round = Some(round);
                    break;
                }
                done = &mut round => {
                    done.map_err(|e| format!("the old leader's round panicked: {e}"))??;
                    world.recorder.observe().await;
                    tokio::time::sleep(PERIOD).await;
                }
            }
        }
        let Some(stale_round) = stale_round else {
            return Err("the old leader never had a change to send".into());
        };
        let built_from = world.recorder.generation(&record, RecordType::A).await;
        old.stop_renewing();

        // Its lease runs out; the new leader takes over and applies several generations.
        let new_epoch = new.lead().await;
        if new_epoch <= old_epoch {
            return Err(format!("the new epoch {new_epoch:?} is not greater than {old_epoch:?}"));
        }
        let wanted = rng.between(2, 5);
        let mut landed = 0;
        for _ in 0..40 {
            if landed >= wanted {
                break;
            }
            health.flip_random(&mut rng);
            if let Some(outcome) = new.round(&world, &health).await? {
                landed += outcome.applied() as u64;
            }
            world.recorder.observe().await;
            tokio::time::sleep(PERIOD).await;
        }
        if landed < wanted {
            return Err(format!("the new leader landed {landed} generations, the scenario needs {wanted}"));
        }

        // History clean-up keeps only the newest plans: the old leader's base goes.
        let keep = rng.between(1, 2) as usize;
        clean_up_history(&new, new_epoch, &record.to_string(), keep).await?;
        let left = history(&world.store).remove(record.as_str()).unwrap_or_default();
        if left.iter().any(|g| *g <= built_from) {
            return Err(format!("the clean-up left generations {left:?}, at or below {built_from}"));
        }
        let overtaken_by = world.recorder.generation(&record, RecordType::A).await;

        // The old leader resumes and sends its change.
        let resumed_at = world.elapsed();
        let resumed = tokio::time::Instant::now();
        if switched == Switched::FenceOff {
            old.disable_fence();
        }
        old.resume_renewing();
        gate.release();
        let stale = stale_round.await.map_err(|e| format!("the old leader's round panicked: {e}"))?;
        let at_provider = gate.delivered().await;
        let stale_outcome = match &stale {
            Ok(outcome) => format!("round: {:?}; at the provider: {at_provider:?}", outcome.outcomes),
            Err(e) => format!("round: {e}; at the provider: {at_provider:?}"),
        };
        world.recorder.observe().await;

        // Its loop keeps going as if it never checked whether it still leads.
        for _ in 0..3 {
            tokio::time::sleep(PERIOD).await;
            health.flip_random(&mut rng);
            let _ = old.round_as(&world, &health, old_epoch).await;
            world.recorder.observe().await;
            let _ = new.round(&world, &health).await?;
            world.recorder.observe().await;
        }

        let mut violations = world.recorder.violations();
        let late: Vec<_> = world
            .recorder
            .writes()
            .into_iter()
            .filter(|w| w.epoch == old_epoch.0 && w.at_ms > resumed_at.as_millis() as u64)
            .collect();
        if late.len() > 1 {
            violations.push(format!(
                "I3: the deposed leader (epoch {}) sent {} writes after it resumed, not just the one it held",
                old_epoch.0,
                late.len()
            ));
        }
        if stale.as_ref().is_ok_and(|o| o.outcomes.iter().any(|o| matches!(o, Outcome::Applied { .. })))
            || at_provider.is_ok()
        {
            violations.push(format!("I2: the stale write built from generation {built_from} was applied"));
        }
        let stale_store_writes = world
            .store
            .lock()
            .unwrap()
            .writes
            .iter()
            .filter(|w| w.epoch == Some(old_epoch) && w.accepted && w.at >= resumed)
            .count();
        if stale_store_writes > 0 {
            violations.push(format!("I3: the store accepted {stale_store_writes} writes of the deposed epoch"));
        }
        let writes = world.recorder.write_log();
        Ok(Race { violations, built_from, overtaken_by, stale_outcome, writes })
    })
}

/// Re-appends the newest plan of `record` keeping only `keep` plans: the
/// store's own pruning (`append_plan`) with a short history, as a clean-up run.
async fn clean_up_history(replica: &Replica, epoch: Epoch, record: &str, keep: usize) -> Result<(), String> {
    use veer::coord::Coordinator;
    let plans = replica.coordinator.plans(record).await.map_err(|e| e.to_string())?;
    let Some((generation, plan)) = plans.last().cloned() else {
        return Err(format!("no plan history for {record}"));
    };
    replica
        .coordinator
        .append_plan(epoch, record, generation, plan, keep)
        .await
        .map_err(|e| format!("history clean-up: {e}"))
}

#[test]
fn a_paused_leader_that_resumes_after_newer_generations_and_a_history_clean_up_writes_nothing() {
    let results = run_seeds("racing_writer", |seed| {
        let race = race(seed, Switched::Nothing)?;
        if !race.violations.is_empty() {
            return Err(race.violations.join("; "));
        }
        if !race.stale_outcome.contains("at the provider: Err(Conflict") {
            return Err(format!("the stale write was not refused as a conflict: {}", race.stale_outcome));
        }
        if race.overtaken_by < race.built_from + 2 {
            return Err(format!(
                "the race did not happen: built from {}, overtaken by {}",
                race.built_from, race.overtaken_by
            ));
        }
        Ok(race)
    });
    let overtaken: u64 = results.iter().map(|(_, r)| r.overtaken_by - r.built_from).sum();
    println!(
        "{} seeds: every stale write refused (conflict), after the new leader had moved on by {:.1} generations on average",
        results.len(),
        overtaken as f64 / results.len() as f64
    );
}

/// The checkers can fail: switch a safety mechanism off and they report it.
#[test]
fn without_compare_and_swap_or_without_the_fence_the_checkers_report_the_stale_writer() {
    for (switched, invariant) in [(Switched::CompareAndSwapOff, "I2"), (Switched::FenceOff, "I3")] {
        for seed in 0..20 {
            let race = race(seed, switched).unwrap_or_else(|e| panic!("seed {seed}, {switched:?}: {e}"));
            let reported = race.violations.iter().find(|v| v.starts_with(invariant));
            assert!(
                reported.is_some(),
                "seed {seed}: with {switched:?} the checkers must report {invariant}, got {:?}",
                race.violations
            );
            if seed == 0 {
                println!("{switched:?}, seed 0: {}", reported.unwrap());
            }
        }
    }
}

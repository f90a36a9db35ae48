//! The scenarios of ARCHITECTURE.md §8 with real processes (issue 11, deliverable 1b):
//! `veer run` replicas, real BIND (or veer's embedded server where a scenario
//! needs neither BIND nor etcd), real etcd where leadership moves, and local
//! HTTP backends that are killed and restarted. A [`resolver`] polls the managed
//! name every 10 ms over UDP for the whole run and records every answer and the
//! ownership record's generation; one [`checker`] judges every recording:
//! never an empty answer (I1), never an endpoint that has been down for longer
//! than the detection bound, no generation or epoch going backwards at the
//! provider (I2, I3) — plus each scenario's own expectations:
//!
//! - 1 [`racing_writer`]: the leader is paused (SIGSTOP) after it built its change
//!   and before it sends it; a new leader applies newer generations and the plan
//!   history is cleaned up; on SIGCONT the stale write is refused by BIND.
//! - 2 [`mass_recovery`]: half the fleet returns at once and walks the warm-up stages.
//! - 3 [`flapping`]: vantages lose their network or see flapping checks; quorum,
//!   impairment and the velocity cap hold.
//! - 4 [`fat_finger`]: draining most of the capacity is refused with its impact;
//!   forced, the record still never empties.
//! - 5 [`throttling_storm`]: 30 % throttled plus 5xx and timeouts; the API budget
//!   holds and everything converges after the storm.
//! - 6 [`crash_restart`]: kill -9 at seeded random points of applies; every
//!   restart converges, and no poll ever saw an empty answer.
//! - 7 [`provider_outage`]: a provider's API hangs (BIND frozen) during an outage;
//!   the other provider's records still fail over, and BIND converges once it resumes.
//!
//! `VEER_SCENARIO_SEED=N` replays a seeded scenario; every seeded one prints its seed.

#[path = "../../support/mod.rs"]
mod support;

#[path = "../../coord_support/etcd.rs"]
#[allow(dead_code)]
mod etcd;

mod checker;
mod fleet;
mod resolver;

mod crash_restart;
mod fat_finger;
mod flapping;
mod mass_recovery;
mod provider_outage;
mod racing_writer;
mod throttling_storm;

/// The seed of a randomized scenario: `VEER_SCENARIO_SEED`, else fresh. Printed
/// with the command that replays it.
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var("VEER_SCENARIO_SEED") {
        Ok(text) => text.parse().expect("VEER_SCENARIO_SEED is a number"),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64),
    };
    println!("{test}: seed {seed} (replay: VEER_SCENARIO_SEED={seed} cargo test --test scenarios_processes {test})");
    seed
}

//! A deterministic, seeded simulation of three electors (the real [`LeaderCell`] tenure state
//! machine and fence), a lease server, and a DNS provider fake that compares the ownership
//! epoch (compare-and-swap), on virtual time with message delays, partitions, process pauses
//! (SIGSTOP-like: a write past the fence may leave only at resume), crashes and clock-rate
//! skew.
//!
//! Invariants (I3):
//! - fence exclusivity: ordered by virtual time, the epochs of successful fence checks never
//!   decrease — no two writers of different epochs interleave;
//! - no stale landing: the provider never accepts a write with an older epoch after a newer
//!   one landed;
//! - the fence's margin works: a write that reached the provider within the expected write
//!   time it declared at the fence was never stale.
//!
//! `VEER_SIM_SEEDS=N` sets the number of seeds (default 1000; `scripts/test --long` uses
//! 10 000); `VEER_SIM_SEED=S` replays one. Failures print the seed.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::time::Instant;
use veer::coord::{Epoch, LeaderCell, Leadership, LossReason, TenureEvent, Timings};

const ELECTORS: usize = 3;
const TICK_MS: u64 = 10;
const RUN_MS: u64 = 40_000;
const EXPECTED_WRITE_MS: u64 = 200;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

#[derive(Debug, Clone)]
enum Body {
    Acquire { from: usize, sent_at: Instant },
    Renew { from: usize, epoch: Epoch, sent_at: Instant },
    Release { from: usize, epoch: Epoch },
    Granted { epoch: Epoch, sent_at: Instant },
    Renewed { sent_at: Instant },
    Deposed,
    Write { from: usize, epoch: Epoch, fenced_at: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum To {
    Server,
    Elector(usize),
    Dns,
}

#[derive(Debug)]
struct Msg {
    at: u64,
    to: To,
    body: Body,
}

struct Elector {
    cell: LeaderCell,
    /// Local clock rate (skew): local elapsed = global elapsed × rate.
    rate: f64,
    next_action: u64,
    paused_until: u64,
    down_until: u64,
    cut_off_until: u64,
    last_epoch: Option<Epoch>,
}

struct Server {
    revision: u64,
    holder: Option<(usize, Epoch, u64)>,
}

fn run(seed: u64) -> Result<(u64, usize), String> {
    let mut rng = Rng(seed);
    let timings = Timings::new(Duration::from_secs(3), Duration::from_secs(2), Duration::from_millis(500)).unwrap();
    let lease_ms = timings.lease.as_millis() as u64;
    let base = Instant::now();
    let local = |e: &Elector, t: u64| base + Duration::from_micros((t as f64 * 1000.0 * e.rate) as u64);
    let mut electors: Vec<Elector> = (0..ELECTORS)
        .map(|_| Elector {
            cell: LeaderCell::new(timings),
            rate: 0.995 + rng.below(1000) as f64 / 100_000.0,
            next_action: rng.below(500),
            paused_until: 0,
            down_until: 0,
            cut_off_until: 0,
            last_epoch: None,
        })
        .collect();
    let mut server = Server { revision: 0, holder: None };
    let mut queue: VecDeque<Msg> = VecDeque::new();
    let mut fence_passes: Vec<(u64, Epoch, usize)> = Vec::new();
    let mut dns_highest = Epoch(0);
    let mut landed: Vec<(u64, Epoch)> = Vec::new();
    let mut stale_rejected = 0usize;

    let mut t = 0;
    while t < RUN_MS {
        // Faults.
        for (i, e) in electors.iter_mut().enumerate() {
            if t < e.paused_until || t < e.down_until {
                continue;
            }
            if rng.chance(0.0008) {
                e.paused_until = t + rng.below(3 * lease_ms);
                // Writes past the fence but not yet sent leave at resume.
                for m in queue.iter_mut() {
                    if matches!(m.body, Body::Write { from, .. } if from == i) && rng.chance(0.5) {
                        m.at = m.at.max(e.paused_until + rng.below(20));
                    }
                }
            } else if rng.chance(0.0003) {
                e.down_until = t + rng.below(2 * lease_ms);
                e.cell = LeaderCell::new(timings);
                e.last_epoch = None;
                queue.retain(|m| m.to != To::Elector(i) && !matches!(m.body, Body::Write { from, .. } if from == i));
            } else if rng.chance(0.0005) {
                e.cut_off_until = t + rng.below(2 * lease_ms);
            }
        }

        // Deliveries due now (a paused or crashed elector's inbound messages wait).
        let mut pending = VecDeque::new();
        while let Some(msg) = queue.pop_front() {
            let ready = msg.at <= t
                && match msg.to {
                    To::Elector(i) => t >= electors[i].paused_until && t >= electors[i].down_until,
                    _ => true,
                };
            if !ready {
                pending.push_back(msg);
                continue;
            }
            match (msg.to, msg.body) {
                (To::Server, Body::Acquire { from, sent_at }) => {
                    let free = match server.holder {
                        None => true,
                        Some((holder, _, expires)) => holder == from || t >= expires,
                    };
                    if free {
                        server.revision += 1;
                        let epoch = Epoch(server.revision);
                        server.holder = Some((from, epoch, t + lease_ms));
                        pending.push_back(reply(&mut rng, t, from, Body::Granted { epoch, sent_at }));
                    }
                }
                (To::Server, Body::Renew { from, epoch, sent_at }) => {
                    let body = match &mut server.holder {
                        Some((holder, held, expires)) if *holder == from && *held == epoch && t < *expires => {
                            *expires = t + lease_ms;
                            Body::Renewed { sent_at }
                        }
                        _ => Body::Deposed,
                    };
                    pending.push_back(reply(&mut rng, t, from, body));
                }
                (To::Server, Body::Release { from, epoch })
                    if server.holder.is_some_and(|(holder, held, _)| holder == from && held == epoch) =>
                {
                    server.holder = None;
                }
                (To::Elector(i), body) => {
                    let now = local(&electors[i], t);
                    let cell = &electors[i].cell;
                    match body {
                        Body::Granted { epoch, sent_at } if cell.apply(TenureEvent::Tick, now).epoch().is_none() => {
                            cell.apply(TenureEvent::Acquired { epoch, sent_at }, now);
                        }
                        Body::Renewed { sent_at } => {
                            cell.apply(TenureEvent::Renewed { sent_at }, now);
                        }
                        Body::Deposed => {
                            cell.apply(TenureEvent::Ended(LossReason::Deposed), now);
                        }
                        _ => {}
                    }
                }
                (To::Dns, Body::Write { epoch, fenced_at, from: _ }) => {
                    if epoch >= dns_highest {
                        dns_highest = epoch;
                        landed.push((t, epoch));
                    } else {
                        stale_rejected += 1;
                        if t - fenced_at <= EXPECTED_WRITE_MS {
                            return Err(format!(
                                "seed {seed}: t={t}ms a write of epoch {epoch} fenced at {fenced_at}ms arrived within \
                                 its expected write time but epoch {dns_highest} had already landed"
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
        queue = pending;

        // Electors act.
        for (i, e) in electors.iter_mut().enumerate() {
            if t < e.paused_until || t < e.down_until {
                continue;
            }
            let now = local(e, t);
            let state = e.cell.apply(TenureEvent::Tick, now);
            if let (Some(last), None) = (e.last_epoch, state.epoch()) {
                // The tenure ended: give the lease up, best effort.
                if t >= e.cut_off_until {
                    queue.push_back(Msg {
                        at: t + 1 + rng.below(40),
                        to: To::Server,
                        body: Body::Release { from: i, epoch: last },
                    });
                }
            }
            e.last_epoch = state.epoch();
            if t >= e.next_action {
                let body = match state {
                    Leadership::Leader { epoch } => {
                        e.next_action = t
                            + (timings.retry.as_millis() as f64 * (0.5 + 0.5 * rng.below(1000) as f64 / 1000.0)) as u64;
                        Body::Renew { from: i, epoch, sent_at: now }
                    }
                    _ => {
                        e.next_action = t
                            + (timings.retry.as_millis() as f64 * (1.0 + 0.25 * rng.below(1000) as f64 / 1000.0))
                                as u64;
                        Body::Acquire { from: i, sent_at: now }
                    }
                };
                if t >= e.cut_off_until {
                    queue.push_back(Msg { at: t + delay(&mut rng), to: To::Server, body });
                }
            }
            if let Some(epoch) = state.epoch()
                && rng.chance(0.3)
                && let Ok(guard) = e.cell.fence_at(epoch, Duration::from_millis(EXPECTED_WRITE_MS), now)
            {
                drop(guard);
                fence_passes.push((t, epoch, i));
                queue.push_back(Msg {
                    at: t + delay(&mut rng),
                    to: To::Dns,
                    body: Body::Write { from: i, epoch, fenced_at: t },
                });
            }
        }
        t += TICK_MS;
    }

    for pair in fence_passes.windows(2) {
        let ((t0, e0, i0), (t1, e1, i1)) = (pair[0], pair[1]);
        if e1 < e0 {
            return Err(format!(
                "seed {seed}: elector {i1} passed the fence with epoch {e1} at {t1}ms after elector {i0} did with epoch {e0} at {t0}ms"
            ));
        }
    }
    if landed.windows(2).any(|w| w[1].1 < w[0].1) {
        return Err(format!("seed {seed}: an older epoch landed after a newer one"));
    }
    let epochs = fence_passes.last().map_or(0, |(_, e, _)| e.0);
    Ok((epochs, stale_rejected))
}

fn reply(rng: &mut Rng, t: u64, to: usize, body: Body) -> Msg {
    Msg { at: t + delay(rng), to: To::Elector(to), body }
}

/// Mostly fast, sometimes very slow (a congested network or a raft leader change).
fn delay(rng: &mut Rng) -> u64 {
    if rng.chance(0.01) { 100 + rng.below(1900) } else { 1 + rng.below(40) }
}

#[test]
fn seeded_simulation_never_interleaves_writers_of_different_epochs() {
    let seeds: Vec<u64> = match std::env::var("VEER_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("VEER_SIM_SEED is a number")],
        Err(_) => {
            let n: u64 = std::env::var("VEER_SIM_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(1000);
            (0..n).collect()
        }
    };
    let threads = 2;
    let results: Vec<Result<(u64, usize), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let seeds: Vec<u64> = seeds.iter().copied().skip(k).step_by(threads).collect();
                scope.spawn(move || seeds.into_iter().map(run).collect::<Vec<_>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let failures: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failures.is_empty(), "{} seeds failed; replay one with VEER_SIM_SEED:\n{failures:#?}", failures.len());
    let tenures: u64 = results.iter().filter_map(|r| r.as_ref().ok()).map(|(e, _)| e).sum();
    let stale: usize = results.iter().filter_map(|r| r.as_ref().ok()).map(|(_, s)| s).sum();
    println!(
        "{} seeds: {tenures} leader epochs granted, {stale} stale writes stopped by the provider's compare-and-swap",
        seeds.len()
    );
    assert!(tenures as usize > seeds.len(), "the simulation must exercise leader changes");
}

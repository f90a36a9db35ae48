//! `GET /v1/status` (contract: the status page, `veer status` and drills read it):
//! what this replica knows about leadership, vantages, every record and endpoint
//! (desired against published weights, warm-up, held changes, overrides), the
//! last applied plans and the drills (next scheduled, last result, running).
//!
//! Split in two so that the mapping is testable without a running controller:
//! [`gather`] does the I/O (the store, the vantage reports, the clock) into
//! [`StatusInputs`], and [`build`] is a pure function from those inputs to the
//! [`StatusReport`]. The leader reports from its last round (the plan, the
//! combined health view, what the providers held); a follower reports what it
//! can know without leading: its own vantage, the store's overrides, warm-up
//! state and plan history, and who leads.

use super::Setup;
use super::admin::AdminState;
use super::run::{LastApply, RoundSummary};
use super::state::StateSource;
pub use super::vantages::VantageStatus;
use crate::coord::{Coordinator, Leadership};
use crate::drill::api::DrillsSummary;
use crate::drill::model::Definition;
use crate::enactor::{Intent, Outcome};
use crate::health::combine::{CombinerState, combine};
use crate::health::{EndpointKey, HealthState, HealthView, ProbeVerdict, VantageReport};
use crate::planner::overrides::Applicable;
use crate::planner::{FreezeScope, HoldCause, Override, OverrideAction, PlannerState, WarmupState};
use crate::policy::FailoverPolicy;
use crate::policy::model::Routing;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Plans listed under `recentPlans`, newest first, across records.
pub const RECENT_PLANS: usize = 20;
/// How long [`gather`] waits for the store before it reports without it: the page
/// must keep answering while the store is down, which is when operators look.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// The whole status document (camelCase JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// This replica's id.
    pub replica: String,
    /// This replica's part in the election.
    pub role: Role,
    /// Who leads, as far as this replica knows; `None` while nobody is known to.
    pub leader: Option<LeaderStatus>,
    /// When the report was made (RFC 3339).
    pub generated_at: String,
    /// Rounds this replica ran while leading.
    pub rounds: u64,
    /// Provider writes this replica applied.
    pub writes: u64,
    /// The last round's error, if it failed.
    pub last_error: Option<String>,
    /// Why the last policy reload was rejected (positioned errors), while the previous set is in force.
    pub policy_reload_error: Option<String>,
    /// Why the store could not be read for this report (then overrides, warm-up and history are missing).
    pub store_error: Option<String>,
    /// Providers the leader's rounds skip as unavailable (leader only).
    #[serde(default)]
    pub providers_unavailable: Vec<ProviderUnavailable>,
    /// Names whose writes wait out a quarantine (leader only).
    #[serde(default)]
    pub quarantined: Vec<QuarantinedName>,
    /// Checker impairment (fail static, I7).
    pub checker: CheckerStatus,
    /// The vantages whose reports this replica has.
    pub vantages: Vec<VantageStatus>,
    /// One per policy, in policy order.
    pub records: Vec<RecordStatus>,
    /// Every active override.
    pub overrides: Vec<OverrideView>,
    /// The last applied plans, newest first.
    pub recent_plans: Vec<PlanSummary>,
    /// The next scheduled drill, the last result and the run in progress (from the store).
    #[serde(default)]
    pub drills: DrillsSummary,
}

/// A provider the leader skips, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderUnavailable {
    /// The provider's configured name.
    pub provider: String,
    /// Its last error.
    pub reason: String,
}

/// A name whose writes to one provider wait out a quarantine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuarantinedName {
    /// The provider.
    pub provider: String,
    /// The record name.
    pub record: String,
    /// The last rejection.
    pub reason: String,
}

/// A replica's part in the election.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Holds the lease and writes DNS.
    Leader,
    /// Another replica is known to lead.
    Follower,
    /// Nobody is known to lead: campaigning.
    Candidate,
}

/// The leader as this replica knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderStatus {
    /// Its replica id.
    pub identity: String,
    /// Its fencing epoch; known on the leader itself, `None` on followers.
    pub epoch: Option<u64>,
    /// Its admin API, from the vantage registry when it registered.
    pub admin_url: Option<String>,
}

/// Whether automation holds because the checker itself looks broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckerStatus {
    /// Why, while impaired.
    pub impaired: Option<String>,
}

/// One record (one policy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordStatus {
    /// The managed name.
    pub name: String,
    /// The policy's name.
    pub policy: String,
    /// `weighted` or `failover`.
    pub routing: Routing,
    /// Where it is published.
    pub providers: Vec<String>,
    /// The freeze override holding it, if any.
    pub frozen: Option<FrozenStatus>,
    /// Generation of the last applied plan (plan history); `None` before the first.
    pub generation: Option<u64>,
    /// Leader epoch that applied it.
    pub epoch: Option<u64>,
    /// The last apply: this leader's own last write, else the newest plan in the history.
    pub last_apply: Option<LastApplyStatus>,
    /// How the last plan chose its answers (`normal`, `frozen`, `impaired`, …); leader only.
    pub mode: Option<crate::planner::PlanMode>,
    /// Every endpoint of the policy, in policy order.
    pub endpoints: Vec<EndpointStatus>,
    /// Changes the last plan wanted but held, with why (leader only; empty on followers).
    pub held: Vec<HeldStatus>,
    /// The active overrides that bear on this record.
    pub overrides: Vec<OverrideView>,
}

/// A freeze holding a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FrozenStatus {
    /// `record`, `provider` or `all`.
    pub scope: String,
    /// The override's id.
    pub override_id: String,
    /// Why.
    pub reason: String,
    /// Who.
    pub author: String,
    /// When it ends (RFC 3339); `None`: no TTL.
    pub expires_at: Option<String>,
}

/// The outcome of the last write of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastApplyStatus {
    /// When (RFC 3339), when known.
    pub at: Option<String>,
    /// `ok`, `conflict`, `throttled`, `error`, `fenced` or `refused`.
    pub outcome: String,
    /// Per provider, for people.
    pub detail: String,
}

/// One endpoint of a record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointStatus {
    /// The endpoint id.
    pub id: String,
    /// Its pool.
    pub pool: String,
    /// Its record data.
    pub address: String,
    /// Its relative capacity.
    pub capacity: u32,
    /// The combined verdict across fresh vantages.
    pub health: HealthState,
    /// Fresh vantages that see it down.
    pub vantages_down: u32,
    /// Fresh, unimpaired vantages that reported on it.
    pub vantages_fresh: u32,
    /// Each vantage's own verdict.
    pub per_vantage: BTreeMap<String, ProbeVerdict>,
    /// The last probe failure as a vantage saw it ("r1: connect refused"), while any sees it down.
    pub last_failure: Option<String>,
    /// The planner's weight this round (provider units, 0 = not published); `None` when unknown (followers).
    pub desired_weight: Option<u32>,
    /// What the providers hold (provider units); `None` = not published.
    pub published_weight: Option<u32>,
    /// `desired_weight` as a percentage of the record's desired total.
    pub desired_percent: Option<f64>,
    /// `published_weight` as a percentage of the record's published total.
    pub published_percent: Option<f64>,
    /// Warm-up progress while warming (or waiting for its backoff); `None` at full weight or out.
    pub warmup: Option<WarmupStatus>,
}

/// Where an endpoint is on its way back (I6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WarmupStatus {
    /// 1-based position in `warmup.stages`; 0 while waiting for the backoff after a failed attempt.
    pub stage: usize,
    /// How many stages the policy has.
    pub stages: usize,
    /// The current stage's share of full weight.
    pub percent: f64,
    /// Time until the next stage (or the next attempt) at the earliest, if health holds.
    pub next_stage_in_ms: Option<u64>,
}

/// A held change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldStatus {
    /// The endpoint concerned, if one.
    pub endpoint: Option<String>,
    /// The category (`velocity`, `guard`, `freeze`, …).
    pub cause: HoldCause,
    /// For people.
    pub reason: String,
    /// The override concerned, if one.
    pub override_id: Option<String>,
}

/// An override as status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverrideView {
    /// Its id.
    pub id: String,
    /// What it does (the stored form).
    pub action: OverrideAction,
    /// What it does, for people ("drain endpoint/b").
    pub summary: String,
    /// Why.
    pub reason: String,
    /// Who.
    pub author: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it ends (RFC 3339); `None`: no TTL.
    pub expires_at: Option<String>,
    /// Time left; `None`: no TTL.
    pub expires_in_ms: Option<u64>,
    /// Whether it bypasses the guards.
    pub force: bool,
}

/// An applied plan of one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanSummary {
    /// The record.
    pub record: String,
    /// Its generation.
    pub generation: u64,
    /// The leader epoch that applied it (absent in history written before epochs were kept).
    pub epoch: Option<u64>,
    /// When it was applied (RFC 3339), when known.
    pub at: Option<String>,
    /// What changed and why.
    pub changes: Vec<ChangeStatus>,
}

/// One answer change of an applied plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeStatus {
    /// The endpoint.
    pub endpoint: String,
    /// Weight before (`None`: not published).
    pub from: Option<u32>,
    /// Weight after (`None`: removed).
    pub to: Option<u32>,
    /// Why.
    pub reason: String,
}

/// What the store holds that status shows.
#[derive(Debug, Clone, Default)]
pub struct StoreView {
    /// Active overrides.
    pub overrides: Vec<Override>,
    /// The persisted planner state (warm-up); `None` when unread.
    pub planner_state: Option<PlannerState>,
    /// Plan history per record name, oldest first, as `(generation, stored plan)`.
    pub history: BTreeMap<String, Vec<(u64, serde_json::Value)>>,
    /// The vantage registry: replica id → admin URL.
    pub registry: BTreeMap<String, String>,
    /// The drills part, from the drill reports and the drills in force.
    pub drills: DrillsSummary,
    /// Why (part of) the store could not be read.
    pub error: Option<String>,
}

/// Everything [`build`] reads.
pub struct StatusInputs<'a> {
    /// This replica's id.
    pub replica: &'a str,
    /// This replica's admin URL (used when the registry does not list it).
    pub admin_url: Option<&'a str>,
    /// Leadership as this replica sees it.
    pub leadership: &'a Leadership,
    /// The report's instant.
    pub now: Timestamp,
    /// The policies in force.
    pub policies: &'a [&'a FailoverPolicy],
    /// The controller's last round.
    pub summary: &'a RoundSummary,
    /// The vantages' latest reports.
    pub vantages: &'a [VantageStatus],
    /// What the store holds.
    pub store: &'a StoreView,
}

/// Builds the status report. Pure: the same inputs give the same report.
///
/// A replica reports as leader only while it leads: a former leader's last round
/// is stale, so it reports like a follower (desired weights and held changes
/// unknown, published weights from the newest applied plan, health combined from
/// the reports it has).
pub fn build(input: &StatusInputs<'_>) -> StatusReport {
    let now = input.now;
    let role = role_of(input.leadership);
    let leading = role == Role::Leader;
    let plan = input.summary.plan.as_ref().filter(|_| leading);
    let preview = input.summary.preview.as_ref().filter(|_| leading);
    let reports: Vec<VantageReport> = input.vantages.iter().filter_map(|v| v.report.as_deref().cloned()).collect();
    let combined;
    let health: &HealthView = match preview {
        Some(p) => &p.health,
        None => {
            combined = combine(input.policies, &reports, &CombinerState::default(), now).0;
            &combined
        }
    };
    let warmups = plan.map(|p| &p.state).or(input.store.planner_state.as_ref());
    let admin_url = |id: &str| {
        input
            .store
            .registry
            .get(id)
            .cloned()
            .or_else(|| (id == input.replica).then(|| input.admin_url.map(str::to_string)).flatten())
    };
    // Freshness as the round judged it; the age as of now.
    let vantages = input
        .vantages
        .iter()
        .map(|v| VantageStatus {
            id: v.id.clone(),
            admin_url: v.admin_url.clone().or_else(|| admin_url(&v.id)),
            fresh: v.fresh,
            report_age_ms: v.report.as_ref().map(|r| now.since(r.at).as_millis() as u64),
            report: None,
        })
        .collect();
    let records = input
        .policies
        .iter()
        .map(|policy| {
            let record_plan = plan.and_then(|p| p.records.iter().find(|r| r.policy == policy.name()));
            let history = input.store.history.get(&policy.record_name().to_string()).map_or(&[][..], |h| h.as_slice());
            let context = RecordContext {
                policy,
                now,
                health,
                reports: &reports,
                record_plan,
                published: preview.and_then(|p| p.published.get(policy.name())).map(|o| &o.answers),
                last_apply: input.summary.applied.get(policy.name()),
                rounds: input.summary.rounds,
                warmups: warmups.and_then(|w| w.records.get(policy.name())).map(|r| &r.endpoints),
                history,
                overrides: &input.store.overrides,
                leading,
            };
            context.record()
        })
        .collect();
    let mut overrides: Vec<&Override> = input.store.overrides.iter().filter(|o| o.is_active(now)).collect();
    overrides.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    StatusReport {
        replica: input.replica.to_string(),
        role,
        leader: leader_of(input.replica, input.leadership, &admin_url),
        generated_at: now.rfc3339(),
        rounds: input.summary.rounds,
        writes: input.summary.writes,
        last_error: input.summary.error.clone(),
        policy_reload_error: input.summary.reload_error.clone(),
        store_error: input.store.error.clone(),
        providers_unavailable: input.summary.unavailable.clone(),
        quarantined: input.summary.quarantined.clone(),
        checker: CheckerStatus { impaired: health.impaired.clone() },
        vantages,
        records,
        overrides: overrides.into_iter().map(|o| override_view(o, now)).collect(),
        recent_plans: recent_plans(&input.store.history),
        drills: input.store.drills.clone(),
    }
}

fn role_of(leadership: &Leadership) -> Role {
    match leadership {
        Leadership::Leader { .. } | Leadership::Releasing { .. } => Role::Leader,
        Leadership::Follower { leader: Some(_) } | Leadership::Stopped => Role::Follower,
        Leadership::Follower { leader: None } | Leadership::Lost { .. } => Role::Candidate,
    }
}

fn leader_of(
    replica: &str,
    leadership: &Leadership,
    admin_url: &dyn Fn(&str) -> Option<String>,
) -> Option<LeaderStatus> {
    let (identity, epoch) = match leadership {
        Leadership::Leader { epoch } | Leadership::Releasing { epoch } => (replica.to_string(), Some(epoch.0)),
        Leadership::Follower { leader: Some(id) } => (id.clone(), None),
        _ => return None,
    };
    Some(LeaderStatus { admin_url: admin_url(&identity), identity, epoch })
}

/// What one record's status is built from.
struct RecordContext<'a> {
    policy: &'a FailoverPolicy,
    now: Timestamp,
    health: &'a HealthView,
    reports: &'a [VantageReport],
    /// This round's plan of the record (leader only).
    record_plan: Option<&'a crate::planner::RecordPlan>,
    /// What the providers held at the start of the round (leader only).
    published: Option<&'a BTreeMap<String, u32>>,
    /// This leader's last write of the record.
    last_apply: Option<&'a LastApply>,
    /// Rounds so far (to tell whether `last_apply` is from the last round).
    rounds: u64,
    warmups: Option<&'a BTreeMap<String, WarmupState>>,
    history: &'a [(u64, serde_json::Value)],
    overrides: &'a [Override],
    leading: bool,
}

impl RecordContext<'_> {
    fn record(&self) -> RecordStatus {
        let policy = self.policy;
        let newest = self.history.last();
        let applicable = Applicable::select(self.overrides, policy, self.now);
        let mut overrides: Vec<&Override> = applicable.drains.clone();
        overrides.extend(applicable.pin.iter().chain(&applicable.freeze).chain(&applicable.failover));
        overrides.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let desired = self.desired();
        let published = self.published(desired.as_ref());
        let desired_total: u64 = desired.iter().flat_map(|d| d.values()).map(|w| u64::from(*w)).sum();
        let published_total: u64 = published.values().map(|w| u64::from(*w)).sum();
        let percent = |w: u32, total: u64| if total == 0 { 0.0 } else { f64::from(w) * 100.0 / total as f64 };
        let stages = policy.spec.warmup.stages();
        let hold = policy.spec.warmup.hold();
        let endpoints = policy
            .endpoints()
            .map(|(pool, e)| {
                let id = e.id.value.as_str();
                let key = EndpointKey::new(policy.name(), id);
                let combined = self.health.endpoints.get(&key);
                let desired_weight = desired.as_ref().map(|d| d.get(id).copied().unwrap_or(0));
                let published_weight = published.get(id).copied();
                EndpointStatus {
                    id: id.to_string(),
                    pool: pool.name.value.clone(),
                    address: e.address.value.clone(),
                    capacity: e.capacity(),
                    health: combined.map_or(HealthState::Unknown, |h| h.state),
                    vantages_down: combined.map_or(0, |h| h.vantages_down),
                    vantages_fresh: combined.map_or(0, |h| h.vantages_fresh),
                    per_vantage: self
                        .reports
                        .iter()
                        .map(|r| {
                            (r.vantage.clone(), r.endpoints.get(&key).map_or(ProbeVerdict::Unknown, |e| e.verdict))
                        })
                        .collect(),
                    last_failure: self.reports.iter().find_map(|r| {
                        let seen = r.endpoints.get(&key).filter(|e| e.verdict == ProbeVerdict::Down)?;
                        Some(format!("{}: {}", r.vantage, seen.last_failure.as_deref().unwrap_or("down")))
                    }),
                    desired_weight,
                    published_weight,
                    desired_percent: desired_weight.map(|w| percent(w, desired_total)),
                    published_percent: published_weight.map(|w| percent(w, published_total)),
                    warmup: self.warmups.and_then(|w| w.get(id)).and_then(|w| warmup(w, &stages, hold, self.now)),
                }
            })
            .collect();
        let frozen = applicable.freeze.map(|o| FrozenStatus {
            scope: match &o.action {
                OverrideAction::Freeze { scope: FreezeScope::Provider { .. } } => "provider",
                OverrideAction::Freeze { scope: FreezeScope::All } => "all",
                _ => "record",
            }
            .to_string(),
            override_id: o.id.clone(),
            reason: o.reason.clone(),
            author: o.author.clone(),
            expires_at: o.expires_at.map(Timestamp::rfc3339),
        });
        RecordStatus {
            name: policy.record_name().to_string(),
            policy: policy.name().to_string(),
            routing: policy.spec.routing.value,
            providers: policy.spec.publish_to.value.iter().map(|p| p.value.clone()).collect(),
            frozen,
            generation: newest.map(|(g, _)| *g),
            epoch: newest.and_then(|(_, v)| v["epoch"].as_u64()),
            last_apply: self.last_apply_status(newest),
            mode: self.record_plan.map(|r| r.mode),
            endpoints,
            held: self
                .record_plan
                .map(|r| {
                    r.held
                        .iter()
                        .map(|h| HeldStatus {
                            endpoint: h.endpoint.clone(),
                            cause: h.cause,
                            reason: h.reason.clone(),
                            override_id: h.override_id.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            overrides: overrides.into_iter().map(|o| override_view(o, self.now)).collect(),
        }
    }

    /// Endpoint → desired weight (absent: 0), when this replica planned the record.
    fn desired(&self) -> Option<BTreeMap<String, u32>> {
        self.record_plan.map(|r| r.answers.iter().map(|a| (a.endpoint.clone(), a.weight)).collect())
    }

    /// Endpoint → weight the providers hold. The leader read them at the start of
    /// its last round; when that round then wrote the record successfully, they hold
    /// the plan. A follower takes the newest applied plan from the history.
    fn published(&self, desired: Option<&BTreeMap<String, u32>>) -> BTreeMap<String, u32> {
        let written_last_round = self.last_apply.is_some_and(|a| a.round == self.rounds && a.outcome == "ok");
        match (self.leading, desired, self.published) {
            (true, Some(desired), _) if written_last_round => {
                desired.iter().filter(|(_, w)| **w > 0).map(|(e, w)| (e.clone(), *w)).collect()
            }
            (true, _, Some(published)) => published.clone(),
            _ => self
                .history
                .last()
                .and_then(|(_, plan)| plan["answers"].as_array())
                .map(|answers| {
                    answers
                        .iter()
                        .filter_map(|a| {
                            Some((a["endpoint"].as_str()?.to_string(), u32::try_from(a["weight"].as_u64()?).ok()?))
                        })
                        .filter(|(_, w)| *w > 0)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn last_apply_status(&self, newest: Option<&(u64, serde_json::Value)>) -> Option<LastApplyStatus> {
        if let Some(a) = self.last_apply {
            return Some(LastApplyStatus {
                at: Some(a.at.rfc3339()),
                outcome: a.outcome.to_string(),
                detail: a.detail.clone(),
            });
        }
        newest.map(|(generation, plan)| LastApplyStatus {
            at: plan["appliedAt"].as_u64().map(|ms| Timestamp(ms).rfc3339()),
            outcome: "ok".into(),
            detail: format!("generation {generation} applied"),
        })
    }
}

/// The warm-up view of one endpoint's planner state, `None` at full weight or out
/// without a pending retry.
fn warmup(state: &WarmupState, stages: &[f64], hold: Duration, now: Timestamp) -> Option<WarmupStatus> {
    match *state {
        WarmupState::Warming { stage, since, .. } => Some(WarmupStatus {
            stage: stage + 1,
            stages: stages.len(),
            percent: stages.get(stage).copied().unwrap_or(100.0),
            next_stage_in_ms: Some(hold.saturating_sub(now.since(since)).as_millis() as u64),
        }),
        WarmupState::Out { retry_at, .. } if retry_at > now => Some(WarmupStatus {
            stage: 0,
            stages: stages.len(),
            percent: 0.0,
            next_stage_in_ms: Some(retry_at.since(now).as_millis() as u64),
        }),
        WarmupState::Out { .. } | WarmupState::Full => None,
    }
}

/// An override for people: what it does in a few words.
fn override_view(o: &Override, now: Timestamp) -> OverrideView {
    let summary = match &o.action {
        OverrideAction::Drain { target } => format!("drain {target}"),
        OverrideAction::Pin { record, weights } => {
            let weights: Vec<String> = weights.iter().map(|(e, w)| format!("{e}={w}")).collect();
            format!("pin {record} {}", weights.join(" "))
        }
        OverrideAction::Freeze { scope: FreezeScope::All } => "freeze all".into(),
        OverrideAction::Freeze { scope: FreezeScope::Record { record } } => format!("freeze record {record}"),
        OverrideAction::Freeze { scope: FreezeScope::Provider { provider } } => format!("freeze provider {provider}"),
        OverrideAction::FailoverToPool { record, pool, immediate } => {
            format!("failover {record} to pool {pool}{}", if *immediate { " now" } else { "" })
        }
    };
    OverrideView {
        id: o.id.clone(),
        action: o.action.clone(),
        summary,
        reason: o.reason.clone(),
        author: o.author.clone(),
        created_at: o.created_at.rfc3339(),
        expires_at: o.expires_at.map(Timestamp::rfc3339),
        expires_in_ms: o.expires_at.map(|at| at.since(now).as_millis() as u64),
        force: o.force,
    }
}

/// The newest applied plans across records.
fn recent_plans(history: &BTreeMap<String, Vec<(u64, serde_json::Value)>>) -> Vec<PlanSummary> {
    let mut plans: Vec<(Option<u64>, PlanSummary)> = history
        .iter()
        .flat_map(|(record, plans)| plans.iter().map(move |(generation, plan)| (record, generation, plan)))
        .map(|(record, generation, plan)| {
            let at = plan["appliedAt"].as_u64();
            let changes = plan["changes"]
                .as_array()
                .map(|changes| {
                    changes
                        .iter()
                        .map(|c| ChangeStatus {
                            endpoint: c["endpoint"].as_str().unwrap_or_default().to_string(),
                            from: c["from"].as_u64().and_then(|w| u32::try_from(w).ok()),
                            to: c["to"].as_u64().and_then(|w| u32::try_from(w).ok()),
                            reason: c["reason"].as_str().unwrap_or_default().to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let summary = PlanSummary {
                record: record.clone(),
                generation: *generation,
                epoch: plan["epoch"].as_u64(),
                at: at.map(|ms| Timestamp(ms).rfc3339()),
                changes,
            };
            (at, summary)
        })
        .collect();
    plans.sort_by(|(a, x), (b, y)| (b, y.generation, &y.record).cmp(&(a, x.generation, &x.record)));
    plans.into_iter().take(RECENT_PLANS).map(|(_, p)| p).collect()
}

/// The outcome of each policy's writes in one round: the first failure across its
/// providers wins; records that only had unchanged outcomes are left out.
pub fn last_applies(
    intents: &[Intent],
    outcomes: &[(String, crate::planner::RecordName, Outcome)],
    round: u64,
    now: Timestamp,
) -> BTreeMap<String, LastApply> {
    let mut out: BTreeMap<String, LastApply> = BTreeMap::new();
    for ((provider, _, outcome), intent) in outcomes.iter().zip(intents) {
        let detail = match outcome {
            Outcome::Unchanged => continue,
            Outcome::Applied { generation } => format!("{provider}: generation {generation}"),
            Outcome::Conflict(m) => format!("{provider}: conflict: {m}"),
            Outcome::Failed(e) => format!("{provider}: {e}"),
            Outcome::Fenced => format!("{provider}: not attempted: the leadership fence failed"),
            Outcome::Quarantined(why) => format!("{provider}: not attempted: quarantined {why}"),
            Outcome::InFlight => format!("{provider}: sent, no answer yet at the round deadline"),
            Outcome::WouldEmpty => format!("{provider}: refused: the change would leave the name empty"),
            Outcome::NotOwned(m) => format!("{provider}: refused: {m}"),
        };
        let label = super::run::outcome_label(outcome);
        let entry = out.entry(intent.policy.clone()).or_insert_with(|| LastApply {
            round,
            at: now,
            outcome: "ok",
            detail: String::new(),
        });
        if entry.outcome == "ok" {
            entry.outcome = label;
        }
        if !entry.detail.is_empty() {
            entry.detail.push_str("; ");
        }
        entry.detail.push_str(&detail);
    }
    out
}

/// The vantages status reports on: every replica whose report the last round
/// combined (the leader pulls them; a follower has only its own), else this
/// replica's own report (before the first round).
pub fn vantages_seen(state: &AdminState) -> Vec<VantageStatus> {
    let mut seen = state.summary.borrow().vantages.clone();
    let own = state.vantage.borrow().clone();
    if seen.is_empty() {
        // Before the first round: its own report, just published, is all it knows.
        let own = VantageStatus {
            id: own.vantage.clone(),
            admin_url: None,
            fresh: true,
            report_age_ms: None,
            report: Some(own),
        };
        return vec![own];
    }
    // This replica's own report is always the newest it has.
    for v in seen.iter_mut().filter(|v| v.id == own.vantage) {
        v.report = Some(own.clone());
    }
    seen
}

/// Reads what status needs from the store, within [`STORE_TIMEOUT`]; errors are
/// reported in the view instead of failing the report. `drills` are the drills in
/// force, whose next scheduled runs the view names.
pub async fn read_store(
    coordinator: &Arc<dyn Coordinator>,
    records: &[String],
    drills: &[Definition],
    now: Timestamp,
) -> StoreView {
    let read = async {
        let mut view = StoreView::default();
        let source = StateSource::Coordinator(coordinator.clone());
        let mut errors = Vec::new();
        match source.overrides(now).await {
            Ok(o) => view.overrides = o,
            Err(e) => errors.push(format!("overrides: {e}")),
        }
        match source.planner_state().await {
            Ok(s) => view.planner_state = Some(s),
            Err(e) => errors.push(format!("planner state: {e}")),
        }
        for record in records {
            match coordinator.plans(record).await {
                Ok(plans) => {
                    view.history.insert(record.clone(), plans);
                }
                Err(e) => {
                    errors.push(format!("history of {record}: {e}"));
                    break;
                }
            }
        }
        match crate::coord::vantages(coordinator.as_ref(), Timestamp(0)).await {
            Ok(entries) => view.registry = entries.into_iter().map(|(id, r)| (id, r.admin_url)).collect(),
            Err(e) => errors.push(format!("vantage registry: {e}")),
        }
        match crate::drill::api::summary(coordinator.as_ref(), drills, now).await {
            Ok(summary) => view.drills = summary,
            Err(e) => errors.push(format!("drill reports: {e}")),
        }
        view.error = (!errors.is_empty()).then(|| errors.join("; "));
        view
    };
    match tokio::time::timeout(STORE_TIMEOUT, read).await {
        Ok(view) => view,
        Err(_) => StoreView {
            error: Some(format!("the store did not answer within {}s", STORE_TIMEOUT.as_secs())),
            ..StoreView::default()
        },
    }
}

/// Gathers the inputs from a running replica's admin state and builds the report.
pub async fn gather(state: &AdminState, now: Timestamp) -> StatusReport {
    let summary = state.summary.borrow().clone();
    let setup: Option<Arc<Setup>> = summary.setup.clone();
    let policies: Vec<&FailoverPolicy> = setup.iter().flat_map(|s| s.policies.iter().map(|p| &p.policy)).collect();
    let records: Vec<String> = policies.iter().map(|p| p.record_name().to_string()).collect();
    let drills = state.drills.definitions.borrow().clone();
    let store = read_store(&state.coordinator, &records, &drills, now).await;
    let leadership = state.coordinator.leadership().borrow().clone();
    let admin_url = setup.as_ref().map(|s| format!("http://{}", s.config.config.admin.listen));
    build(&StatusInputs {
        replica: &state.identity,
        admin_url: admin_url.as_deref(),
        leadership: &leadership,
        now,
        policies: &policies,
        summary: &summary,
        vantages: &vantages_seen(state),
        store: &store,
    })
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;

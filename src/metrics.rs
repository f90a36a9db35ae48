//! Prometheus metrics (ARCHITECTURE.md §7), prefix `veer_`, units in names, `_total`
//! counters. Every family is registered at start, so `/metrics` lists all of
//! them even before the first sample; the dashboard and alert tests rely on it.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

/// Label pairs of one series.
pub type Labels = Vec<(&'static str, String)>;

type Gauges = Family<Labels, Gauge>;
type FloatGauges = Family<Labels, Gauge<f64, AtomicU64>>;
type Counters = Family<Labels, Counter>;
type FloatCounters = Family<Labels, Counter<f64, AtomicU64>>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric veer exports. Cheap to clone (families are shared).
#[derive(Clone)]
pub struct Metrics {
    /// Probe results per endpoint and vantage, labelled `result="success|failure"`.
    pub probe_results: Counters,
    /// Probe latency per endpoint and vantage.
    pub probe_duration: Histograms,
    /// One vantage's verdict per endpoint: 1 up, 0 down.
    pub endpoint_vantage_up: Gauges,
    /// Combined verdict per endpoint: 1 up, 0 down (absent while unknown).
    pub endpoint_up: Gauges,
    /// Desired share of the record's traffic per endpoint (0–1).
    pub weight_desired: FloatGauges,
    /// Published share of the record's traffic per endpoint and provider (0–1).
    pub weight_published: FloatGauges,
    /// Live answers published per record and provider.
    pub record_answers: Gauges,
    /// The record's `minHealthyEndpoints` guard, for the "fewer answers than its guard" alert.
    pub record_answers_min: Gauges,
    /// Generation in the ownership record per record and provider.
    pub plan_generation: Gauges,
    /// Apply latency per provider.
    pub apply_duration: Histograms,
    /// Applies per provider and `outcome="ok|conflict|throttled|error|fenced|refused|quarantined"`.
    pub applies: Counters,
    /// Provider API calls per provider and `operation="read|write"`.
    pub provider_calls: Counters,
    /// Time spent waiting for the API budget per provider.
    pub provider_budget_wait: FloatCounters,
    /// Throttled provider responses per provider.
    pub provider_throttled: Counters,
    /// 1 while this replica leads.
    pub leader: Gauges,
    /// The current leader epoch as this replica knows it.
    pub leader_epoch: Gauges,
    /// Changes currently held per record and `reason` (the planner's hold causes).
    pub held_changes: Gauges,
    /// 1 while the checker is impaired (automation holds).
    pub checker_impaired: Gauges,
    /// 1 per impaired vantage.
    pub vantage_impaired: Gauges,
    /// Policy reloads by `outcome="ok|error"`.
    pub policy_reloads: Counters,
    /// 1 when the last policy reload succeeded.
    pub policy_reload_ok: Gauges,
    /// Active operator overrides by `kind="drain|pin|freeze|failover"`.
    pub overrides_active: Gauges,
    /// The leader's pulls of other replicas' vantage reports, per `vantage` and
    /// `outcome="ok|timeout|unreachable|unauthorized|error|invalid"`.
    pub vantage_fetches: Counters,
    /// Vantages whose latest report is fresh, as this replica sees them (the
    /// leader counts every replica it pulls; a follower only itself).
    pub vantages_fresh: Gauges,
    /// Age of each vantage's latest report on this replica's clock.
    pub vantage_report_age: FloatGauges,
    /// Drill runs by `drill` and `outcome="ok|aborted|refused|failed"`.
    pub drill_runs: Counters,
    /// The last run's duration per drill (NaN before the first run).
    pub drill_duration: FloatGauges,
    /// The last run's time to detect per drill: drain written → read back at every
    /// provider (leader drills: step-down → take-over).
    pub drill_time_to_detect: FloatGauges,
    /// The last run's time to restore per drill: drain lifted → full weight read back.
    pub drill_time_to_restore: FloatGauges,
    /// Leader rounds by `outcome="ok|partial|deadline|error"` (partial: some unit
    /// not read or not written; deadline: the round ran into its deadline).
    pub rounds: Counters,
    /// Leader round duration.
    pub round_duration: Histograms,
    /// 1 while rounds read and write the provider, 0 while they skip it as unavailable.
    pub provider_available: Gauges,
    /// Unix time of the provider's last successful read.
    pub provider_last_read: FloatGauges,
    /// Unix time of the provider's last successful write.
    pub provider_last_write: FloatGauges,
    /// Names whose writes wait out a quarantine, per provider and record.
    pub quarantined: Gauges,
    /// 1, labelled with the version and git revision of this binary.
    pub build_info: Gauges,
    registry: std::sync::Arc<Registry>,
    families: std::sync::Arc<Vec<MetricFamily>>,
}

/// One metric family as Prometheus sees it: the catalogue behind `/metrics`, the
/// dashboard and alert checks, and the README's metrics table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricFamily {
    /// The exposed name: `veer_` prefix, unit suffix, `_total` for counters; a
    /// histogram's base name (its series add `_bucket`, `_sum`, `_count`).
    pub name: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: &'static str,
    /// The label names of every series of the family.
    pub labels: &'static [&'static str],
    /// One line of meaning (also the `# HELP` text).
    pub help: &'static str,
}

/// Registers metrics under `veer_` and remembers each family for the catalogue.
struct Catalogue {
    registry: Registry,
    families: Vec<MetricFamily>,
}

impl Catalogue {
    fn add<M: prometheus_client::registry::Metric + Clone>(
        &mut self,
        name: &str,
        unit: Option<Unit>,
        kind: &'static str,
        labels: &'static [&'static str],
        help: &'static str,
        metric: &M,
    ) {
        let full = match &unit {
            Some(u) => format!("veer_{name}_{}", u.as_str()),
            None => format!("veer_{name}"),
        };
        let name_exposed = if kind == "counter" { format!("{full}_total") } else { full };
        self.families.push(MetricFamily { name: name_exposed, kind, labels, help });
        match unit {
            Some(u) => self.registry.register_with_unit(name, help, u, metric.clone()),
            None => self.registry.register(name, help, metric.clone()),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every family under the `veer_` prefix.
    pub fn new() -> Self {
        let histograms = || Histograms::new_with_constructor(latency_histogram as fn() -> Histogram);
        let m = Self {
            probe_results: Counters::default(),
            probe_duration: histograms(),
            endpoint_vantage_up: Gauges::default(),
            endpoint_up: Gauges::default(),
            weight_desired: FloatGauges::default(),
            weight_published: FloatGauges::default(),
            record_answers: Gauges::default(),
            record_answers_min: Gauges::default(),
            plan_generation: Gauges::default(),
            apply_duration: histograms(),
            applies: Counters::default(),
            provider_calls: Counters::default(),
            provider_budget_wait: FloatCounters::default(),
            provider_throttled: Counters::default(),
            leader: Gauges::default(),
            leader_epoch: Gauges::default(),
            held_changes: Gauges::default(),
            checker_impaired: Gauges::default(),
            vantage_impaired: Gauges::default(),
            policy_reloads: Counters::default(),
            policy_reload_ok: Gauges::default(),
            overrides_active: Gauges::default(),
            vantage_fetches: Counters::default(),
            vantages_fresh: Gauges::default(),
            vantage_report_age: FloatGauges::default(),
            drill_runs: Counters::default(),
            drill_duration: FloatGauges::default(),
            drill_time_to_detect: FloatGauges::default(),
            drill_time_to_restore: FloatGauges::default(),
            rounds: Counters::default(),
            round_duration: histograms(),
            provider_available: Gauges::default(),
            provider_last_read: FloatGauges::default(),
            provider_last_write: FloatGauges::default(),
            quarantined: Gauges::default(),
            build_info: Gauges::default(),
            registry: Default::default(),
            families: Default::default(),
        };
        let mut c = Catalogue { registry: Registry::with_prefix("veer"), families: Vec::new() };
        let (secs, ratio) = (|| Some(Unit::Seconds), || Some(Unit::Other("ratio".into())));
        const PROBE: &[&str] = &["record", "endpoint", "vantage"];
        c.add(
            "probe_results",
            None,
            "counter",
            &["record", "endpoint", "vantage", "result"],
            "Probes by result (success, failure), per endpoint and vantage",
            &m.probe_results,
        );
        c.add(
            "probe_duration",
            secs(),
            "histogram",
            PROBE,
            "Probe latency per endpoint and vantage",
            &m.probe_duration,
        );
        c.add(
            "endpoint_vantage_up",
            None,
            "gauge",
            PROBE,
            "One vantage's verdict after rise/fall: 1 up, 0 down (absent while unknown)",
            &m.endpoint_vantage_up,
        );
        c.add(
            "endpoint_up",
            None,
            "gauge",
            &["record", "endpoint"],
            "Combined verdict across fresh vantages (quorum): 1 up, 0 down (absent while unknown)",
            &m.endpoint_up,
        );
        c.add(
            "weight_desired",
            ratio(),
            "gauge",
            &["record", "endpoint"],
            "The plan's share of the record's traffic for the endpoint (0-1)",
            &m.weight_desired,
        );
        c.add(
            "weight_published",
            ratio(),
            "gauge",
            &["record", "endpoint", "provider"],
            "The share a provider publishes for the endpoint, as read at the start of a round (0-1)",
            &m.weight_published,
        );
        c.add(
            "record_answers",
            None,
            "gauge",
            &["record", "provider"],
            "Live answers the plan publishes per record and provider",
            &m.record_answers,
        );
        c.add(
            "record_answers_min",
            None,
            "gauge",
            &["record"],
            "The record's minHealthyEndpoints guard (alert when answers fall below it)",
            &m.record_answers_min,
        );
        c.add(
            "plan_generation",
            None,
            "gauge",
            &["record", "provider"],
            "Generation in the provider's ownership record after the last apply",
            &m.plan_generation,
        );
        c.add(
            "apply_duration",
            secs(),
            "histogram",
            &["provider"],
            "Time to apply one round's writes to a provider",
            &m.apply_duration,
        );
        c.add(
            "applies",
            None,
            "counter",
            &["provider", "outcome"],
            "Record applies by outcome (ok, conflict, throttled, error, fenced, refused, quarantined)",
            &m.applies,
        );
        c.add(
            "provider_calls",
            None,
            "counter",
            &["provider", "operation"],
            "Provider API calls by operation (read, write)",
            &m.provider_calls,
        );
        c.add(
            "provider_budget_wait",
            secs(),
            "counter",
            &["provider"],
            "Time spent waiting for the provider's API budget",
            &m.provider_budget_wait,
        );
        c.add(
            "provider_throttled",
            None,
            "counter",
            &["provider"],
            "Throttled provider API responses",
            &m.provider_throttled,
        );
        c.add("leader", None, "gauge", &[], "1 while this replica leads, else 0", &m.leader);
        c.add("leader_epoch", None, "gauge", &[], "The fencing epoch of this replica's last tenure", &m.leader_epoch);
        c.add(
            "held_changes",
            None,
            "gauge",
            &["record", "reason"],
            "Changes the last plan held, by reason (velocity, change-budget, guard, freeze, impaired, keep-last, \
             join-cap, backoff)",
            &m.held_changes,
        );
        c.add(
            "checker_impaired",
            None,
            "gauge",
            &[],
            "1 while the health checker is impaired and automation holds the last answers (fail static)",
            &m.checker_impaired,
        );
        c.add(
            "vantage_impaired",
            None,
            "gauge",
            &["vantage"],
            "1 while a vantage is excluded as impaired (it saw a mass failure)",
            &m.vantage_impaired,
        );
        c.add(
            "policy_reloads",
            None,
            "counter",
            &["outcome"],
            "Policy loads and reloads by outcome (ok, error)",
            &m.policy_reloads,
        );
        c.add(
            "policy_reload_ok",
            None,
            "gauge",
            &[],
            "1 when the last policy reload succeeded, 0 while a rejected set is ignored",
            &m.policy_reload_ok,
        );
        c.add(
            "overrides_active",
            None,
            "gauge",
            &["kind"],
            "Active operator overrides by kind (drain, pin, freeze, failover)",
            &m.overrides_active,
        );
        c.add(
            "vantage_fetches",
            None,
            "counter",
            &["vantage", "outcome"],
            "The leader's pulls of other replicas' vantage reports by outcome (ok, timeout, unreachable, \
             unauthorized, error, invalid)",
            &m.vantage_fetches,
        );
        c.add(
            "vantages_fresh",
            None,
            "gauge",
            &[],
            "Vantages whose latest report is fresh as this replica sees them (a follower counts only itself)",
            &m.vantages_fresh,
        );
        c.add(
            "vantage_report_age",
            secs(),
            "gauge",
            &["vantage"],
            "Age of each vantage's latest report on this replica's clock",
            &m.vantage_report_age,
        );
        c.add(
            "drill_runs",
            None,
            "counter",
            &["drill", "outcome"],
            "Drill runs by outcome (ok, aborted, refused, failed)",
            &m.drill_runs,
        );
        c.add(
            "drill_last_duration",
            secs(),
            "gauge",
            &["drill"],
            "Duration of the drill's last run, start to end (NaN before the first run)",
            &m.drill_duration,
        );
        c.add(
            "drill_time_to_detect",
            secs(),
            "gauge",
            &["drill"],
            "Last run: drain written to drain read back at every provider (leader drills: step-down to take-over)",
            &m.drill_time_to_detect,
        );
        c.add(
            "drill_time_to_restore",
            secs(),
            "gauge",
            &["drill"],
            "Last run: drain lifted to full weight read back at every provider",
            &m.drill_time_to_restore,
        );
        c.add(
            "rounds",
            None,
            "counter",
            &["outcome"],
            "Leader reconcile rounds by outcome (ok, partial, deadline, error)",
            &m.rounds,
        );
        c.add("round_duration", secs(), "histogram", &[], "Leader reconcile round duration", &m.round_duration);
        c.add(
            "provider_available",
            None,
            "gauge",
            &["provider"],
            "1 while rounds use the provider, 0 while it is skipped as unavailable (retried with backoff)",
            &m.provider_available,
        );
        c.add(
            "provider_last_read_timestamp",
            secs(),
            "gauge",
            &["provider"],
            "Unix time of the provider's last successful read",
            &m.provider_last_read,
        );
        c.add(
            "provider_last_write_timestamp",
            secs(),
            "gauge",
            &["provider"],
            "Unix time of the provider's last successful write",
            &m.provider_last_write,
        );
        c.add(
            "build_info",
            None,
            "gauge",
            &["version", "revision"],
            "Always 1: the version and git revision of this veer binary",
            &m.build_info,
        );
        m.build_info
            .get_or_create(&vec![
                ("version", env!("CARGO_PKG_VERSION").to_string()),
                ("revision", env!("VEER_REVISION").to_string()),
            ])
            .set(1);
        c.add(
            "quarantined",
            None,
            "gauge",
            &["provider", "record"],
            "1 while the record's writes to the provider wait out a quarantine after repeated rejections",
            &m.quarantined,
        );
        Self { registry: std::sync::Arc::new(c.registry), families: std::sync::Arc::new(c.families), ..m }
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out).expect("writing to a String cannot fail");
        out
    }

    /// Writes the exposition to `out` as it is encoded (see
    /// [`crate::controller::exposition`], which streams it); an error from `out` stops it.
    pub fn render_into(&self, out: &mut impl std::fmt::Write) -> std::fmt::Result {
        encode(out, &self.registry)
    }

    /// Names of every series family Prometheus can see from veer, with counter
    /// `_total` and histogram `_bucket/_sum/_count` suffixes (empty families are
    /// not rendered, so this list is the contract for dashboards and alerts).
    pub fn series_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for f in self.families.iter() {
            match f.kind {
                "histogram" => names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{}{s}", f.name))),
                _ => names.push(f.name.clone()),
            }
        }
        names
    }

    /// Every family, in registration order.
    pub fn families(&self) -> &[MetricFamily] {
        &self.families
    }

    /// The README's metrics table (Markdown), exactly as it sits between the
    /// `<!-- metrics:begin -->` and `<!-- metrics:end -->` markers.
    pub fn reference_markdown(&self) -> String {
        let mut out = String::from("| metric | type | labels | meaning |\n|---|---|---|---|\n");
        for f in self.families.iter() {
            let labels: Vec<String> = f.labels.iter().map(|l| format!("`{l}`")).collect();
            let labels = if labels.is_empty() { "–".to_string() } else { labels.join(", ") };
            out += &format!("| `{}` | {} | {labels} | {} |\n", f.name, f.kind, f.help);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_listed_before_any_sample() {
        let names = Metrics::new().series_names();
        for expected in [
            "veer_probe_results_total",
            "veer_probe_duration_seconds_bucket",
            "veer_weight_published_ratio",
            "veer_applies_total",
            "veer_provider_budget_wait_seconds_total",
            "veer_leader_epoch",
            "veer_checker_impaired",
            "veer_policy_reloads_total",
        ] {
            assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
        }
    }

    #[test]
    fn samples_carry_their_labels() {
        let m = Metrics::new();
        m.applies.get_or_create(&vec![("provider", "local".into()), ("outcome", "ok".into())]).inc();
        m.weight_published
            .get_or_create(&vec![("record", "api.example.test.".into()), ("endpoint", "e1".into())])
            .set(0.333);
        let text = m.render();
        assert!(text.contains("veer_applies_total{provider=\"local\",outcome=\"ok\"} 1"), "{text}");
        assert!(text.contains("veer_weight_published_ratio{record=\"api.example.test.\",endpoint=\"e1\"} 0.333"));
    }

    /// Prometheus naming conventions (prometheus.io "Metric and label naming"):
    /// snake case under one prefix, base units spelled out as the last word
    /// (`seconds`, `bytes`, `ratio` — never `percent` or `milliseconds`), `_total`
    /// only and always on counters, and time histograms in seconds.
    #[test]
    fn every_name_follows_the_prometheus_conventions() {
        let metrics = Metrics::new();
        let mut seen = std::collections::BTreeSet::new();
        for f in metrics.families() {
            let name = f.name.as_str();
            assert!(seen.insert(name), "{name} registered twice");
            assert!(name.starts_with("veer_"), "{name}: the veer_ prefix");
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}: snake case"
            );
            for bad in ["percent", "milli", "micro", "minutes", "hours", "kilo", "mega"] {
                assert!(!name.contains(bad), "{name}: use base units (seconds, bytes, ratio), not {bad}");
            }
            assert_eq!(f.kind == "counter", name.ends_with("_total"), "{name}: `_total` marks exactly the counters");
            if f.kind == "histogram" {
                assert!(name.ends_with("_seconds") || name.ends_with("_bytes"), "{name}: a histogram names its unit");
            }
            assert!(["counter", "gauge", "histogram"].contains(&f.kind), "{name}: kind {}", f.kind);
            for label in f.labels {
                assert!(label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{name}: label {label}");
                assert!(*label != "le" && *label != "quantile", "{name}: reserved label {label}");
            }
            assert!(
                !f.help.is_empty() && !f.help.contains('\n') && !f.help.contains('|'),
                "{name}: one table-safe line"
            );
        }
    }

    #[test]
    fn the_reference_table_has_one_row_per_family() {
        let metrics = Metrics::new();
        let table = metrics.reference_markdown();
        assert_eq!(table.lines().count(), metrics.families().len() + 2);
        assert!(table.contains("| `veer_applies_total` | counter | `provider`, `outcome` | "), "{table}");
        assert!(table.contains("| `veer_leader` | gauge | – | "), "{table}");
    }
}

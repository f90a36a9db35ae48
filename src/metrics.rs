//! Prometheus metrics (SPEC §10), prefix `veer_`, units in names, `_total`
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
    /// Desired weight per endpoint in percent of the record.
    pub weight_desired: FloatGauges,
    /// Published weight per endpoint and provider in percent of the record.
    pub weight_published: FloatGauges,
    /// Live answers published per record and provider.
    pub record_answers: Gauges,
    /// The record's `minHealthyEndpoints` guard, for the "fewer answers than its guard" alert.
    pub record_answers_min: Gauges,
    /// Generation in the ownership record per record and provider.
    pub plan_generation: Gauges,
    /// Apply latency per provider.
    pub apply_duration: Histograms,
    /// Applies per provider and `outcome="ok|conflict|throttled|error|fenced|refused"`.
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
    /// Changes currently held per record and `reason="velocity|guard|freeze|impaired"`.
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
    registry: std::sync::Arc<Registry>,
    catalogue: std::sync::Arc<Vec<String>>,
}

/// Registers metrics under `veer_` and remembers the series names Prometheus will see.
struct Catalogue {
    registry: Registry,
    names: Vec<String>,
}

impl Catalogue {
    fn add<M: prometheus_client::registry::Metric + Clone>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        kind: &str,
        metric: &M,
    ) {
        let full = match &unit {
            Some(u) => format!("veer_{name}_{}", u.as_str()),
            None => format!("veer_{name}"),
        };
        match kind {
            "counter" => self.names.push(format!("{full}_total")),
            "histogram" => self.names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{full}{s}"))),
            _ => self.names.push(full),
        }
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
            registry: Default::default(),
            catalogue: Default::default(),
        };
        let mut c = Catalogue { registry: Registry::with_prefix("veer"), names: Vec::new() };
        let (secs, pct) = (|| Some(Unit::Seconds), || Some(Unit::Other("percent".into())));
        c.add("probe_results", "Probe results per endpoint and vantage", None, "counter", &m.probe_results);
        c.add("probe_duration", "Probe latency", secs(), "histogram", &m.probe_duration);
        c.add("endpoint_vantage_up", "One vantage's verdict: 1 up, 0 down", None, "gauge", &m.endpoint_vantage_up);
        c.add("endpoint_up", "Combined verdict across vantages: 1 up, 0 down", None, "gauge", &m.endpoint_up);
        c.add("weight_desired", "Planned weight share", pct(), "gauge", &m.weight_desired);
        c.add("weight_published", "Published weight share", pct(), "gauge", &m.weight_published);
        c.add("record_answers", "Live answers published per record and provider", None, "gauge", &m.record_answers);
        c.add("record_answers_min", "The record's minHealthyEndpoints guard", None, "gauge", &m.record_answers_min);
        c.add("plan_generation", "Generation in the ownership record", None, "gauge", &m.plan_generation);
        c.add("apply_duration", "Provider apply latency", secs(), "histogram", &m.apply_duration);
        c.add("applies", "Applies by provider and outcome", None, "counter", &m.applies);
        c.add("provider_calls", "Provider API calls by operation", None, "counter", &m.provider_calls);
        c.add("provider_budget_wait", "Time waiting for the API budget", secs(), "counter", &m.provider_budget_wait);
        c.add("provider_throttled", "Throttled provider responses", None, "counter", &m.provider_throttled);
        c.add("leader", "1 while this replica leads", None, "gauge", &m.leader);
        c.add("leader_epoch", "Current leader epoch", None, "gauge", &m.leader_epoch);
        c.add("held_changes", "Changes held by velocity, guards, freeze or impairment", None, "gauge", &m.held_changes);
        c.add("checker_impaired", "1 while the health checker is impaired", None, "gauge", &m.checker_impaired);
        c.add("vantage_impaired", "1 per impaired vantage", None, "gauge", &m.vantage_impaired);
        c.add("policy_reloads", "Policy reloads by outcome", None, "counter", &m.policy_reloads);
        c.add("policy_reload_ok", "1 when the last policy reload succeeded", None, "gauge", &m.policy_reload_ok);
        c.add("overrides_active", "Active operator overrides by kind", None, "gauge", &m.overrides_active);
        c.add("vantage_fetches", "Vantage report pulls by vantage and outcome", None, "counter", &m.vantage_fetches);
        c.add("vantages_fresh", "Vantages with a fresh report", None, "gauge", &m.vantages_fresh);
        c.add("vantage_report_age", "Age of each vantage's latest report", secs(), "gauge", &m.vantage_report_age);
        Self { registry: std::sync::Arc::new(c.registry), catalogue: std::sync::Arc::new(c.names), ..m }
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// Names of every series family Prometheus can see from veer, with counter
    /// `_total` and histogram `_bucket/_sum/_count` suffixes (empty families are
    /// not rendered, so this list is the contract for dashboards and alerts).
    pub fn series_names(&self) -> Vec<String> {
        self.catalogue.as_ref().clone()
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
            "veer_weight_published_percent",
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
            .set(33.3);
        let text = m.render();
        assert!(text.contains("veer_applies_total{provider=\"local\",outcome=\"ok\"} 1"), "{text}");
        assert!(text.contains("veer_weight_published_percent{record=\"api.example.test.\",endpoint=\"e1\"} 33.3"));
    }
}

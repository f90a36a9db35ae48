//! `veer history [RECORD] [--since D] [-o table|json]`: the audit trail, newest
//! first — applied plans (generation, epoch, each change with its reason),
//! override events (created, deleted, expired: who, why, when, until when) and
//! drill runs (what, who started them, how they ended, their figures).

use super::model::{OverrideView, Time};
use super::term::{Style, now_ms, parse_time, rfc3339, seconds};
use super::{AdminClient, Failure, HistoryArgs, Output, block_on, concerns, describe_action, fetch_status, target};
use crate::drill::report::{Measures, Outcome, Report, TriggerKind};
use serde::{Deserialize, Serialize};
use std::io::Write as _;
use std::process::ExitCode;

/// A plan entry as `GET /v1/history` returns it.
#[derive(Debug, Deserialize)]
struct StoredPlan {
    record: String,
    generation: u64,
    plan: PlanBody,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PlanBody {
    #[serde(rename = "appliedAt")]
    at: Option<Time>,
    epoch: Option<u64>,
    mode: Option<String>,
    changes: Vec<Change>,
}

/// One answer change of an applied plan.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
struct Change {
    endpoint: String,
    from: Option<u64>,
    to: Option<u64>,
    reason: String,
}

/// A drill run as `GET /v1/history` returns it (after the plans).
#[derive(Debug, Deserialize)]
struct StoredDrill {
    report: Report,
}

/// An override event as `GET /v1/history/overrides` returns it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredEvent {
    at: Time,
    event: String,
    by: String,
    reason: Option<String>,
    #[serde(rename = "override")]
    item: serde_json::Value,
}

/// One line of the trail, as printed with `-o json` (documented in the README).
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Entry {
    /// An applied plan of one record.
    #[serde(rename_all = "camelCase")]
    Plan {
        at: Option<String>,
        at_ms: Option<u64>,
        record: String,
        generation: u64,
        epoch: Option<u64>,
        mode: Option<String>,
        changes: Vec<Change>,
    },
    /// An override created, deleted or expired.
    #[serde(rename_all = "camelCase")]
    Override {
        at: Option<String>,
        at_ms: Option<u64>,
        event: String,
        by: String,
        reason: Option<String>,
        #[serde(rename = "override")]
        item: serde_json::Value,
    },
    /// A drill run, at its start (its steps: `veer drill report NAME`).
    #[serde(rename_all = "camelCase")]
    Drill {
        at: Option<String>,
        at_ms: Option<u64>,
        /// The record drained (`None` for leader drills).
        record: Option<String>,
        drill: String,
        target: String,
        /// `schedule` or `operator`.
        trigger: TriggerKind,
        by: String,
        /// `ok`, `aborted`, `refused`, `failed`; `None` while it runs.
        outcome: Option<Outcome>,
        /// `finished`, or where a running drill is.
        phase: String,
        finished_at: Option<String>,
        reason: Option<String>,
        measures: Measures,
    },
}

impl Entry {
    fn at_ms(&self) -> Option<u64> {
        match self {
            Self::Plan { at_ms, .. } | Self::Override { at_ms, .. } | Self::Drill { at_ms, .. } => *at_ms,
        }
    }

    fn drill(report: Report) -> Self {
        let phase = report.phase_name();
        Self::Drill {
            at: Some(report.started_at.rfc3339()),
            at_ms: Some(report.started_at.as_millis()),
            record: report.record,
            drill: report.drill,
            target: report.target,
            trigger: report.trigger.kind,
            by: report.trigger.author,
            outcome: report.outcome,
            phase,
            finished_at: report.finished_at.map(|t| t.rfc3339()),
            reason: report.reason,
            measures: report.measures,
        }
    }
}

/// `GET /v1/history` holds applied plans and, after them, drill runs (`"drill"` key).
fn split_history(
    client: &AdminClient,
    entries: Vec<serde_json::Value>,
) -> Result<(Vec<StoredPlan>, Vec<Report>), Failure> {
    let (drills, plans): (Vec<_>, Vec<_>) = entries.into_iter().partition(|e| e.get("drill").is_some());
    let plans = parse(client, serde_json::Value::Array(plans))?;
    let drills: Vec<StoredDrill> = parse(client, serde_json::Value::Array(drills))?;
    Ok((plans, drills.into_iter().map(|d| d.report).collect()))
}

/// `--since`: a duration back from now, or a date/time.
fn since(text: &str, now: u64) -> Result<u64, Failure> {
    if let Ok(d) = crate::policy::duration::parse(text) {
        return Ok(now.saturating_sub(d.as_millis() as u64));
    }
    parse_time(text).ok_or_else(|| {
        Failure::usage(
            format!("--since {text}: not a duration or a time"),
            Some("e.g. --since 2h or --since 2026-11-02"),
        )
    })
}

/// Fetches both trails, merges them newest first and prints.
pub fn run(args: &HistoryArgs) -> ExitCode {
    let now = now_ms();
    let from = match args.since.as_deref().map(|s| since(s, now)).transpose() {
        Ok(f) => f,
        Err(f) => return f.exit(),
    };
    let fetched = block_on(async {
        let client = AdminClient::new(&args.server)?;
        let (_, status) = fetch_status(&client).await?;
        let record = match &args.record {
            Some(name) => Some(target::record(name, &status.records)?),
            None => None,
        };
        let query: Vec<(&str, &str)> = record.map(|r| vec![("record", r.name.as_str())]).unwrap_or_default();
        let (plans, drills) = split_history(&client, parse(&client, client.get("/v1/history", &query).await?)?)?;
        let events: Vec<StoredEvent> = parse(&client, client.get("/v1/history/overrides", &[]).await?)?;
        let events: Vec<StoredEvent> = events
            .into_iter()
            .filter(|e| {
                record.is_none_or(|r| {
                    serde_json::from_value::<OverrideView>(e.item.clone()).is_ok_and(|o| concerns(&o.action, r))
                })
            })
            .collect();
        Ok((plans, events, drills))
    });
    let (plans, events, drills) = match fetched {
        Ok(f) => f,
        Err(f) => return f.exit(),
    };
    let mut entries: Vec<Entry> = plans
        .into_iter()
        .map(|p| Entry::Plan {
            at: p.plan.at.map(|t| rfc3339(t.0)),
            at_ms: p.plan.at.map(|t| t.0),
            record: p.record,
            generation: p.generation,
            epoch: p.plan.epoch,
            mode: p.plan.mode,
            changes: p.plan.changes,
        })
        .chain(events.into_iter().map(|e| Entry::Override {
            at: Some(rfc3339(e.at.0)),
            at_ms: Some(e.at.0),
            event: e.event,
            by: e.by,
            reason: e.reason,
            item: e.item,
        }))
        .chain(drills.into_iter().map(Entry::drill))
        .filter(|e| from.is_none_or(|from| e.at_ms().is_some_and(|at| at >= from)))
        .collect();
    // Newest first; plans without a time (stored by older versions) last, by generation.
    entries.sort_by(|a, b| {
        b.at_ms().cmp(&a.at_ms()).then_with(|| match (a, b) {
            (Entry::Plan { generation: x, .. }, Entry::Plan { generation: y, .. }) => y.cmp(x),
            _ => std::cmp::Ordering::Equal,
        })
    });
    let mut stdout = std::io::stdout().lock();
    let _ = match args.output {
        Output::Json => writeln!(stdout, "{:#}", serde_json::json!({ "entries": entries })),
        Output::Table => write!(stdout, "{}", render(&entries, Style::for_stdout())),
    };
    ExitCode::SUCCESS
}

fn parse<T: serde::de::DeserializeOwned>(client: &AdminClient, value: serde_json::Value) -> Result<T, Failure> {
    serde_json::from_value(value).map_err(|e| {
        Failure::Client(super::ClientError::BadResponse { server: client.server(), why: format!("history: {e}") })
    })
}

fn render(entries: &[Entry], style: Style) -> String {
    let mut out = String::new();
    if entries.is_empty() {
        out.push_str("no history yet\n");
    }
    for entry in entries {
        match entry {
            Entry::Plan { at, record, generation, epoch, mode, changes, .. } => {
                let epoch = epoch.map(|e| format!(", epoch {e}")).unwrap_or_default();
                let mode = mode.as_deref().filter(|m| *m != "normal").map(|m| format!(" [{m}]")).unwrap_or_default();
                out.push_str(&format!(
                    "{}  {}  {record} generation {generation}{epoch}{mode}\n",
                    at.as_deref().unwrap_or("(time unknown)      "),
                    style.bold("plan    ")
                ));
                for c in changes {
                    let w = |w: Option<u64>| w.map_or_else(|| "—".to_string(), |w| w.to_string());
                    out.push_str(&format!("    {} {} → {}: {}\n", c.endpoint, w(c.from), w(c.to), c.reason));
                }
            }
            Entry::Override { at, event, by, reason, item, .. } => {
                let parsed = serde_json::from_value::<OverrideView>(item.clone()).ok();
                let what = parsed.as_ref().map_or_else(|| "override".to_string(), |o| describe_action(&o.action));
                let id = parsed.as_ref().map(|o| o.id.as_str()).unwrap_or("?");
                let label = match event.as_str() {
                    "created" => style.yellow("created "),
                    "deleted" => style.green("deleted "),
                    _ => style.dim(&format!("{event:<8}")),
                };
                out.push_str(&format!("{}  {label}  {what}  {}\n", at.as_deref().unwrap_or("?"), style.dim(id)));
                let why = reason.as_deref().map(|r| format!(": \"{r}\"")).unwrap_or_default();
                let mut detail = format!("    by {by}{why}");
                if let Some(o) = parsed.as_ref().filter(|_| event == "created") {
                    let until =
                        o.expires_at.map_or_else(|| "no expiry".to_string(), |t| format!("until {}", rfc3339(t.0)));
                    detail.push_str(&format!(" · {until}"));
                    if o.force {
                        detail.push_str(" · forced");
                    }
                }
                out.push_str(&detail);
                out.push('\n');
            }
            Entry::Drill { at, record, drill, target, trigger, by, outcome, phase, reason, measures, .. } => {
                let on = record.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
                let how = match outcome {
                    Some(o) => style.outcome(o.as_str()),
                    None => format!("{} ({phase})", style.outcome("running")),
                };
                out.push_str(&format!(
                    "{}  {}  {drill} on {target}{on}: {how}\n",
                    at.as_deref().unwrap_or("?"),
                    style.bold("drill   ")
                ));
                let mut detail = vec![format!("{} by {by}", super::drill::trigger_label(*trigger))];
                let figure = |label: &str, ms: Option<u64>| ms.map(|ms| format!("{label} {}", seconds(ms)));
                detail.extend(figure("took", measures.duration_ms));
                detail.extend(figure("detect", measures.time_to_detect_ms));
                detail.extend(figure("restore", measures.time_to_restore_ms));
                detail.extend(figure("take-over", measures.take_over_ms));
                out.push_str(&format!("    {}\n", detail.join(" · ")));
                if let Some(why) = reason {
                    out.push_str(&format!("    {}\n", super::term::wrap(&format!("reason: {why}"), 76, "      ")));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_or_a_time() {
        assert_eq!(since("2h", 10_000_000).unwrap(), 10_000_000 - 7_200_000);
        assert_eq!(since("2026-11-02", 0).unwrap(), parse_time("2026-11-02T00:00:00Z").unwrap());
        assert!(since("last tuesday", 0).is_err());
    }

    #[test]
    fn entries_render_who_why_and_when() {
        let item = serde_json::json!({ "id": "o-1", "action": { "kind": "freeze", "scope": { "scope": "all" } },
            "reason": "incident 7", "author": "ana", "created_at": 1_000, "expires_at": 3_600_000 });
        let entries = vec![
            Entry::Override {
                at: Some(rfc3339(1_000)),
                at_ms: Some(1_000),
                event: "created".into(),
                by: "ana".into(),
                reason: Some("incident 7".into()),
                item,
            },
            Entry::Plan {
                at: Some(rfc3339(500)),
                at_ms: Some(500),
                record: "app.ops.test.".into(),
                generation: 3,
                epoch: Some(2),
                mode: Some("normal".into()),
                changes: vec![Change { endpoint: "b".into(), from: Some(255), to: None, reason: "b drained".into() }],
            },
        ];
        let text = render(&entries, Style::plain());
        assert!(text.contains("1970-01-01T00:00:01Z  created   freeze all  o-1"), "{text}");
        assert!(text.contains("by ana: \"incident 7\" · until 1970-01-01T01:00:00Z"), "{text}");
        assert!(text.contains("plan      app.ops.test. generation 3, epoch 2"), "{text}");
        assert!(text.contains("b 255 → —: b drained"), "{text}");
        let json = serde_json::to_value(&entries).unwrap();
        assert_eq!(json[0]["kind"], "override");
        assert_eq!(json[1]["kind"], "plan");
        assert_eq!(json[1]["atMs"], 500);
    }

    #[test]
    fn drill_runs_show_their_outcome_who_started_them_and_their_figures() {
        use crate::drill::report::sample_run;
        let aborted = Report {
            reason: Some("endpoint b of app is unhealthy".into()),
            measures: Measures { duration_ms: Some(5_600), time_to_restore_ms: Some(2_700), ..Measures::default() },
            ..sample_run("rehearse-a", 2_000, Some(Outcome::Aborted))
        };
        let entries = vec![Entry::drill(aborted), Entry::drill(sample_run("rehearse-a", 2_000, None))];
        let text = render(&entries, Style::plain());
        assert!(
            text.contains(
                "1970-01-01T00:00:02Z  drill     rehearse-a on app/endpoint/a (app.example.test.): aborted\n"
            ),
            "{text}"
        );
        assert!(text.contains("    scheduled by veer · took 5.6s · restore 2.7s\n"), "{text}");
        assert!(text.contains("    reason: endpoint b of app is unhealthy\n"), "{text}");
        assert!(text.contains("(app.example.test.): running (restoring)\n"), "{text}");
        let json = serde_json::to_value(&entries).unwrap();
        assert_eq!(json[0]["kind"], "drill");
        assert_eq!(json[0]["outcome"], "aborted");
        assert_eq!(json[0]["trigger"], "schedule");
        assert_eq!(json[0]["atMs"], 2_000);
        assert_eq!(json[0]["measures"]["timeToRestoreMs"], 2_700);
        assert_eq!(json[1]["outcome"], serde_json::Value::Null);
        assert_eq!(json[1]["phase"], "restoring");
    }
}

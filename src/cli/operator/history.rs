//! `veer history [RECORD] [--since D] [-o table|json]`: the audit trail, newest
//! first — applied plans (generation, epoch, each change with its reason) and
//! override events (created, deleted, expired: who, why, when, until when).

use super::model::{OverrideView, Time};
use super::term::{Style, now_ms, parse_time, rfc3339};
use super::{AdminClient, Failure, HistoryArgs, Output, block_on, concerns, describe_action, fetch_status, target};
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
}

impl Entry {
    fn at_ms(&self) -> Option<u64> {
        match self {
            Self::Plan { at_ms, .. } | Self::Override { at_ms, .. } => *at_ms,
        }
    }
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
        let plans: Vec<StoredPlan> = parse(&client, client.get("/v1/history", &query).await?)?;
        let events: Vec<StoredEvent> = parse(&client, client.get("/v1/history/overrides", &[]).await?)?;
        let events: Vec<StoredEvent> = events
            .into_iter()
            .filter(|e| {
                record.is_none_or(|r| {
                    serde_json::from_value::<OverrideView>(e.item.clone()).is_ok_and(|o| concerns(&o.action, r))
                })
            })
            .collect();
        Ok((plans, events))
    });
    let (plans, events) = match fetched {
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
}

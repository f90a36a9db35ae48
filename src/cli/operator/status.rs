//! `veer status [RECORD] [-o table|json]`: leadership and drills, then per record
//! the published and desired weights, health per endpoint (n/m vantages), warm-up,
//! overrides, held changes and the last apply — for an 80-column terminal.

use super::model::{EndpointStatus, OverrideView, RecordStatus, Status};
use super::term::{Style, expiry, fit, now_ms, rfc3339, short, wrap};
use super::{AdminClient, Failure, Output, StatusArgs, block_on, describe_action, fetch_status, target};
use crate::drill::api::DrillsSummary;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

/// Fetches and prints the status.
pub fn run(args: &StatusArgs) -> ExitCode {
    let result = block_on(async {
        let client = AdminClient::new(&args.server)?;
        fetch_status(&client).await
    });
    let (mut raw, status) = match result {
        Ok(r) => r,
        Err(f) => return f.exit(),
    };
    let only = match &args.record {
        Some(name) => match target::record(name, &status.records) {
            Ok(r) => Some(r.name.clone()),
            Err(e) => return Failure::from(e).exit(),
        },
        None => None,
    };
    let mut stdout = std::io::stdout().lock();
    match args.output {
        Output::Json => {
            if let (Some(name), Some(records)) = (&only, raw.get_mut("records").and_then(|r| r.as_array_mut())) {
                records.retain(|r| r.get("name").and_then(|n| n.as_str()) == Some(name.as_str()));
            }
            let _ = writeln!(stdout, "{raw:#}");
        }
        Output::Table => {
            let _ = write!(stdout, "{}", render(&status, only.as_deref(), Style::for_stdout(), now_ms()));
        }
    }
    ExitCode::SUCCESS
}

/// The whole table (one record when `only` names it).
pub fn render(status: &Status, only: Option<&str>, style: Style, now: u64) -> String {
    let mut out = String::new();
    header(&mut out, status, style, now);
    drills(&mut out, &status.drills, style);
    let shown: Vec<&RecordStatus> = status.records.iter().filter(|r| only.is_none_or(|n| r.name == n)).collect();
    if shown.is_empty() && only.is_none() {
        let _ = writeln!(out, "\n{}", style.dim("no records reported yet"));
    }
    for record in shown {
        out.push('\n');
        render_record(&mut out, record, style, now);
    }
    if only.is_none() {
        let elsewhere: Vec<&OverrideView> = status
            .overrides
            .iter()
            .filter(|o| !status.records.iter().any(|r| r.overrides.iter().any(|ro| ro.id == o.id)))
            .collect();
        if !elsewhere.is_empty() {
            let _ = writeln!(out, "\n{}", style.bold("other overrides"));
            for o in elsewhere {
                override_lines(&mut out, o, style, now);
            }
        }
    }
    out
}

fn header(out: &mut String, status: &Status, style: Style, now: u64) {
    let role = status.role.as_deref().unwrap_or("unknown role");
    let mut line = format!("replica {} · {}", style.bold(&status.replica), role);
    if let Some(leader) = &status.leader {
        let who = leader.identity.as_deref().unwrap_or("?");
        match (role, leader.epoch) {
            ("leader", Some(epoch)) => line.push_str(&format!(" (epoch {epoch})")),
            (_, epoch) => {
                line.push_str(&format!(" · leader {who}"));
                if let Some(epoch) = epoch {
                    line.push_str(&format!(" (epoch {epoch})"));
                }
            }
        }
    } else if role != "leader" {
        line.push_str(" · leader unknown");
    }
    let _ = writeln!(out, "{line}");
    let mut facts = Vec::new();
    if let Some(rounds) = status.rounds {
        facts.push(format!("{rounds} rounds"));
    }
    if let Some(writes) = status.writes {
        facts.push(format!("{writes} writes"));
    }
    if let Some(at) = status.generated_at {
        facts.push(format!("as of {}", rfc3339(at.0)));
    }
    if let Some(url) = status.leader.as_ref().and_then(|l| l.admin_url.as_deref()).filter(|_| role != "leader") {
        facts.push(format!("leader at {url}"));
    }
    if !facts.is_empty() {
        let _ = writeln!(out, "{}", style.dim(&facts.join(" · ")));
    }
    if !status.vantages.is_empty() {
        let list: Vec<String> = status
            .vantages
            .iter()
            .map(|v| {
                let age =
                    v.report_age_ms.map(|ms| format!(" {}", short(Duration::from_millis(ms)))).unwrap_or_default();
                match v.fresh {
                    Some(false) => style.red(&format!("{} stale{age}", v.id)),
                    _ => format!("{}{age}", v.id),
                }
            })
            .collect();
        let _ = writeln!(out, "vantages: {}", list.join(", "));
    }
    if let Some(why) = status.checker.as_ref().and_then(|c| c.impaired.as_deref()) {
        let _ = writeln!(out, "{}", style.red(&format!("checker impaired: {why} (answers held)")));
    }
    if let Some(e) = &status.last_error {
        let _ = writeln!(out, "{}", style.red(&format!("last round failed: {e}")));
    }
    for p in &status.providers_unavailable {
        let text = format!("provider {} unavailable (its records wait, the others go on): {}", p.provider, p.reason);
        let _ = writeln!(out, "{}", style.red(&wrap(&text, 80, "  ")));
    }
    for q in &status.quarantined {
        let text = format!("{} quarantined at {} (retried with backoff): {}", q.record, q.provider, q.reason);
        let _ = writeln!(out, "{}", style.red(&wrap(&text, 80, "  ")));
    }
    if let Some(e) = &status.policy_reload_error {
        let _ = writeln!(out, "{}", style.red("policy reload rejected (the last good policies stay in force):"));
        for l in e.lines() {
            let _ = writeln!(out, "  {l}");
        }
    }
    let _ = now;
}

/// A running drill (highlighted), then the next scheduled drill and the last result.
fn drills(out: &mut String, drills: &DrillsSummary, style: Style) {
    if let Some(run) = &drills.running_drill {
        let text =
            format!("drill running: {} on {}, {} since {}", run.drill, run.target, run.phase, run.started_at.rfc3339());
        let _ = writeln!(out, "{}", style.yellow(&wrap(&text, 80, "  ")));
    }
    if let Some(next) = &drills.next_drill {
        let text = format!("next drill: {} on {} at {}", next.drill, next.target, next.at.rfc3339());
        let _ = writeln!(out, "{}", wrap(&text, 80, "  "));
    }
    if let Some(last) = &drills.last_drill {
        let outcome = last.outcome.map_or("unknown", |o| o.as_str());
        let at = last.finished_at.unwrap_or(last.started_at).rfc3339();
        let why = last.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        let text = wrap(&format!("last drill: {} {outcome} at {at}{why}", last.drill), 80, "  ");
        let painted = text.replacen(&format!(" {outcome} at "), &format!(" {} at ", style.outcome(outcome)), 1);
        let _ = writeln!(out, "{painted}");
    }
}

fn render_record(out: &mut String, r: &RecordStatus, style: Style, now: u64) {
    let mut title = vec![format!("policy {}", r.policy)];
    if let Some(routing) = &r.routing {
        title.push(routing.clone());
    }
    if !r.providers.is_empty() {
        title.push(format!("→ {}", r.providers.join(", ")));
    }
    if let Some(g) = r.generation {
        title.push(match r.epoch {
            Some(e) => format!("generation {g}, epoch {e}"),
            None => format!("generation {g}"),
        });
    }
    let _ = writeln!(out, "{}  {}", style.bold(&r.name), style.dim(&title.join(" · ")));
    if let Some(apply) = &r.last_apply {
        let at = apply.at.map(|t| rfc3339(t.0)).unwrap_or_else(|| "?".into());
        let outcome = apply.outcome.as_deref().unwrap_or("?");
        let painted = if outcome == "ok" { style.green(outcome) } else { style.red(outcome) };
        let detail = apply.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
        let _ = writeln!(out, "  last apply {at} {painted}{detail}");
    }
    if let Some(f) = &r.frozen {
        let scope = f.scope.as_deref().unwrap_or("record");
        let who = f.author.as_deref().unwrap_or("?");
        let why = f.reason.as_deref().unwrap_or("");
        let text = format!("FROZEN ({scope}) by {who}: \"{why}\", {}", expiry(f.expires_at.map(|t| t.0), now));
        let _ = writeln!(out, "  {}", style.yellow(&text));
    }
    let columns = format!("{} {} {} {}", fit("ENDPOINT", 12), fit("POOL", 10), fit("ADDRESS", 15), fit("HEALTH", 9));
    let _ = writeln!(out, "  {columns} WEIGHT DESIRED WARM-UP");
    for e in &r.endpoints {
        endpoint_line(out, e, style);
    }
    for h in &r.held {
        let who = h.endpoint.as_deref().map(|e| format!("{e}: ")).unwrap_or_default();
        let _ = writeln!(out, "  {} {who}{}", style.yellow("held"), h.reason);
    }
    for o in &r.overrides {
        override_lines(out, o, style, now);
    }
}

fn endpoint_line(out: &mut String, e: &EndpointStatus, style: Style) {
    let health = e.health.as_deref().unwrap_or("unknown");
    let votes = match (health, e.vantages_down, e.vantages_fresh) {
        ("up", Some(down), Some(fresh)) => format!(" {}/{fresh}", fresh.saturating_sub(down)),
        ("down", Some(down), Some(fresh)) => format!(" {down}/{fresh}"),
        _ => String::new(),
    };
    // Pad before painting: escapes must not count as width.
    let pad = " ".repeat(9usize.saturating_sub(health.len() + votes.len()));
    let health_cell = format!("{}{votes}{pad}", style.health(health));
    let weight = |w: Option<u64>| w.map_or_else(|| "-".to_string(), |w| w.to_string());
    let (published, desired) = (weight(e.published_weight), weight(e.desired_weight));
    let differs = e.desired_weight.is_some() && e.desired_weight != e.published_weight;
    let desired_cell = if differs { style.yellow(&format!("{desired:>7}")) } else { format!("{desired:>7}") };
    let warmup = e
        .warmup
        .as_ref()
        .map(|w| {
            let stage = match (w.stage, w.stages) {
                (Some(s), Some(n)) => format!("{s}/{n}"),
                _ => String::new(),
            };
            let percent = w.percent.map(|p| format!(" {p:.0}%")).unwrap_or_default();
            let next =
                w.next_stage_in_ms.map(|ms| format!(" {}", short(Duration::from_millis(ms)))).unwrap_or_default();
            format!("{stage}{percent}{next}")
        })
        .unwrap_or_default();
    let line = format!(
        "  {} {} {} {} {published:>6} {desired_cell} {}",
        fit(&e.id, 12),
        fit(&e.pool, 10),
        fit(&e.address, 15),
        health_cell,
        warmup.trim_start()
    );
    let _ = writeln!(out, "{}", line.trim_end());
}

fn override_lines(out: &mut String, o: &OverrideView, style: Style, now: u64) {
    let forced = if o.force { style.red(" [forced]") } else { String::new() };
    let _ =
        writeln!(out, "  {} {}{forced}  {}", style.yellow("override"), describe_action(&o.action), style.dim(&o.id));
    let _ = writeln!(out, "    by {}: \"{}\" · {}", o.author, o.reason, expiry(o.expires_at.map(|t| t.0), now));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        serde_json::from_value(serde_json::json!({
            "replica": "r1", "role": "leader",
            "leader": { "identity": "r1", "epoch": 7, "adminUrl": "http://127.0.0.1:9091" },
            "generatedAt": "2026-11-02T10:30:01Z", "rounds": 123, "writes": 4,
            "lastError": null, "policyReloadError": null, "checker": { "impaired": null },
            "vantages": [ { "id": "r0", "adminUrl": "x", "fresh": true, "reportAgeMs": 420 } ],
            "records": [ {
                "name": "api.example.com.", "policy": "api", "routing": "weighted", "providers": ["local"],
                "frozen": null, "generation": 12, "epoch": 7,
                "lastApply": { "at": "2026-11-02T10:30:00Z", "outcome": "ok", "detail": null },
                "endpoints": [
                    { "id": "use1-a", "pool": "aws-use1", "address": "192.0.2.10", "capacity": 100, "health": "up",
                      "vantagesDown": 0, "vantagesFresh": 2, "desiredWeight": 50, "publishedWeight": 50, "warmup": null },
                    { "id": "use1-b-with-a-very-long-id", "pool": "aws-use1", "address": "2001:db8:ffff:ffff::11",
                      "capacity": 100, "health": "down", "vantagesDown": 2, "vantagesFresh": 2,
                      "desiredWeight": 0, "publishedWeight": 50,
                      "warmup": { "stage": 1, "stages": 4, "percent": 25, "nextStageInMs": 12000 } }
                ],
                "held": [ { "endpoint": "use1-b-with-a-very-long-id", "reason": "velocity: maxRemovePercent 25 reached" } ],
                "overrides": [ { "id": "o-1", "action": { "kind": "drain", "target": { "kind": "pool", "name": "gcp" } },
                                 "reason": "maintenance", "author": "ana", "created_at": 1793615400000u64,
                                 "expires_at": 1793629800000u64 } ]
            } ],
            "overrides": [ { "id": "o-1", "action": { "kind": "drain", "target": { "kind": "pool", "name": "gcp" } },
                             "reason": "maintenance", "author": "ana", "createdAt": "2026-11-02T10:30:00Z",
                             "expiresAt": "2026-11-02T14:30:00Z" } ],
            "drills": {
                "nextDrill": { "drill": "weekly-use1-a", "target": "api/endpoint/use1-a", "at": 1793628000000u64 },
                "lastDrill": { "drill": "weekly-use1-b", "target": "api/endpoint/use1-b", "outcome": "aborted",
                               "startedAt": 1793600000000u64, "finishedAt": 1793600006000u64,
                               "reason": "endpoint use1-a of api is unhealthy, so the drill stopped and restored at once" },
                "runningDrill": null
            }
        }))
        .unwrap()
    }

    #[test]
    fn the_table_fits_80_columns_and_shows_every_part_of_the_contract() {
        let text = render(&sample(), None, Style::plain(), 1_793_615_401_000);
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{} columns: {line:?}\n{text}", line.chars().count());
        }
        for expected in [
            "replica r1 · leader (epoch 7)",
            "123 rounds · 4 writes",
            "api.example.com.  policy api · weighted · → local · generation 12, epoch 7",
            "last apply 2026-11-02T10:30:00Z ok",
            "use1-a       aws-use1   192.0.2.10      up 2/2        50      50",
            "down 2/2",
            "1/4 25% 12s",
            "held use1-b-with-a-very-long-id: velocity",
            "override drain pool/gcp  o-1",
            "by ana: \"maintenance\" · expires in 3h59m",
            "next drill: weekly-use1-a on api/endpoint/use1-a at 2026-11-02T14:00:00Z",
            "last drill: weekly-use1-b aborted at 2026-11-02T06:13:26Z: endpoint use1-a of\n  api is unhealthy",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(!text.contains("other overrides"), "o-1 is shown with its record\n{text}");
        assert!(!text.contains('\x1b'), "no colour without a terminal");
    }

    #[test]
    fn unavailable_providers_and_quarantined_names_are_shown_with_their_reason_within_80_columns() {
        let status: Status = serde_json::from_value(serde_json::json!({
            "replica": "r1", "role": "leader",
            "providersUnavailable": [ { "provider": "bind", "reason": "unavailable: no answer before the round deadline" } ],
            "quarantined": [ { "provider": "route53", "record": "www.example.com.", "reason": "rejected: CNAME exists" } ]
        }))
        .unwrap();
        let text = render(&status, None, Style::plain(), 0);
        let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(joined.contains("provider bind unavailable (its records wait, the others go on):"), "{text}");
        assert!(joined.contains("no answer before the round deadline"), "{text}");
        assert!(joined.contains("www.example.com. quarantined at route53 (retried with backoff):"), "{text}");
        assert!(joined.contains("rejected: CNAME exists"), "{text}");
        assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    }

    #[test]
    fn a_follower_names_its_leader_and_an_unknown_shape_still_renders() {
        let status: Status = serde_json::from_value(serde_json::json!({
            "replica": "r2", "role": "follower", "leader": { "identity": "r0", "epoch": 3, "adminUrl": "http://h:9090" }
        }))
        .unwrap();
        let text = render(&status, None, Style::plain(), 0);
        assert!(text.contains("replica r2 · follower · leader r0 (epoch 3)"), "{text}");
        assert!(text.contains("leader at http://h:9090"), "{text}");
        assert!(text.contains("no records reported yet"), "{text}");
        assert!(!text.contains("drill"), "no drill lines without drills: {text}");
    }

    #[test]
    fn a_running_drill_is_named_with_its_phase() {
        let status: Status = serde_json::from_value(serde_json::json!({
            "replica": "r1", "role": "leader",
            "drills": { "runningDrill": { "drill": "handover", "target": "leader", "startedAt": 1793615400000u64,
                                          "phase": "handing-over" } }
        }))
        .unwrap();
        let text = render(&status, None, Style::plain(), 0);
        assert!(text.contains("drill running: handover on leader, handing-over since 2026-11-02T10:30:00Z"), "{text}");
    }
}

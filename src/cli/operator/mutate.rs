//! The commands that change what is served: `drain`, `pin`, `failover`, `freeze`
//! create an override; `undrain`, `unpin`, `unfreeze` remove the matching ones.
//! Each asks the server for an impact preview first (`dryRun=true`), prints it,
//! stops with exit 3 when a guard refuses, asks the operator to type the name of
//! what changes (unless `--yes`), and only then writes.

use super::model::{Impact, OverrideView, Status};
use super::term::{self, Style, expiry, fit, now_ms};
use super::{
    AdminClient, ChangeArgs, DrainArgs, FailoverArgs, Failure, FreezeArgs, FreezeScopeArgs, Output, PinArgs, REFUSED,
    UndoArgs, UndrainArgs, UnfreezeArgs, UnpinArgs, block_on, concerns, describe_action, fetch_status, target,
};
use crate::planner::{FreezeScope, OverrideAction, TargetKind};
use reqwest::Method;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;

/// A change ready to preview: what to send and how to talk about it.
struct Proposal {
    action: OverrideAction,
    /// "drain pool p of app.ops.test."
    summary: String,
    /// What the operator types to confirm.
    word: String,
}

/// Overrides to remove, found by what they act on.
struct Removal {
    ids: Vec<String>,
    summary: String,
    word: String,
}

/// `veer drain TARGET`.
pub fn drain(args: &DrainArgs) -> ExitCode {
    create("drain", &args.change, |status| {
        let resolved = target::drain_target(&args.target, &status.records)?;
        Ok(Proposal {
            summary: format!("drain {}", resolved.describe()),
            word: resolved.word().to_string(),
            action: OverrideAction::Drain { target: resolved.target },
        })
    })
}

/// `veer pin RECORD ENDPOINT=WEIGHT…`.
pub fn pin(args: &PinArgs) -> ExitCode {
    create("pin", &args.change, |status| {
        let record = target::record(&args.record, &status.records)?;
        let mut weights = BTreeMap::new();
        for pair in &args.weights {
            let Some((id, weight)) = pair.split_once('=') else {
                return Err(Failure::usage(format!("`{pair}` is not ENDPOINT=WEIGHT"), Some("e.g. use1-a=3 use1-b=1")));
            };
            let id = target::endpoint(record, id.trim())?;
            let weight: u32 = weight.trim().parse().map_err(|_| {
                Failure::usage(format!("weight `{weight}` of {id} is not a whole number"), Some("e.g. use1-a=3"))
            })?;
            if weights.insert(id.to_string(), weight).is_some() {
                return Err(Failure::usage(format!("{id} is given twice"), None));
            }
        }
        if weights.values().all(|w| *w == 0) {
            return Err(Failure::usage("a pin needs at least one weight above 0", Some("a record is never emptied")));
        }
        let text: Vec<String> = weights.iter().map(|(e, w)| format!("{e}={w}")).collect();
        Ok(Proposal {
            summary: format!("pin {} to {}", record.name, text.join(" ")),
            word: record.name.clone(),
            action: OverrideAction::Pin { record: record.policy.clone(), weights },
        })
    })
}

/// `veer failover RECORD --to POOL [--now]`.
pub fn failover(args: &FailoverArgs) -> ExitCode {
    create("failover", &args.change, |status| {
        let record = target::record(&args.record, &status.records)?;
        if record.routing.as_deref().is_some_and(|r| r != "failover") {
            return Err(Failure::usage(
                format!(
                    "{} uses `routing: {}`; failover applies to failover records",
                    record.name,
                    record.routing.as_deref().unwrap_or("?")
                ),
                Some("drain the pools you want out of service instead"),
            ));
        }
        let pool = target::pool(record, &args.to)?;
        let how = if args.now { "at once, without warm-up" } else { "through warm-up" };
        Ok(Proposal {
            summary: format!("serve {} from pool {pool} {how}", record.name),
            word: pool.to_string(),
            action: OverrideAction::FailoverToPool {
                record: record.policy.clone(),
                pool: pool.to_string(),
                immediate: args.now,
            },
        })
    })
}

/// `veer freeze [RECORD|--provider P|--all]`.
pub fn freeze(args: &FreezeArgs) -> ExitCode {
    create("freeze", &args.change, |status| {
        let (scope, word, what) = freeze_scope(&args.scope, status)?;
        Ok(Proposal {
            summary: format!("freeze {what}: no automated changes while it lasts"),
            word,
            action: OverrideAction::Freeze { scope },
        })
    })
}

/// `veer undrain TARGET`.
pub fn undrain(args: &UndrainArgs) -> ExitCode {
    remove("undrain", &args.undo, |status, overrides| {
        let resolved = target::drain_target(&args.target, &status.records)?;
        let wanted = &resolved.target;
        let drains = |o: &&OverrideView| {
            matches!(&o.action, OverrideAction::Drain { target: t }
            if t.kind == wanted.kind && t.name == wanted.name
                && t.policy.as_deref().is_none_or(|p| resolved.record.is_named(p)))
        };
        let ids: Vec<String> = overrides.iter().filter(drains).map(|o| o.id.clone()).collect();
        if ids.is_empty() {
            // Drained some other way (its pool, or a broader target)? Say which.
            let covering: Vec<String> = overrides
                .iter()
                .filter(|o| match &o.action {
                    OverrideAction::Drain { target: t } => {
                        concerns(&o.action, resolved.record)
                            && resolved.record.endpoints.iter().any(|e| {
                                let inside = match wanted.kind {
                                    TargetKind::Endpoint => e.id == wanted.name,
                                    TargetKind::Pool => e.pool == wanted.name,
                                };
                                inside && t.covers(&resolved.record.policy, &e.pool, &e.id)
                            })
                    }
                    _ => false,
                })
                .map(|o| format!("{} ({})", describe_action(&o.action), o.id))
                .collect();
            let hint = if covering.is_empty() {
                None
            } else {
                Some(format!("it is drained by {}; undrain that instead", covering.join(", ")))
            };
            return Err(Failure::Usage { message: format!("no active drain of {}", resolved.describe()), hint });
        }
        Ok(Removal { ids, summary: format!("undrain {}", resolved.describe()), word: resolved.word().to_string() })
    })
}

/// `veer unpin RECORD`.
pub fn unpin(args: &UnpinArgs) -> ExitCode {
    remove("unpin", &args.undo, |status, overrides| {
        let record = target::record(&args.record, &status.records)?;
        let ids: Vec<String> = overrides
            .iter()
            .filter(|o| matches!(&o.action, OverrideAction::Pin { record: r, .. } if record.is_named(r)))
            .map(|o| o.id.clone())
            .collect();
        if ids.is_empty() {
            return Err(Failure::usage(format!("{} is not pinned", record.name), None));
        }
        Ok(Removal { ids, summary: format!("unpin {}", record.name), word: record.name.clone() })
    })
}

/// `veer unfreeze [RECORD|--provider P|--all]`.
pub fn unfreeze(args: &UnfreezeArgs) -> ExitCode {
    remove("unfreeze", &args.undo, |status, overrides| {
        let (scope, word, what) = freeze_scope(&args.scope, status)?;
        let record = match &scope {
            FreezeScope::Record { record } => target::record(record, &status.records).ok(),
            _ => None,
        };
        let ids: Vec<String> = overrides
            .iter()
            .filter(|o| match (&o.action, &scope) {
                (OverrideAction::Freeze { scope: FreezeScope::Record { record: r } }, FreezeScope::Record { .. }) => {
                    record.is_some_and(|rec| rec.is_named(r))
                }
                (OverrideAction::Freeze { scope: found }, wanted) => found == wanted,
                _ => false,
            })
            .map(|o| o.id.clone())
            .collect();
        if ids.is_empty() {
            let freezes: Vec<String> = overrides
                .iter()
                .filter(|o| matches!(o.action, OverrideAction::Freeze { .. }))
                .map(|o| describe_action(&o.action))
                .collect();
            let hint = (!freezes.is_empty()).then(|| format!("active: {}", freezes.join(", ")));
            return Err(Failure::Usage { message: format!("no freeze of {what} is active"), hint });
        }
        Ok(Removal { ids, summary: format!("unfreeze {what}"), word })
    })
}

/// The scope a freeze or unfreeze names: exactly one of RECORD, `--provider`, `--all`.
fn freeze_scope(args: &FreezeScopeArgs, status: &Status) -> Result<(FreezeScope, String, String), Failure> {
    match (&args.record, &args.provider, args.all) {
        (Some(name), None, false) => {
            let record = target::record(name, &status.records)?;
            let scope = FreezeScope::Record { record: record.policy.clone() };
            Ok((scope, record.name.clone(), record.name.clone()))
        }
        (None, Some(provider), false) => {
            let provider = target::provider(provider, &status.records)?;
            let what = format!("every record published to {provider}");
            Ok((FreezeScope::Provider { provider: provider.clone() }, provider, what))
        }
        (None, None, true) => Ok((FreezeScope::All, "all".into(), "every record".into())),
        _ => Err(Failure::usage("name exactly one of RECORD, --provider NAME or --all", Some("e.g. veer freeze api"))),
    }
}

/// Who is acting: `--author`/`VEER_AUTHOR`, else the OS user (`USER`, `LOGNAME`,
/// or the name of this process's uid in /etc/passwd).
fn author(given: Option<&str>) -> Result<String, Failure> {
    given
        .map(str::to_string)
        .or_else(|| ["USER", "LOGNAME", "USERNAME"].iter().find_map(|v| std::env::var(v).ok()))
        .or_else(os_user)
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Failure::usage("cannot tell who you are", Some("pass --author NAME or set VEER_AUTHOR")))
}

/// The name of this process's uid, from /etc/passwd.
fn os_user() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let fields: Vec<&str> = l.split(':').collect();
        (fields.len() > 2 && fields[2] == uid).then(|| fields[0].to_string())
    })
}

/// The client for changes: previews need a replica that led a round, so a
/// follower hands over to the leader it names.
async fn change_client(
    client: AdminClient,
    server: &super::ServerArgs,
    status: &Status,
) -> Result<AdminClient, Failure> {
    let leader = status.leader.as_ref().and_then(|l| l.admin_url.as_deref());
    match (status.role.as_deref(), leader) {
        (Some("leader"), _) | (_, None) => Ok(client),
        (_, Some(url)) => {
            eprintln!("veer: {} is a follower; sending the change to the leader at {url}", client.server());
            Ok(AdminClient::new(&super::ServerArgs { server: url.to_string(), ..server.clone() })?)
        }
    }
}

/// Preview → (refusal: exit 3) → confirmation → create.
fn create(
    command: &'static str,
    args: &ChangeArgs,
    propose: impl FnOnce(&Status) -> Result<Proposal, Failure>,
) -> ExitCode {
    let reason = args.reason.as_deref().map(str::trim).unwrap_or("");
    if reason.is_empty() {
        return Failure::usage(
            format!("veer {command} needs --reason: say why, for the audit history"),
            Some("e.g. --reason \"maintenance CHG-1234\""),
        )
        .exit();
    }
    let ttl = args.ttl.trim();
    if ttl == "none" && !args.force {
        return Failure::usage("--ttl none needs --force", Some("give a TTL such as --ttl 8h")).exit();
    }
    if ttl != "none"
        && let Err(e) = crate::policy::duration::parse(ttl)
            .and_then(|d| if d.is_zero() { Err("must be above 0".into()) } else { Ok(d) })
    {
        return Failure::usage(format!("--ttl {ttl}: {e}"), Some("e.g. --ttl 30m, --ttl 4h")).exit();
    }
    let author = match author(args.author.as_deref()) {
        Ok(a) => a,
        Err(f) => return f.exit(),
    };
    let style = Style::for_stdout();
    let previewed = block_on(async {
        let client = AdminClient::new(&args.server)?;
        client.require_token()?;
        let (_, status) = fetch_status(&client).await?;
        let proposal = propose(&status)?;
        let client = change_client(client, &args.server, &status).await?;
        let body = serde_json::json!({
            "action": proposal.action, "reason": reason, "author": author, "ttl": ttl, "force": args.force,
        });
        let dry_run = client.url("/v1/overrides", &[("dryRun", "true")]);
        let preview = client.call(Method::POST, dry_run.clone(), Some(&body), &[]).await?.body;
        // Refused: also ask what it would do if forced, to show the real impact.
        let refused = preview.get("refused").and_then(|r| r.as_bool()).unwrap_or(false);
        let if_forced = if refused {
            let mut forced = body.clone();
            forced["force"] = true.into();
            Some(client.call(Method::POST, dry_run, Some(&forced), &[]).await?.body)
        } else {
            None
        };
        Ok((client, proposal, body, preview, if_forced))
    });
    let (client, proposal, body, preview, if_forced) = match previewed {
        Ok(p) => p,
        Err(f) => return f.exit(),
    };
    let impact_of = |doc: &serde_json::Value| -> Impact {
        doc.get("impact").cloned().and_then(|i| serde_json::from_value(i).ok()).unwrap_or_default()
    };
    let impact = impact_of(&preview);
    let refused = preview.get("refused").and_then(|r| r.as_bool()).unwrap_or(false)
        || (impact.refusal().is_some() && !args.force);
    let expires = preview.get("override").and_then(|o| o.get("expires_at")).and_then(|e| e.as_u64());
    let mut document = serde_json::json!({
        "command": command, "override": preview.get("override"), "impact": preview.get("impact"),
        "refused": refused, "applied": false,
    });
    let shown = match &if_forced {
        Some(forced) => {
            document["impactIfForced"] = forced.get("impact").cloned().unwrap_or_default();
            refused_view(&impact, &impact_of(forced))
        }
        None => impact.clone(),
    };
    // The preview goes where the operator reads it: stdout for tables, stderr beside JSON.
    let text = preview_text(&proposal.summary, &author, reason, expires, &shown, args.force, style);
    show(args.output, &text);
    if refused {
        return refuse(args.output, &document, &shown);
    }
    if !args.yes && !confirmed(&proposal.summary, &proposal.word) {
        return abort(args.output, &document);
    }
    let created =
        block_on(async { Ok(client.call(Method::POST, client.url("/v1/overrides", &[]), Some(&body), &[409]).await?) });
    match created {
        Err(f) => f.exit(),
        Ok(reply) if reply.status == 409 => {
            // The state moved between the preview and now.
            let impact: Impact =
                reply.body.get("impact").cloned().and_then(|i| serde_json::from_value(i).ok()).unwrap_or_default();
            document["refused"] = true.into();
            document["impact"] = reply.body.get("impact").cloned().unwrap_or_default();
            refuse(args.output, &document, &impact)
        }
        Ok(reply) => {
            let id = reply.body.get("override").and_then(|o| o.get("id")).and_then(|i| i.as_str()).unwrap_or("?");
            document["applied"] = true.into();
            document["override"] = reply.body.get("override").cloned().unwrap_or_default();
            match args.output {
                Output::Json => println!("{document:#}"),
                Output::Table => println!(
                    "{} override {id}: {}, {}",
                    style.green("created"),
                    proposal.summary,
                    expiry(expires, now_ms())
                ),
            }
            ExitCode::SUCCESS
        }
    }
}

/// Find → preview the removal → confirmation → delete.
fn remove(
    command: &'static str,
    args: &UndoArgs,
    find: impl FnOnce(&Status, &[OverrideView]) -> Result<Removal, Failure>,
) -> ExitCode {
    let author = match author(args.author.as_deref()) {
        Ok(a) => a,
        Err(f) => return f.exit(),
    };
    let reason = args.reason.as_deref().map(str::trim).filter(|r| !r.is_empty()).map(str::to_string);
    let style = Style::for_stdout();
    let previewed = block_on(async {
        let client = AdminClient::new(&args.server)?;
        client.require_token()?;
        let (_, status) = fetch_status(&client).await?;
        let raw = client.get("/v1/overrides", &[]).await?;
        let overrides: Vec<OverrideView> = serde_json::from_value(raw).map_err(|e| {
            Failure::Client(super::ClientError::BadResponse { server: client.server(), why: format!("overrides: {e}") })
        })?;
        let removal = find(&status, &overrides)?;
        let client = change_client(client, &args.server, &status).await?;
        let path = format!("/v1/overrides/{}", removal.ids.join(","));
        let reply = client.call(Method::DELETE, client.url(&path, &[("dryRun", "true")]), None, &[]).await?;
        let removed: Vec<OverrideView> = overrides.into_iter().filter(|o| removal.ids.contains(&o.id)).collect();
        Ok((client, removal, path, removed, reply.body))
    });
    let (client, removal, path, removed, preview) = match previewed {
        Ok(p) => p,
        Err(f) => return f.exit(),
    };
    let impact: Impact =
        preview.get("impact").cloned().and_then(|i| serde_json::from_value(i).ok()).unwrap_or_default();
    let mut document = serde_json::json!({
        "command": command, "removed": preview.get("removed"), "impact": preview.get("impact"), "applied": false,
    });
    let mut text = format!("{}\n", style.bold(&removal.summary));
    let now = now_ms();
    for o in &removed {
        text.push_str(&format!(
            "  removes {} {}: by {}: \"{}\", {}\n",
            o.id,
            describe_action(&o.action),
            o.author,
            o.reason,
            expiry(o.expires_at.map(|t| t.0), now)
        ));
    }
    text.push_str(&impact_text(&impact, false, style));
    show(args.output, &text);
    if !args.yes && !confirmed(&removal.summary, &removal.word) {
        return abort(args.output, &document);
    }
    let mut query = vec![("author", author.as_str())];
    if let Some(r) = &reason {
        query.push(("reason", r.as_str()));
    }
    let deleted = block_on(async { Ok(client.call(Method::DELETE, client.url(&path, &query), None, &[]).await?) });
    if let Err(f) = deleted {
        return f.exit();
    }
    document["applied"] = true.into();
    match args.output {
        Output::Json => println!("{document:#}"),
        Output::Table => println!("{} {}: {}", style.green("removed"), removal.ids.join(", "), removal.summary),
    }
    ExitCode::SUCCESS
}

fn show(output: Output, text: &str) {
    match output {
        Output::Table => {
            print!("{text}");
            let _ = std::io::stdout().flush();
        }
        Output::Json => eprint!("{text}"),
    }
}

fn confirmed(summary: &str, word: &str) -> bool {
    match term::confirm(&format!("About to {summary}."), word) {
        Ok(true) => true,
        Ok(false) => false,
        Err(e) => {
            super::super::error_line(&format!("cannot read the confirmation: {e}"), Some("pass --yes to skip it"));
            false
        }
    }
}

fn abort(output: Output, document: &serde_json::Value) -> ExitCode {
    if output == Output::Json {
        println!("{document:#}");
    }
    super::super::error_line("not confirmed: nothing was changed", Some("type the name exactly, or pass --yes"));
    ExitCode::from(1)
}

/// What a refused change would do if forced, each record marked with the guard
/// that refuses it: the answers and capacity the operator would be left with.
fn refused_view(refused: &Impact, forced: &Impact) -> Impact {
    let mut records: Vec<super::model::RecordImpact> = forced
        .records
        .iter()
        .map(|f| {
            let refusal = refused.records.iter().find(|r| r.record == f.record).and_then(|r| r.refused_by.clone());
            super::model::RecordImpact { refused_by: refusal, guard_bypassed: None, ..f.clone() }
        })
        .collect();
    for r in &refused.records {
        if !records.iter().any(|f| f.record == r.record) {
            records.push(r.clone());
        }
    }
    Impact { records }
}

/// Exit 3 with the guard's reason and the capacity figures.
fn refuse(output: Output, document: &serde_json::Value, impact: &Impact) -> ExitCode {
    if output == Output::Json {
        println!("{document:#}");
    }
    let message = match impact.refusal() {
        Some(r) => format!(
            "{} ({}: healthy capacity {:.0}% → {:.0}%)",
            r.refused_by.as_deref().unwrap_or("refused by a guard"),
            r.record,
            r.healthy_capacity_percent_before,
            r.healthy_capacity_percent_after
        ),
        None => "refused by a guard".to_string(),
    };
    super::super::error_line(
        &message,
        Some("drain less, or pass --force with --reason to go below the guard; a record is never emptied"),
    );
    ExitCode::from(REFUSED)
}

/// The preview of a new override: what, who, why, until when, and the impact.
fn preview_text(
    summary: &str,
    author: &str,
    reason: &str,
    expires: Option<u64>,
    impact: &Impact,
    force: bool,
    style: Style,
) -> String {
    let forced = if force { style.red(" [--force]") } else { String::new() };
    let mut out = format!("{}{forced}\n", style.bold(summary));
    out.push_str(&format!("  by {author}: \"{reason}\", {}\n", expiry(expires, now_ms())));
    out.push_str(&impact_text(impact, force, style));
    out
}

/// Per record: answers before → after (weight and share of traffic), healthy
/// capacity before → after, and the guard that refuses (or is bypassed).
pub fn impact_text(impact: &Impact, force: bool, style: Style) -> String {
    let mut out = String::new();
    if impact.records.is_empty() {
        out.push_str(&format!("  {}\n", style.dim("no answers change now")));
        return out;
    }
    for r in &impact.records {
        out.push_str(&format!("\n  {}  {}\n", style.bold(&r.record), style.dim(&format!("policy {}", r.policy))));
        out.push_str(&format!(
            "    {} {} {:>14}   {:>14}\n",
            fit("ENDPOINT", 14),
            fit("ADDRESS", 16),
            "BEFORE",
            "AFTER"
        ));
        let mut ids: Vec<(&str, &str)> = Vec::new();
        for a in r.before.iter().chain(&r.after) {
            if !ids.iter().any(|(id, _)| *id == a.endpoint) {
                ids.push((&a.endpoint, &a.address));
            }
        }
        for (id, address) in ids {
            let cell = |answers: &[super::model::Answer]| {
                answers
                    .iter()
                    .find(|a| a.endpoint == id)
                    .map_or_else(|| "—".to_string(), |a| format!("{} ({:.0}%)", a.weight, a.share * 100.0))
            };
            let (before, after) = (cell(&r.before), cell(&r.after));
            let arrow = if before == after { " " } else { "→" };
            let after_cell = format!("{after:>14}");
            let after_cell = if after == "—" {
                style.red(&after_cell)
            } else if before != after {
                style.yellow(&after_cell)
            } else {
                after_cell
            };
            out.push_str(&format!("    {} {} {before:>14} {arrow} {after_cell}\n", fit(id, 14), fit(address, 16)));
        }
        let capacity = format!(
            "healthy capacity {:.0}% → {:.0}%",
            r.healthy_capacity_percent_before, r.healthy_capacity_percent_after
        );
        out.push_str(&format!("    {capacity}\n"));
        let indent = "      ";
        if let Some(why) = &r.refused_by {
            let text = term::wrap(&format!("REFUSED by guard: {why}"), 76, indent);
            let text = text.replacen("REFUSED by guard:", &style.red("REFUSED by guard:"), 1);
            out.push_str(&format!("    {text}\n"));
        }
        if let Some(why) = &r.guard_bypassed {
            let label = if force { "guard bypassed (--force):" } else { "guard:" };
            let text = term::wrap(&format!("{label} {why}"), 76, indent);
            out.push_str(&format!("    {}\n", text.replacen(label, &style.yellow(label), 1)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preview_shows_answers_before_and_after_capacity_and_the_refusing_guard() {
        let impact: Impact = serde_json::from_value(serde_json::json!({ "records": [ {
            "policy": "app", "record": "app.ops.test.",
            "before": [ { "endpoint": "a", "address": "127.0.0.81", "share": 0.5, "weight": 255 },
                        { "endpoint": "b", "address": "127.0.0.82", "share": 0.5, "weight": 255 } ],
            "after":  [ { "endpoint": "a", "address": "127.0.0.81", "share": 1.0, "weight": 255 } ],
            "healthy_capacity_percent_before": 100.0, "healthy_capacity_percent_after": 50.0,
            "refused_by": "drain o-1 of app/endpoint/b refused by guard: minCapacityPercent 60%", "guard_bypassed": null
        } ] }))
        .unwrap();
        let text = impact_text(&impact, false, Style::plain());
        assert!(text.contains("b              127.0.0.82            255 (50%) →              —"), "{text}");
        assert!(text.contains("a              127.0.0.81            255 (50%) →     255 (100%)"), "{text}");
        assert!(text.contains("healthy capacity 100% → 50%"), "{text}");
        assert!(text.contains("REFUSED by guard: drain o-1"), "{text}");
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{line:?}");
        }
    }

    #[test]
    fn the_author_comes_from_the_flag_or_the_environment() {
        assert_eq!(author(Some(" ana ")).unwrap(), "ana");
        assert!(author(Some("  ")).is_err());
    }
}

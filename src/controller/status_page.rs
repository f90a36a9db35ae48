//! `GET /`: the status report of [`super::status`] as one HTML page for people
//! during an incident — leadership, checker impairment, every record with its
//! endpoints (health per vantage, desired against published weights, warm-up),
//! held changes, overrides, the last plans with their reasons, and the drills
//! (the next scheduled one, the last result, a running one highlighted).
//!
//! Self-contained on purpose (inline CSS, a few lines of inline JS, no external
//! assets): it must work from a port-forward on an isolated network. It refreshes
//! itself every [`REFRESH_MS`] by fetching the page again and swapping the main
//! element (scroll position kept; a meta refresh without JS), and says so when
//! the replica stops answering. Every value is HTML-escaped: policy names, reasons
//! and authors are user text.

use super::status::{
    EndpointStatus, LeaderStatus, OverrideView, PlanSummary, RecordStatus, Role, StatusReport, WarmupStatus,
};
use crate::drill::api::DrillsSummary;
use crate::drill::report::Outcome;
use crate::health::{HealthState, ProbeVerdict};
use std::fmt::Write;

/// How often the page refreshes itself.
pub const REFRESH_MS: u64 = 2000;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A duration for people: `850ms`, `12s`, `3m 20s`, `3h 59m`.
fn human(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 => format!("{ms}ms"),
        1..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
    }
}

fn health_name(health: HealthState) -> &'static str {
    match health {
        HealthState::Up => "up",
        HealthState::Down => "down",
        HealthState::Unknown => "unknown",
    }
}

fn verdict_name(verdict: ProbeVerdict) -> &'static str {
    match verdict {
        ProbeVerdict::Up => "up",
        ProbeVerdict::Down => "down",
        ProbeVerdict::Unknown => "unknown",
    }
}

fn percent(value: f64) -> String {
    let value = if value.is_finite() { value.clamp(0.0, 100.0) } else { 0.0 };
    format!("{value:.1}")
}

/// Renders the whole page.
pub fn render(report: &StatusReport) -> String {
    let mut main = String::new();
    header(&mut main, report);
    banners(&mut main, report);
    vantages(&mut main, report);
    drills(&mut main, &report.drills);
    for record in &report.records {
        record_section(&mut main, record);
    }
    if report.records.is_empty() {
        main.push_str("<section class=\"card\"><p class=\"muted\">No policies loaded.</p></section>\n");
    }
    overrides(&mut main, &report.overrides);
    plans(&mut main, &report.recent_plans);
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>veer · {replica} · {role}</title>\n\
         <noscript><meta http-equiv=\"refresh\" content=\"{refresh_s}\"></noscript>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n\
         <main id=\"app\" data-generated-at=\"{generated}\">\n{main}</main>\n\
         <div id=\"stale\" class=\"banner stale\" hidden></div>\n\
         <script>{SCRIPT}</script>\n</body>\n</html>\n",
        replica = escape(&report.replica),
        role = role_name(report.role),
        refresh_s = REFRESH_MS / 1000,
        generated = escape(&report.generated_at),
        SCRIPT = SCRIPT.replace("REFRESH_MS", &REFRESH_MS.to_string()),
    )
}

fn header(out: &mut String, report: &StatusReport) {
    let role = role_name(report.role);
    let _ = write!(
        out,
        "<header>\n<h1>veer <span class=\"replica\">{}</span> <span class=\"badge role-{role}\" id=\"role\">{role}</span></h1>\n",
        escape(&report.replica),
    );
    out.push_str("<div id=\"leader\" class=\"leader\">");
    match &report.leader {
        Some(LeaderStatus { identity, epoch, admin_url }) => {
            let _ = write!(out, "Leader <b class=\"leader-id\">{}</b>", escape(identity));
            match epoch {
                Some(e) => {
                    let _ = write!(out, " · epoch <b class=\"epoch\">{e}</b>");
                }
                None => out.push_str(" · epoch <span class=\"muted\">unknown here</span>"),
            }
            if let Some(url) = admin_url.as_deref().filter(|_| report.role != Role::Leader) {
                let url = escape(url);
                let _ = write!(out, " · <a href=\"{url}/\">{url}</a>");
            }
        }
        None => out.push_str("<span class=\"warn-text\">No leader known: campaigning</span>"),
    }
    let _ = write!(
        out,
        "</div>\n<div class=\"meta\">rounds {} · writes {} · updated <time>{}</time></div>\n</header>\n",
        report.rounds,
        report.writes,
        escape(&report.generated_at)
    );
}

fn banners(out: &mut String, report: &StatusReport) {
    if let Some(why) = &report.checker.impaired {
        let _ = writeln!(
            out,
            "<div class=\"banner danger\" id=\"impaired\"><b>Health checker impaired</b> — automation holds the \
             last known good answers (fail static). {}</div>",
            escape(why)
        );
    }
    for p in &report.providers_unavailable {
        let _ = writeln!(
            out,
            "<div class=\"banner warn\" id=\"provider-unavailable\"><b>Provider {} unavailable</b> — its records \
             keep what they had; every other provider still fails over. {}</div>",
            escape(&p.provider),
            escape(&p.reason)
        );
    }
    for q in &report.quarantined {
        let _ = writeln!(
            out,
            "<div class=\"banner warn\" id=\"quarantined\"><b>{} quarantined at {}</b> — writes retried with \
             backoff. {}</div>",
            escape(&q.record),
            escape(&q.provider),
            escape(&q.reason)
        );
    }
    if let Some(error) = &report.policy_reload_error {
        let _ = writeln!(
            out,
            "<div class=\"banner warn\" id=\"reload-error\"><b>Policy reload rejected</b> — the last good \
             policies stay in force.<pre>{}</pre></div>",
            escape(error)
        );
    }
    if let Some(error) = &report.last_error {
        let _ = writeln!(
            out,
            "<div class=\"banner warn\" id=\"last-error\"><b>Last round failed:</b> {}</div>",
            escape(error)
        );
    }
    if let Some(run) = &report.drills.running_drill {
        let _ = writeln!(
            out,
            "<div class=\"banner drill\" id=\"running-drill\"><b>Drill running:</b> <b>{drill}</b> on {target} — \
             {phase} since <time>{since}</time>. It ends by itself; <code>veer drill abort {drill}</code> stops it \
             at once.</div>",
            drill = escape(&run.drill),
            target = escape(&run.target),
            phase = escape(&run.phase),
            since = run.started_at.rfc3339(),
        );
    }
    if let Some(error) = &report.store_error {
        let _ = writeln!(
            out,
            "<div class=\"banner warn\" id=\"store-error\"><b>Store not readable:</b> {} — overrides, warm-up \
             and history may be missing.</div>",
            escape(error)
        );
    }
}

fn vantages(out: &mut String, report: &StatusReport) {
    out.push_str("<section class=\"vantages\" id=\"vantages\"><span class=\"label\">Vantages</span>");
    if report.vantages.is_empty() {
        out.push_str(" <span class=\"muted\">none reporting</span>");
    }
    for v in &report.vantages {
        let state = if v.fresh { "fresh" } else { "stale" };
        let age = v.report_age_ms.map_or_else(|| "no report".to_string(), |ms| format!("{} ago", human(ms)));
        let _ = write!(
            out,
            " <span class=\"chip {state}\" data-vantage=\"{id}\" title=\"{url}\"><b>{id}</b> {state} · {age}</span>",
            id = escape(&v.id),
            url = escape(v.admin_url.as_deref().unwrap_or("admin URL unknown")),
        );
    }
    out.push_str("</section>\n");
}

/// The next scheduled drill and the last result, in one line (nothing when no
/// drill is scheduled and none has run).
fn drills(out: &mut String, drills: &DrillsSummary) {
    if drills.next_drill.is_none() && drills.last_drill.is_none() {
        return;
    }
    out.push_str("<section class=\"drills\" id=\"drills\"><span class=\"label\">Drills</span>");
    match &drills.next_drill {
        Some(next) => {
            let _ = write!(
                out,
                " <span class=\"chip\" id=\"next-drill\">next <b>{}</b> on {} at <time>{}</time></span>",
                escape(&next.drill),
                escape(&next.target),
                next.at.rfc3339()
            );
        }
        None => out.push_str(" <span class=\"muted\">none scheduled</span>"),
    }
    if let Some(last) = &drills.last_drill {
        let (outcome, class) = match last.outcome {
            Some(Outcome::Ok) => ("ok", "ok"),
            Some(Outcome::Aborted) => ("aborted", "bad"),
            Some(Outcome::Failed) => ("failed", "bad"),
            Some(Outcome::Refused) => ("refused", "warn"),
            None => ("unknown", "unknown"),
        };
        let _ = write!(
            out,
            " <span class=\"chip\" id=\"last-drill\">last <b>{}</b> on {} <span class=\"badge {class}\">{outcome}</span> \
             <time>{}</time>{}</span>",
            escape(&last.drill),
            escape(&last.target),
            last.finished_at.unwrap_or(last.started_at).rfc3339(),
            last.reason.as_deref().map_or_else(String::new, |r| format!(" <span class=\"muted\">{}</span>", escape(r))),
        );
    }
    out.push_str("</section>\n");
}

fn record_section(out: &mut String, record: &RecordStatus) {
    let _ = write!(
        out,
        "<section class=\"card record\" data-record=\"{name}\">\n<h2>{name} <span class=\"muted small\">policy {policy} · \
         {routing} · {providers}</span></h2>\n<div class=\"facts\">",
        name = escape(&record.name),
        policy = escape(&record.policy),
        routing = if record.routing == crate::policy::model::Routing::Weighted { "weighted" } else { "failover" },
        providers = escape(&record.providers.join(", ")),
    );
    match (record.generation, record.epoch) {
        (Some(g), Some(e)) => {
            let _ = write!(out, "<span>generation <b class=\"generation\">{g}</b> · epoch <b>{e}</b></span>");
        }
        (Some(g), None) => {
            let _ = write!(out, "<span>generation <b class=\"generation\">{g}</b></span>");
        }
        _ => out.push_str("<span class=\"muted\">nothing applied yet</span>"),
    }
    if let Some(a) = &record.last_apply {
        let class = if a.outcome == "ok" { "ok" } else { "bad" };
        let _ = write!(
            out,
            " <span>last apply <span class=\"badge {class}\">{}</span> {} <span class=\"muted\">{}</span></span>",
            escape(&a.outcome),
            escape(a.at.as_deref().unwrap_or("")),
            escape(&a.detail)
        );
    }
    if let Some(mode) = record.mode.filter(|m| *m != crate::planner::PlanMode::Normal) {
        let mode = serde_json::to_value(mode).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let _ = write!(out, " <span class=\"badge warn\">mode: {}</span>", escape(&mode));
    }
    out.push_str("</div>\n");
    if let Some(f) = &record.frozen {
        let _ = writeln!(
            out,
            "<div class=\"banner info frozen\"><b>Frozen</b> ({scope}) by <b>{author}</b>: {reason}{until}</div>",
            scope = escape(&f.scope),
            author = escape(&f.author),
            reason = escape(&f.reason),
            until = f.expires_at.as_deref().map_or_else(String::new, |t| format!(" — until {}", escape(t))),
        );
    }
    out.push_str(
        "<table class=\"endpoints\">\n<thead><tr><th>Endpoint</th><th>Pool</th><th class=\"num\">Capacity</th>\
         <th>Health</th><th>Per vantage</th><th>Weight: desired / published</th><th>Warm-up</th></tr></thead>\n<tbody>\n",
    );
    for e in &record.endpoints {
        endpoint_row(out, e);
    }
    out.push_str("</tbody>\n</table>\n");
    if !record.held.is_empty() {
        out.push_str("<h3>Held changes</h3>\n<ul class=\"held\">\n");
        for h in &record.held {
            let cause =
                serde_json::to_value(h.cause).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            let _ = writeln!(
                out,
                "<li><span class=\"badge warn\">{}</span> <b>{}</b> {}</li>",
                escape(&cause),
                escape(h.endpoint.as_deref().unwrap_or("record")),
                escape(&h.reason)
            );
        }
        out.push_str("</ul>\n");
    }
    if !record.overrides.is_empty() {
        out.push_str("<h3>Overrides on this record</h3>\n<ul class=\"record-overrides\">\n");
        for o in &record.overrides {
            let _ = writeln!(
                out,
                "<li><b>{}</b> — {} <span class=\"muted\">by {}{}</span></li>",
                escape(&o.summary),
                escape(&o.reason),
                escape(&o.author),
                expiry(o)
            );
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
}

fn endpoint_row(out: &mut String, e: &EndpointStatus) {
    let health = health_name(e.health);
    let _ = write!(
        out,
        "<tr class=\"endpoint health-{health}\" data-endpoint=\"{id}\" data-health=\"{health}\">\
         <td><b class=\"endpoint-id\">{id}</b><div class=\"muted small\">{address}</div></td>\
         <td>{pool}</td><td class=\"num\">{capacity}</td>\
         <td><span class=\"badge {health}\">{health}</span> <span class=\"muted small\">{down}/{fresh} vantages down</span>{failure}</td><td>",
        id = escape(&e.id),
        address = escape(&e.address),
        pool = escape(&e.pool),
        capacity = e.capacity,
        down = e.vantages_down,
        fresh = e.vantages_fresh,
        failure = e
            .last_failure
            .as_deref()
            .map_or_else(String::new, |f| format!("<div class=\"muted small failure\">{}</div>", escape(f))),
    );
    for (vantage, verdict) in &e.per_vantage {
        let verdict = verdict_name(*verdict);
        let _ = write!(
            out,
            "<span class=\"mark {verdict}\" data-vantage=\"{v}\" title=\"{v}: {verdict}\">{v}</span> ",
            v = escape(vantage)
        );
    }
    out.push_str("</td><td class=\"weights\">");
    weights(out, e);
    out.push_str("</td><td>");
    match &e.warmup {
        Some(w) => warmup(out, w),
        None if e.published_weight.is_some() => out.push_str("<span class=\"muted small\">full</span>"),
        None => out.push_str("<span class=\"muted small\">—</span>"),
    }
    out.push_str("</td></tr>\n");
}

fn weights(out: &mut String, e: &EndpointStatus) {
    let text = |w: Option<u32>, p: Option<f64>, none: &str| match (w, p) {
        (Some(w), Some(p)) => format!("{w} <span class=\"muted small\">({}%)</span>", percent(p)),
        (Some(w), None) => w.to_string(),
        _ => format!("<span class=\"muted\">{none}</span>"),
    };
    let differs = e.desired_weight.is_some() && e.desired_weight.unwrap_or(0) != e.published_weight.unwrap_or(0);
    let _ = write!(
        out,
        "<div class=\"weight-line{}\"><span class=\"desired\" title=\"desired (this round's plan)\">{}</span> / \
         <span class=\"published\" title=\"published (held by the providers)\">{}</span></div>",
        if differs { " differs" } else { "" },
        text(e.desired_weight, e.desired_percent, "?"),
        text(e.published_weight, e.published_percent, "not published"),
    );
    let _ = write!(
        out,
        "<div class=\"bar\"><div class=\"fill desired-bar\" style=\"width:{}%\"></div></div>\
         <div class=\"bar\"><div class=\"fill published-bar\" style=\"width:{}%\"></div></div>",
        percent(e.desired_percent.unwrap_or(0.0)),
        percent(e.published_percent.unwrap_or(0.0)),
    );
}

fn warmup(out: &mut String, w: &WarmupStatus) {
    let label = if w.stage == 0 {
        format!(
            "waiting for backoff{}",
            w.next_stage_in_ms.map_or_else(String::new, |ms| format!(" · retry in {}", human(ms)))
        )
    } else {
        format!(
            "stage {}/{} · {}%{}",
            w.stage,
            w.stages,
            percent(w.percent),
            w.next_stage_in_ms.map_or_else(String::new, |ms| format!(" · next in {}", human(ms)))
        )
    };
    let _ = write!(
        out,
        "<div class=\"bar warmup\" title=\"{label}\"><div class=\"fill warmup-bar\" style=\"width:{}%\"></div></div>\
         <div class=\"small\">{label}</div>",
        percent(w.percent),
    );
}

fn expiry(o: &OverrideView) -> String {
    match (&o.expires_at, o.expires_in_ms) {
        (Some(at), Some(ms)) => format!(", expires in {} ({})", human(ms), escape(at)),
        _ => ", no expiry".to_string(),
    }
}

fn overrides(out: &mut String, overrides: &[OverrideView]) {
    out.push_str("<section class=\"card\" id=\"overrides\">\n<h2>Active overrides</h2>\n");
    if overrides.is_empty() {
        out.push_str("<p class=\"muted\">None.</p>\n</section>\n");
        return;
    }
    out.push_str(
        "<table>\n<thead><tr><th>Override</th><th>Reason</th><th>Author</th><th>Created</th><th>Expires</th></tr></thead>\n<tbody>\n",
    );
    for o in overrides {
        let _ = writeln!(
            out,
            "<tr class=\"override\" data-override=\"{id}\"><td><b>{summary}</b>{force}<div class=\"muted small\">{id}</div></td>\
             <td class=\"reason\">{reason}</td><td class=\"author\">{author}</td><td>{created}</td><td>{expires}</td></tr>",
            id = escape(&o.id),
            summary = escape(&o.summary),
            force = if o.force { " <span class=\"badge bad\">forced</span>" } else { "" },
            reason = escape(&o.reason),
            author = escape(&o.author),
            created = escape(&o.created_at),
            expires = match (&o.expires_at, o.expires_in_ms) {
                (Some(at), Some(ms)) => format!("in {} <div class=\"muted small\">{}</div>", human(ms), escape(at)),
                _ => "never".to_string(),
            },
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn plans(out: &mut String, plans: &[PlanSummary]) {
    out.push_str("<section class=\"card\" id=\"plans\">\n<h2>Recent plans</h2>\n");
    if plans.is_empty() {
        out.push_str("<p class=\"muted\">No applied plan in the history yet.</p>\n</section>\n");
        return;
    }
    out.push_str(
        "<table>\n<thead><tr><th>Applied</th><th>Record</th><th class=\"num\">Generation</th><th class=\"num\">Epoch</th>\
         <th>Changes</th></tr></thead>\n<tbody>\n",
    );
    let weight = |w: Option<u32>| w.map_or_else(|| "—".to_string(), |w| w.to_string());
    for p in plans {
        let _ = write!(
            out,
            "<tr class=\"plan\"><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td><ul class=\"changes\">",
            escape(p.at.as_deref().unwrap_or("—")),
            escape(&p.record),
            p.generation,
            p.epoch.map_or_else(|| "—".to_string(), |e| e.to_string()),
        );
        for c in &p.changes {
            let _ = write!(
                out,
                "<li><b>{}</b> {} → {}: {}</li>",
                escape(&c.endpoint),
                weight(c.from),
                weight(c.to),
                escape(&c.reason)
            );
        }
        out.push_str("</ul></td></tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

const STYLE: &str = "
:root{--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--bg:#f6f8fa;--card:#fff;--up:#1a7f37;--down:#cf222e;
--unknown:#8c959f;--warn:#9a6700;--info:#0969da}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif}
main{max-width:1240px;margin:0 auto;padding:16px 20px 40px}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:6px 18px;margin-bottom:12px}
h1{font-size:22px;margin:0}h2{font-size:16px;margin:0 0 8px}h3{font-size:13px;margin:12px 0 4px;color:var(--muted)}
.replica{font-weight:400}.leader{font-size:15px}.meta,.muted{color:var(--muted)}.small{font-size:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px;margin:12px 0}
.facts{display:flex;flex-wrap:wrap;gap:6px 16px;margin-bottom:8px}
.badge{display:inline-block;padding:0 7px;border-radius:10px;font-size:12px;line-height:18px;vertical-align:1px;font-weight:600;color:#fff;background:var(--unknown)}
.badge.up,.badge.ok,.role-leader{background:var(--up)}.badge.down,.badge.bad{background:var(--down)}
.badge.warn{background:var(--warn)}.role-follower{background:var(--info)}.role-candidate{background:var(--warn)}
.banner{border-radius:8px;padding:10px 14px;margin:10px 0;border:1px solid}
.banner.danger{background:#ffebe9;border-color:#ff8182;color:#82071e}
.banner.warn{background:#fff8c5;border-color:#d4a72c;color:#4d2d00}
.banner.info{background:#ddf4ff;border-color:#54aeff;color:#0a3069}
.banner.drill{background:#fbefff;border-color:#c297ff;color:#512a97}
.drills{display:flex;flex-wrap:wrap;align-items:center;gap:6px;margin-top:6px}
.banner.stale{position:fixed;left:20px;right:20px;bottom:10px;background:#ffebe9;border-color:#ff8182;color:#82071e}
.banner pre{white-space:pre-wrap;margin:6px 0 0;font-size:12px}
.warn-text{color:var(--warn);font-weight:600}
.vantages{display:flex;flex-wrap:wrap;align-items:center;gap:6px}.label{font-weight:600;margin-right:4px}
.chip{border:1px solid var(--line);border-radius:12px;padding:1px 9px;background:var(--card);font-size:12px}
.chip.fresh{border-color:var(--up)}.chip.stale{border-color:var(--down);color:var(--down)}
table{width:100%;border-collapse:collapse}
th{text-align:left;font-size:12px;color:var(--muted);font-weight:600;border-bottom:1px solid var(--line);padding:4px 6px}
td{border-bottom:1px solid #eaeef2;padding:6px;vertical-align:top}
.num{text-align:right}
tr.health-down td{background:#fff5f5}
.mark{display:inline-block;font-size:11px;padding:0 5px;border-radius:4px;color:#fff;background:var(--unknown)}
.mark.up{background:var(--up)}.mark.down{background:var(--down)}
.bar{height:6px;background:#eaeef2;border-radius:3px;margin:3px 0;overflow:hidden;min-width:120px}
.fill{height:100%}.desired-bar{background:var(--info)}.published-bar{background:#8250df}.warmup-bar{background:var(--warn)}
.weight-line.differs .desired{color:var(--info);font-weight:700}
.failure{color:var(--down)}
ul{margin:0;padding-left:18px}ul.changes{padding-left:14px}
a{color:var(--info)}
";

const SCRIPT: &str = "
(function(){var since=null;
function show(e){if(!since)since=new Date();var s=document.getElementById('stale');
s.textContent='This replica stopped answering at '+since.toLocaleTimeString()+' ('+e.message+'): the page shows its last report.';
s.hidden=false;}
function tick(){fetch(location.pathname+location.search,{cache:'no-store'}).then(function(r){
if(!r.ok)throw new Error('HTTP '+r.status);return r.text();}).then(function(t){
var d=new DOMParser().parseFromString(t,'text/html');var n=d.getElementById('app');
if(!n)throw new Error('unexpected page');document.getElementById('app').replaceWith(n);document.title=d.title;
since=null;document.getElementById('stale').hidden=true;
var b=document.body.dataset;b.refreshes=(+b.refreshes||0)+1;}).catch(show);}
setInterval(tick,REFRESH_MS);})();
";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::status::{
        ChangeStatus, CheckerStatus, FrozenStatus, HeldStatus, LastApplyStatus, VantageStatus,
    };
    use crate::drill::api::{LastDrill, NextDrill, RunningDrill};
    use crate::planner::{FreezeScope, HoldCause, OverrideAction};
    use crate::time::Timestamp;
    use std::collections::BTreeMap;

    const EVIL: &str = "<script>alert('x')</script> & \"quoted\"";

    fn sample() -> StatusReport {
        let endpoint = |id: &str, health: HealthState, warmup: Option<WarmupStatus>| EndpointStatus {
            id: id.into(),
            pool: "east".into(),
            address: "192.0.2.1".into(),
            capacity: 100,
            health,
            vantages_down: u32::from(health == HealthState::Down) * 2,
            vantages_fresh: 2,
            per_vantage: BTreeMap::from([
                ("r0".to_string(), ProbeVerdict::Up),
                ("r1".to_string(), if health == HealthState::Down { ProbeVerdict::Down } else { ProbeVerdict::Up }),
            ]),
            last_failure: (health == HealthState::Down).then(|| "r1: connect refused".into()),
            desired_weight: Some(if health == HealthState::Down { 0 } else { 50 }),
            published_weight: Some(50),
            desired_percent: Some(if health == HealthState::Down { 0.0 } else { 100.0 }),
            published_percent: Some(50.0),
            warmup,
        };
        let freeze = OverrideView {
            id: "o-1".into(),
            action: OverrideAction::Freeze { scope: FreezeScope::All },
            summary: "freeze all".into(),
            reason: EVIL.into(),
            author: "<b>mallory</b>".into(),
            created_at: "2026-11-22T06:00:00Z".into(),
            expires_at: Some("2026-11-22T10:00:00Z".into()),
            expires_in_ms: Some(3 * 3600 * 1000 + 59 * 60 * 1000),
            force: false,
        };
        StatusReport {
            replica: "r1".into(),
            role: Role::Leader,
            leader: Some(LeaderStatus { identity: "r1".into(), epoch: Some(7), admin_url: None }),
            generated_at: "2026-11-22T06:56:39Z".into(),
            rounds: 12,
            writes: 3,
            last_error: None,
            policy_reload_error: Some("app.yaml:9:14: error: <timeout>".into()),
            store_error: None,
            providers_unavailable: vec![crate::controller::status::ProviderUnavailable {
                provider: "bind".into(),
                reason: "unavailable: no answer before the round deadline".into(),
            }],
            quarantined: vec![crate::controller::status::QuarantinedName {
                provider: "local".into(),
                record: "www.example.com.".into(),
                reason: "rejected: <conflicting CNAME>".into(),
            }],
            checker: CheckerStatus { impaired: Some("r1 sees 100% down".into()) },
            vantages: vec![VantageStatus {
                id: "r1".into(),
                admin_url: Some("http://127.0.0.1:9090".into()),
                fresh: true,
                report_age_ms: Some(400),
                report: None,
            }],
            records: vec![RecordStatus {
                name: "api.example.com.".into(),
                policy: "api\"><script>".into(),
                routing: crate::policy::model::Routing::Weighted,
                providers: vec!["local".into()],
                frozen: Some(FrozenStatus {
                    scope: "all".into(),
                    override_id: "o-1".into(),
                    reason: EVIL.into(),
                    author: "alice".into(),
                    expires_at: None,
                }),
                generation: Some(4),
                epoch: Some(7),
                last_apply: Some(LastApplyStatus {
                    at: Some("2026-11-22T06:56:38Z".into()),
                    outcome: "ok".into(),
                    detail: "local: generation 4".into(),
                }),
                mode: Some(crate::planner::PlanMode::Frozen),
                endpoints: vec![
                    endpoint(
                        "use1-a",
                        HealthState::Up,
                        Some(WarmupStatus { stage: 2, stages: 4, percent: 25.0, next_stage_in_ms: Some(12_000) }),
                    ),
                    endpoint("use1-b", HealthState::Down, None),
                ],
                held: vec![HeldStatus {
                    endpoint: Some("use1-b".into()),
                    cause: HoldCause::Freeze,
                    reason: format!("frozen: {EVIL}"),
                    override_id: Some("o-1".into()),
                }],
                overrides: vec![freeze.clone()],
            }],
            overrides: vec![freeze],
            recent_plans: vec![PlanSummary {
                record: "api.example.com.".into(),
                generation: 4,
                epoch: Some(7),
                at: Some("2026-11-22T06:56:38Z".into()),
                changes: vec![ChangeStatus {
                    endpoint: "use1-b".into(),
                    from: Some(50),
                    to: Some(0),
                    reason: "use1-b unhealthy (2/2 vantages)".into(),
                }],
            }],
            drills: DrillsSummary {
                next_drill: Some(NextDrill {
                    drill: "weekly-a".into(),
                    target: "api/endpoint/use1-a".into(),
                    at: Timestamp(1_795_420_800_000),
                }),
                last_drill: Some(LastDrill {
                    drill: "weekly-b".into(),
                    target: "api/endpoint/use1-b".into(),
                    outcome: Some(Outcome::Aborted),
                    started_at: Timestamp(1_795_334_924_000),
                    finished_at: Some(Timestamp(1_795_334_930_000)),
                    reason: Some(format!("endpoint c unhealthy {EVIL}")),
                }),
                running_drill: Some(RunningDrill {
                    drill: "handover".into(),
                    target: "leader".into(),
                    started_at: Timestamp(1_795_334_999_000),
                    phase: "handing-over".into(),
                }),
            },
        }
    }

    #[test]
    fn user_text_is_escaped_everywhere() {
        let html = render(&sample());
        assert!(!html.contains("<script>alert"), "a reason must never become markup:\n{html}");
        assert!(!html.contains("<b>mallory"), "nor an author");
        assert!(!html.contains("api\"><script>"), "nor a policy name");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quoted&quot;"), "{html}");
        assert!(html.contains("&lt;b&gt;mallory&lt;/b&gt;"));
        assert!(html.contains("app.yaml:9:14: error: &lt;timeout&gt;"));
        assert_eq!(html.matches("<script>").count(), 1, "only the page's own refresh script");
    }

    #[test]
    fn the_page_shows_leadership_health_weights_warm_up_overrides_and_plans() {
        let html = render(&sample());
        for expected in [
            "<b class=\"leader-id\">r1</b> · epoch <b class=\"epoch\">7</b>",
            "id=\"impaired\"",
            "data-record=\"api.example.com.\"",
            "data-endpoint=\"use1-a\" data-health=\"up\"",
            "data-endpoint=\"use1-b\" data-health=\"down\"",
            "0/2 vantages down",
            "2/2 vantages down",
            "title=\"r1: down\"",
            "r1: connect refused",
            "<div class=\"fill warmup-bar\" style=\"width:25.0%\">",
            "stage 2/4 · 25.0% · next in 12s",
            "50 <span class=\"muted small\">(100.0%)</span>",
            "<b>Frozen</b> (all)",
            "mode: frozen",
            "<span class=\"badge warn\">freeze</span> <b>use1-b</b>",
            "expires in 3h 59m",
            "<b>use1-b</b> 50 → 0: use1-b unhealthy (2/2 vantages)",
            "Policy reload rejected",
            "<b>Provider bind unavailable</b>",
            "no answer before the round deadline",
            "<b>www.example.com. quarantined at local</b>",
            "rejected: &lt;conflicting CNAME&gt;",
            "id=\"next-drill\">next <b>weekly-a</b> on api/endpoint/use1-a at <time>2026-11-23T08:00:00Z</time>",
            "id=\"last-drill\">last <b>weekly-b</b> on api/endpoint/use1-b <span class=\"badge bad\">aborted</span> \
             <time>2026-11-22T08:08:50Z</time>",
            "<div class=\"banner drill\" id=\"running-drill\"><b>Drill running:</b> <b>handover</b> on leader — \
             handing-over since <time>2026-11-22T08:09:59Z</time>",
        ] {
            assert!(html.contains(expected), "missing {expected:?} in\n{html}");
        }
        assert!(html.contains("setInterval(tick,2000)"), "the page refreshes itself every 2 s");
        assert!(!html.contains("http://") || html.contains("title=\"http://127.0.0.1:9090\""), "no external assets");
    }

    #[test]
    fn without_drills_the_page_has_no_drill_strip_and_no_banner() {
        let html = render(&StatusReport { drills: DrillsSummary::default(), ..sample() });
        assert!(!html.contains("id=\"drills\"") && !html.contains("id=\"running-drill\""), "{html}");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(850), "850ms");
        assert_eq!(human(12_000), "12s");
        assert_eq!(human(200_000), "3m 20s");
        assert_eq!(human(4 * 3600 * 1000), "4h 00m");
    }
}

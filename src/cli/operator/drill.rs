//! `veer drill list | run NAME [--dry-run] | abort NAME | report NAME`: the drills
//! of the admin API (`/v1/drills…`) from the command line. Exit 0 ok, 3 refused
//! by a guard (the preflight), 1 error.
//!
//! An operator command like the others: the same client (`--server`, token,
//! timeouts, one-line errors with hints), author, typed confirmation and colour.
//! A run is previewed by the leader (a follower hands the request over to the
//! leader it names), confirmed by typing the drill's name unless `--yes`, then
//! filed; the command waits until the leader has started it.

use super::term::{Style, columns, rfc3339, seconds};
use super::{
    AdminClient, ClientError, Failure, Output, REFUSED, ServerArgs, author, block_on, change_client, confirmed,
    fetch_status, not_confirmed, show,
};
use crate::drill::report::{Report, Step, TriggerKind};
use crate::policy::duration::format as fmt_duration;
use reqwest::Method;
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `veer drill`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DrillCommand,
    #[command(flatten)]
    server: ServerArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
}

#[derive(Debug, clap::Subcommand)]
enum DrillCommand {
    /// Every drill with its next scheduled run and last result.
    List,
    /// Run a drill now (after its preflight checks); the leader carries it out.
    Run {
        /// The drill's name.
        name: String,
        /// Only run the preflight checks and show what the drill would do.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(short = 'y', long)]
        yes: bool,
        /// Who asks (default: VEER_AUTHOR, else the OS user).
        #[arg(long, env = "VEER_AUTHOR")]
        author: Option<String>,
    },
    /// Abort a running drill: the drain is lifted at once, the target returns through warm-up.
    Abort {
        /// The drill's name.
        name: String,
        /// Who asks (default: VEER_AUTHOR, else the OS user).
        #[arg(long, env = "VEER_AUTHOR")]
        author: Option<String>,
    },
    /// The latest run's report: every step with its time.
    Report {
        /// The drill's name.
        name: String,
    },
}

/// How long `veer drill run` waits for the leader to start the run.
const START_WAIT: Duration = Duration::from_secs(30);

/// Runs `veer drill …`.
pub fn run(args: &Args) -> ExitCode {
    let style = Style::for_stdout();
    let done = match &args.command {
        DrillCommand::List => block_on(list(args, style)),
        DrillCommand::Run { name, dry_run, yes, author } => start(args, name, *dry_run, *yes, author.as_deref()),
        DrillCommand::Abort { name, author } => block_on(abort(args, name, author.as_deref())),
        DrillCommand::Report { name } => block_on(report(args, name, style)),
    };
    done.unwrap_or_else(Failure::exit)
}

/// The path of a drill's endpoint: `/v1/drills/NAME/what`.
fn path(name: &str, what: &str) -> String {
    format!("/v1/drills/{name}/{what}")
}

/// The refusal's reason from a response body.
fn reason(body: &Value) -> &str {
    body["reason"].as_str().or_else(|| body["error"].as_str()).unwrap_or("refused by a preflight check")
}

/// Exit 3: the preflight said no.
fn refused(name: &str, body: &Value) -> ExitCode {
    super::super::error_line(
        &format!("drill `{name}` refused: {}", reason(body)),
        Some("a drill runs only on a calm record: no override, freeze or unhealthy endpoint, guards kept"),
    );
    ExitCode::from(REFUSED)
}

fn when(value: &Value) -> String {
    value.as_u64().map_or_else(|| "-".into(), rfc3339)
}

/// How a run was started, for people.
pub(super) fn trigger_label(kind: TriggerKind) -> &'static str {
    match kind {
        TriggerKind::Schedule => "scheduled",
        TriggerKind::Operator => "on request",
    }
}

async fn list(args: &Args, style: Style) -> Result<ExitCode, Failure> {
    let client = AdminClient::new(&args.server)?;
    let body = client.get("/v1/drills", &[]).await?;
    if args.output == Output::Json {
        println!("{body:#}");
        return Ok(ExitCode::SUCCESS);
    }
    let drills = body.as_array().cloned().unwrap_or_default();
    if drills.is_empty() {
        println!("no drills loaded (add `kind: Drill` documents to the policies)");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 5]> = drills.iter().map(|d| list_row(d, style)).collect();
    print!("{}", columns(["NAME", "TARGET", "SCHEDULE (UTC)", "NEXT RUN", "LAST"], &rows));
    Ok(ExitCode::SUCCESS)
}

/// One drill of `GET /v1/drills` as a row of `veer drill list`.
fn list_row(d: &Value, style: Style) -> [String; 5] {
    let schedule = match d["schedule"].as_object() {
        None => "on request".to_string(),
        Some(s) => {
            let windows: Vec<&str> = s["windows"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let spacing = s["minSpacing"]
                .as_u64()
                .map_or_else(String::new, |ms| format!(", every ≥ {}", fmt_duration(Duration::from_millis(ms))));
            format!("{}{spacing}", windows.join("; "))
        }
    };
    let last = match (&d["running"], &d["last"]) {
        (Value::Object(r), _) => format!("{} ({})", style.outcome("running"), r["phase"].as_str().unwrap_or("")),
        (_, Value::Object(l)) => {
            format!("{} at {}", style.outcome(l["outcome"].as_str().unwrap_or("?")), when(&l["finishedAt"]))
        }
        _ => "never run".into(),
    };
    [
        d["name"].as_str().unwrap_or("").to_string(),
        d["target"].as_str().unwrap_or("").to_string(),
        schedule,
        when(&d["nextRun"]),
        last,
    ]
}

/// `veer drill run NAME`: preview (refusal: exit 3) → confirmation → run → wait
/// until the leader started it.
fn start(args: &Args, name: &str, dry_run: bool, yes: bool, given_author: Option<&str>) -> Result<ExitCode, Failure> {
    let body = serde_json::json!({ "author": author(given_author)? });
    let (client, preview) = block_on(async {
        let client = AdminClient::new(&args.server)?;
        client.require_token()?;
        let (_, status) = fetch_status(&client).await?;
        let client = change_client(client, &args.server, &status).await?;
        let url = client.url(&path(name, "run"), &[("dryRun", "true")]);
        let preview = client.call(Method::POST, url, Some(&body), &[409, 503]).await?;
        Ok((client, preview))
    })?;
    let output = args.output;
    match (preview.status, preview.body["refused"].as_bool()) {
        (200 | 409, Some(true)) => {
            if output == Output::Json {
                println!("{:#}", preview.body);
            }
            return Ok(refused(name, &preview.body));
        }
        (200, _) => {
            let mut text = format!("drill `{name}`: {}\n", preview.body["detail"].as_str().unwrap_or(""));
            if let Some(change) = answers_change(&preview.body["impact"]) {
                text.push_str(&format!("  answers: {change}\n"));
            }
            show(output, &text);
            if dry_run {
                if output == Output::Json {
                    println!("{:#}", preview.body);
                }
                return Ok(ExitCode::SUCCESS);
            }
        }
        // No replica that led a round to preview on; the leader runs the preflight when it serves the request.
        (503, _) if !dry_run => show(output, &format!("drill `{name}`: the leader runs the preflight checks\n")),
        (status, _) => {
            let message = preview.body["error"].as_str().unwrap_or("no preview").to_string();
            return Err(Failure::Client(ClientError::Server { server: client.server(), status, message }));
        }
    }
    if !yes && !confirmed(&format!("run drill `{name}` now"), name) {
        return Ok(not_confirmed(output, &preview.body));
    }
    block_on(async {
        let accepted = client.call(Method::POST, client.url(&path(name, "run"), &[]), Some(&body), &[409]).await?;
        if accepted.status == 409 {
            return Ok(refused(name, &accepted.body));
        }
        wait_for_start(&client, name, &accepted.body["requestedAt"], output).await
    })
}

/// Waits for the leader to serve the request (its report names the request).
async fn wait_for_start(
    client: &AdminClient,
    name: &str,
    requested_at: &Value,
    output: Output,
) -> Result<ExitCode, Failure> {
    let deadline = tokio::time::Instant::now() + START_WAIT;
    loop {
        // 404: no run yet; 503: the store is briefly unreachable.
        let reply = client.call(Method::GET, client.url(&path(name, "report"), &[]), None, &[404, 503]).await?;
        let report = reply.body;
        if reply.status == 200 && &report["trigger"]["requestedAt"] == requested_at {
            if output == Output::Json {
                println!("{report:#}");
            }
            if report["outcome"].as_str() == Some("refused") {
                return Ok(refused(name, &report));
            }
            if output == Output::Table {
                println!("drill `{name}` started; follow it with `veer drill report {name}`");
            }
            return Ok(ExitCode::SUCCESS);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Failure::usage(
                format!("no leader started drill `{name}` within {}s (the request stays queued)", START_WAIT.as_secs()),
                Some("check `veer status` for a leader"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `a 33%, b 33%, c 33% → b 50%, c 50%` from an impact preview.
fn answers_change(impact: &Value) -> Option<String> {
    let side = |answers: &Value| -> Option<String> {
        let list: Vec<String> = answers
            .as_array()?
            .iter()
            .map(|a| {
                format!("{} {:.0}%", a["endpoint"].as_str().unwrap_or("?"), a["share"].as_f64().unwrap_or(0.0) * 100.0)
            })
            .collect();
        Some(list.join(", "))
    };
    Some(format!("{} → {}", side(&impact["before"])?, side(&impact["after"])?))
}

/// `veer drill abort NAME`: no confirmation, an abort only brings the target back.
async fn abort(args: &Args, name: &str, given_author: Option<&str>) -> Result<ExitCode, Failure> {
    let body = serde_json::json!({ "author": author(given_author)? });
    let client = AdminClient::new(&args.server)?;
    client.require_token()?;
    let reply = client.call(Method::POST, client.url(&path(name, "abort"), &[]), Some(&body), &[]).await?;
    match args.output {
        Output::Json => println!("{:#}", reply.body),
        Output::Table => println!("drill `{name}`: abort requested; the leader lifts the drain at its next round"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn report(args: &Args, name: &str, style: Style) -> Result<ExitCode, Failure> {
    let client = AdminClient::new(&args.server)?;
    let body = client.get(&path(name, "report"), &[]).await?;
    if args.output == Output::Json {
        println!("{body:#}");
        return Ok(ExitCode::SUCCESS);
    }
    let report: Report = serde_json::from_value(body).map_err(|e| {
        Failure::Client(ClientError::BadResponse { server: client.server(), why: format!("drill report: {e}") })
    })?;
    print!("{}", render(&report, style));
    Ok(ExitCode::SUCCESS)
}

/// A report as people read it: a header, the figures, then every step.
fn render(r: &Report, style: Style) -> String {
    let on = r.record.as_deref().map(|rec| format!(" on {rec}")).unwrap_or_default();
    let mut out = format!(
        "drill {} ({}{on}), started {} by {} ({})\n",
        r.drill,
        r.target,
        r.started_at.rfc3339(),
        r.trigger.author,
        trigger_label(r.trigger.kind)
    );
    let outcome = r.outcome.map_or("running", |o| o.as_str());
    let mut figures = vec![format!("outcome: {}", style.outcome(outcome))];
    let ms = |label: &str, v: Option<u64>| v.map(|v| format!("{label} {}", seconds(v)));
    figures.extend(ms("duration", r.measures.duration_ms));
    figures.extend(ms("time to detect", r.measures.time_to_detect_ms));
    figures.extend(ms("time to restore", r.measures.time_to_restore_ms));
    figures.extend(ms("take-over", r.measures.take_over_ms));
    out += &figures.join("   ");
    out += "\n";
    if let Some(reason) = &r.reason {
        out += &format!("reason: {reason}\n");
    }
    out += "\n";
    let rows: Vec<[String; 4]> = r
        .steps
        .iter()
        .map(|Step { at, step, detail }| {
            let kind = serde_json::to_value(step).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            let offset = at.since(r.started_at);
            [at.rfc3339(), format!("+{:.1}s", offset.as_secs_f64()), kind, detail.clone()]
        })
        .collect();
    out += &columns(["TIME", "OFFSET", "STEP", "DETAIL"], &rows);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::report::{Measures, Outcome, StepKind, Trigger, sample_run};
    use crate::time::Timestamp;

    #[test]
    fn a_report_shows_its_figures_and_every_step_aligned() {
        let mut report = Report {
            trigger: Trigger { kind: TriggerKind::Operator, author: "ana".into(), requested_at: None },
            measures: Measures { time_to_restore_ms: Some(2_700), ..Measures::default() },
            ..sample_run("rehearse-a", 1_000, None)
        };
        report.step(Timestamp(1_000), StepKind::Preflight, "clear");
        report.step(Timestamp(1_600), StepKind::Drained, "app.example.test. read back without a");
        report.finish(Timestamp(6_600), Outcome::Ok, "restored");
        let text = render(&report, Style::plain());
        assert!(text.starts_with("drill rehearse-a (app/endpoint/a on app.example.test.), started 1970-01-01T00:00:01Z by ana (on request)\n"), "{text}");
        assert!(text.contains("outcome: ok   duration 5.6s   time to restore 2.7s"), "{text}");
        assert!(text.contains("TIME                  OFFSET  STEP       DETAIL\n"), "{text}");
        assert!(
            text.contains("1970-01-01T00:00:01Z  +0.6s   drained    app.example.test. read back without a\n"),
            "{text}"
        );
    }

    #[test]
    fn the_list_shows_the_schedule_the_next_run_and_the_last_result() {
        let drill = serde_json::json!({
            "name": "rehearse-a", "target": "app/endpoint/a",
            "schedule": { "windows": ["mon-fri 10:00-16:00"], "minSpacing": 86_400_000u64 },
            "nextRun": 1_000, "running": null, "last": { "outcome": "aborted", "finishedAt": 2_000 }
        });
        let row = list_row(&drill, Style::plain());
        assert_eq!(row[2], "mon-fri 10:00-16:00, every ≥ 24h");
        assert_eq!(row[3], "1970-01-01T00:00:01Z");
        assert_eq!(row[4], "aborted at 1970-01-01T00:00:02Z");
        let running = serde_json::json!({ "name": "x", "running": { "phase": "holding" } });
        assert_eq!(list_row(&running, Style::plain())[4], "running (holding)");
    }
}

//! `veer drill list | run NAME [--dry-run] | abort NAME | report NAME`: the drills
//! of the admin API (`/v1/drills…`) from the command line. Exit 0 ok, 3 refused
//! by a guard (the preflight), 1 error.
//!
//! Talks to any replica (`--server`, `VEER_SERVER`, default
//! `http://127.0.0.1:9090`); mutations send the bearer token from `VEER_TOKEN` or
//! `--token-file`. The HTTP client below is deliberately minimal (plain HTTP/1.1,
//! JSON); it is to be folded into the operator commands' admin client.

use crate::drill::report::{Report, Step};
use crate::policy::duration::format as fmt_duration;
use crate::time::Timestamp;
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `veer drill`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: DrillCommand,
    /// Admin API of any replica.
    #[arg(long, env = "VEER_SERVER", default_value = "http://127.0.0.1:9090", global = true)]
    server: String,
    /// File holding the bearer token for `run` and `abort` (default: `VEER_TOKEN`).
    #[arg(long, value_name = "FILE", global = true)]
    token_file: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Human tables.
    Table,
    /// JSON as the admin API returns it.
    Json,
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
        #[arg(long)]
        yes: bool,
    },
    /// Abort a running drill: the drain is lifted at once, the target returns through warm-up.
    Abort {
        /// The drill's name.
        name: String,
    },
    /// The latest run's report: every step with its time.
    Report {
        /// The drill's name.
        name: String,
    },
}

/// Exit code 3: refused by a guard.
const REFUSED: u8 = 3;

/// Why a call to the admin API failed.
#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error("only http:// admin URLs are supported, got `{0}`")]
    Url(String),
    #[error("cannot reach the admin API at {url}: {source}")]
    Connect { url: String, source: std::io::Error },
    #[error("admin API at {url}: {message}")]
    Http { url: String, message: String },
    #[error("cannot read the token file {path}: {source}")]
    TokenFile { path: String, source: std::io::Error },
}

/// A minimal admin API client: one connection per call.
struct Client {
    url: String,
    authority: String,
    token: Option<String>,
}

impl Client {
    fn new(server: &str, token_file: Option<&PathBuf>) -> Result<Self, ClientError> {
        let rest = server.strip_prefix("http://").ok_or_else(|| ClientError::Url(server.to_string()))?;
        let authority = rest.split('/').next().unwrap_or_default().to_string();
        if authority.is_empty() {
            return Err(ClientError::Url(server.to_string()));
        }
        let token = match token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|source| ClientError::TokenFile { path: path.display().to_string(), source })?,
            ),
            None => std::env::var("VEER_TOKEN").ok(),
        };
        let token = token.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
        Ok(Self { url: server.trim_end_matches('/').to_string(), authority, token })
    }

    /// One request; the status and the JSON body (`Null` when empty or not JSON).
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value), ClientError> {
        use http_body_util::{BodyExt, Full};
        let http = |e: &dyn std::fmt::Display| ClientError::Http { url: self.url.clone(), message: e.to_string() };
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|source| ClientError::Connect { url: self.url.clone(), source })?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| http(&e))?;
        tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(token) = &self.token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let request = request.body(Full::new(bytes::Bytes::from(bytes))).map_err(|e| http(&e))?;
        let response = sender.send_request(request).await.map_err(|e| http(&e))?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(|e| http(&e))?.to_bytes();
        let json = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).trim().to_string()));
        Ok((status, json))
    }
}

/// The admin API's error text from a response body.
fn error_text(body: &Value) -> String {
    match body {
        Value::Object(map) => map
            .get("error")
            .or_else(|| map.get("reason"))
            .and_then(Value::as_str)
            .map_or_else(|| body.to_string(), str::to_string),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn fail(message: &str, hint: Option<&str>) -> ExitCode {
    super::error_line(message, hint);
    ExitCode::from(1)
}

fn author() -> String {
    ["VEER_AUTHOR", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "operator".into())
}

/// Runs `veer drill …`.
pub fn run(args: &Args) -> ExitCode {
    let client = match Client::new(&args.server, args.token_file.as_ref()) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string(), Some("--server http://HOST:PORT (kubectl port-forward for a cluster)")),
    };
    let Some(runtime) = super::runtime() else { return ExitCode::from(1) };
    let result = runtime.block_on(async {
        match &args.command {
            DrillCommand::List => list(&client, args.output).await,
            DrillCommand::Run { name, dry_run, yes } => start(&client, name, *dry_run, *yes, args.output).await,
            DrillCommand::Abort { name } => abort(&client, name, args.output).await,
            DrillCommand::Report { name } => report(&client, name, args.output).await,
        }
    });
    result.unwrap_or_else(|e| fail(&e.to_string(), Some("is veer running there? set --server or VEER_SERVER")))
}

fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

fn when(value: &Value) -> String {
    value.as_u64().map_or_else(|| "-".into(), |ms| Timestamp(ms).rfc3339())
}

async fn list(client: &Client, output: Output) -> Result<ExitCode, ClientError> {
    let (status, body) = client.call("GET", "/v1/drills", None).await?;
    if status != 200 {
        return Ok(fail(&error_text(&body), None));
    }
    if output == Output::Json {
        print_json(&body);
        return Ok(ExitCode::SUCCESS);
    }
    let drills = body.as_array().cloned().unwrap_or_default();
    if drills.is_empty() {
        println!("no drills loaded (add `kind: Drill` documents to the policies)");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<[String; 5]> = drills
        .iter()
        .map(|d| {
            let schedule = match d["schedule"].as_object() {
                None => "on request".to_string(),
                Some(s) => {
                    let windows: Vec<&str> =
                        s["windows"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                    let spacing = s["minSpacing"].as_u64().map_or_else(String::new, |ms| {
                        format!(", every ≥ {}", fmt_duration(Duration::from_millis(ms)))
                    });
                    format!("{}{spacing}", windows.join("; "))
                }
            };
            let last = match (&d["running"], &d["last"]) {
                (Value::Object(r), _) => format!("running ({})", r["phase"].as_str().unwrap_or("")),
                (_, Value::Object(l)) => {
                    format!("{} at {}", l["outcome"].as_str().unwrap_or("?"), when(&l["finishedAt"]))
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
        })
        .collect();
    print_table(&["NAME", "TARGET", "SCHEDULE (UTC)", "NEXT RUN", "LAST"], &rows);
    Ok(ExitCode::SUCCESS)
}

fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

async fn start(client: &Client, name: &str, dry_run: bool, yes: bool, output: Output) -> Result<ExitCode, ClientError> {
    let body = serde_json::json!({ "author": author() });
    let path = format!("/v1/drills/{name}/run");
    let (status, preview) = client.call("POST", &format!("{path}?dryRun=true"), Some(body.clone())).await?;
    match (status, preview["refused"].as_bool()) {
        (200 | 409, Some(true)) => {
            if output == Output::Json {
                print_json(&preview);
            } else {
                eprintln!("veer: drill `{name}` refused: {}", error_text(&preview));
            }
            return Ok(ExitCode::from(REFUSED));
        }
        (200, _) => {
            if output == Output::Json && dry_run {
                print_json(&preview);
            } else {
                println!("drill `{name}`: {}", preview["detail"].as_str().unwrap_or(""));
                if let Some(change) = answers_change(&preview["impact"]) {
                    println!("  answers: {change}");
                }
            }
            if dry_run {
                return Ok(ExitCode::SUCCESS);
            }
        }
        // A follower cannot preview; the leader runs the preflight when it serves the request.
        (503, _) if !dry_run => println!("drill `{name}`: the leader runs the preflight checks"),
        _ => return Ok(fail(&error_text(&preview), None)),
    }
    if !yes && !confirm(&format!("run drill `{name}` now?")) {
        return Ok(fail("not confirmed", Some("answer y, or pass --yes")));
    }
    let (status, accepted) = client.call("POST", &path, Some(body)).await?;
    match status {
        202 => {}
        409 if accepted["refused"].as_bool() == Some(true) => {
            eprintln!("veer: drill `{name}` refused: {}", error_text(&accepted));
            return Ok(ExitCode::from(REFUSED));
        }
        _ => return Ok(fail(&error_text(&accepted), None)),
    }
    // Wait for the leader to serve the request: its report names the request.
    let requested_at = accepted["requestedAt"].clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, report) = client.call("GET", &format!("/v1/drills/{name}/report"), None).await?;
        if status == 200 && report["trigger"]["requestedAt"] == requested_at {
            if output == Output::Json {
                print_json(&report);
            }
            if report["outcome"].as_str() == Some("refused") {
                if output == Output::Table {
                    eprintln!("veer: drill `{name}` refused: {}", error_text(&report));
                }
                return Ok(ExitCode::from(REFUSED));
            }
            if output == Output::Table {
                println!("drill `{name}` started; follow it with `veer drill report {name}`");
            }
            return Ok(ExitCode::SUCCESS);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(fail(
                &format!("no leader started drill `{name}` within 30s (the request stays queued)"),
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

fn confirm(question: &str) -> bool {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return false;
    }
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

async fn abort(client: &Client, name: &str, output: Output) -> Result<ExitCode, ClientError> {
    let body = serde_json::json!({ "author": author() });
    let (status, response) = client.call("POST", &format!("/v1/drills/{name}/abort"), Some(body)).await?;
    if status != 202 {
        return Ok(fail(&error_text(&response), None));
    }
    match output {
        Output::Json => print_json(&response),
        Output::Table => println!("drill `{name}`: abort requested; the leader lifts the drain at its next round"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn report(client: &Client, name: &str, output: Output) -> Result<ExitCode, ClientError> {
    let (status, body) = client.call("GET", &format!("/v1/drills/{name}/report"), None).await?;
    if status != 200 {
        return Ok(fail(&error_text(&body), None));
    }
    if output == Output::Json {
        print_json(&body);
        return Ok(ExitCode::SUCCESS);
    }
    let report: Report = match serde_json::from_value(body) {
        Ok(r) => r,
        Err(e) => return Ok(fail(&format!("unreadable report: {e}"), None)),
    };
    print!("{}", render(&report));
    Ok(ExitCode::SUCCESS)
}

/// Milliseconds for people: `0.6s`, `42.0s`, `3m05s`.
fn seconds(ms: u64) -> String {
    if ms < 60_000 { format!("{:.1}s", ms as f64 / 1000.0) } else { format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60) }
}

/// A report as people read it: a header, the figures, then every step.
fn render(r: &Report) -> String {
    let on = r.record.as_deref().map(|rec| format!(" on {rec}")).unwrap_or_default();
    let trigger = match r.trigger.kind {
        crate::drill::report::TriggerKind::Schedule => "scheduled",
        crate::drill::report::TriggerKind::Operator => "on request",
    };
    let mut out = format!(
        "drill {} ({}{on}), started {} by {} ({trigger})\n",
        r.drill,
        r.target,
        r.started_at.rfc3339(),
        r.trigger.author
    );
    let outcome = r.outcome.map_or("running", |o| o.as_str());
    let mut figures = vec![format!("outcome: {outcome}")];
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
    let mut widths = [4usize, 6, 4];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    out += &format!(
        "{:<w0$}  {:<w1$}  {:<w2$}  DETAIL\n",
        "TIME",
        "OFFSET",
        "STEP",
        w0 = widths[0],
        w1 = widths[1],
        w2 = widths[2]
    );
    for [time, offset, kind, detail] in rows {
        out += &format!(
            "{time:<w0$}  {offset:<w1$}  {kind:<w2$}  {detail}\n",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
    }
    out
}

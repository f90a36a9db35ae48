//! `veer check [-c veer.yaml] [-o table|json]`: probe every endpoint of every
//! configured policy once, print what each probe saw, exit 0 only when all
//! passed. One round is taken as definitive: `rise`/`fall` do not apply.

use super::operator::term::fit;
use super::{ConfigArg, Output};
use crate::health::probe::{self, ProbeResult, ProbeTarget, tls::TlsConfigs};
use serde::Serialize;
use std::io::Write;
use std::process::ExitCode;

/// Arguments of `veer check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Table)]
    output: Output,
    /// Most probes in flight at once.
    #[arg(long, default_value_t = 256, value_name = "N")]
    concurrency: usize,
}

/// One endpoint's result, as printed with `-o json`.
#[derive(Debug, Serialize)]
struct Row {
    policy: String,
    pool: String,
    endpoint: String,
    address: String,
    probe: &'static str,
    healthy: bool,
    latency_ms: Option<u64>,
    reason: Option<String>,
}

/// Probes and prints; the exit code says whether everything was healthy.
pub fn run(args: &Args) -> ExitCode {
    let Some(config_path) = args.config.resolve("check") else { return ExitCode::from(1) };
    let setup = match crate::controller::load(&config_path) {
        Ok(setup) => setup,
        Err(diagnostics) => return super::report(&diagnostics),
    };
    probe::tls::install_default_provider();
    let mut tls = TlsConfigs::default();
    let targets: Vec<ProbeTarget> = setup.policies.iter().flat_map(|p| probe::targets_for(p, &mut tls)).collect();
    if targets.is_empty() {
        super::error_line("no endpoint to probe", Some("add `policies:` to the controller config"));
        return ExitCode::from(1);
    }
    let Some(runtime) = super::runtime() else { return ExitCode::from(1) };
    let results = runtime.block_on(probe::probe_all(targets, args.concurrency));
    let rows: Vec<Row> = results.iter().map(|(t, r)| row(t, r)).collect();
    // Write errors (a closed pipe, as with `| head`) do not change the verdict.
    let mut stdout = std::io::stdout().lock();
    match args.output {
        Output::Table => {
            let _ = write!(stdout, "{}", table(&rows));
        }
        Output::Json => {
            let healthy = rows.iter().filter(|r| r.healthy).count();
            let doc = serde_json::json!({
                "healthy": healthy,
                "unhealthy": rows.len() - healthy,
                "endpoints": rows,
            });
            let _ = writeln!(stdout, "{doc:#}");
        }
    }
    if rows.iter().all(|r| r.healthy) { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn row(target: &ProbeTarget, result: &ProbeResult) -> Row {
    Row {
        policy: target.key.policy.clone(),
        pool: target.pool.clone(),
        endpoint: target.key.endpoint.clone(),
        address: target.address(),
        probe: target.kind_name(),
        healthy: result.is_success(),
        latency_ms: result.latency_ms(),
        reason: result.reason(),
    }
}

/// Width the table fits in: a plain terminal.
const TABLE_WIDTH: usize = 80;

/// Renders rows as aligned columns within [`TABLE_WIDTH`]: long policy,
/// endpoint and address values are cut with `…` before the reason is.
fn table(rows: &[Row]) -> String {
    let header = ["POLICY", "ENDPOINT", "ADDRESS", "RESULT", "LATENCY", "REASON"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.policy.clone(),
                r.endpoint.clone(),
                r.address.clone(),
                if r.healthy { "up".into() } else { "DOWN".into() },
                r.latency_ms.map_or_else(|| "-".into(), |ms| format!("{ms}ms")),
                r.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let natural = |i: usize| cells.iter().map(|c| c[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0);
    // Caps keep room for the reason; the address cap fits `255.255.255.255:65535`.
    let caps = [14, 14, 21, 6, 7];
    let mut widths = [0usize; 6];
    for i in 0..5 {
        widths[i] = natural(i).min(caps[i]);
    }
    let gaps = 2 * 5;
    widths[5] = TABLE_WIDTH.saturating_sub(widths[..5].iter().sum::<usize>() + gaps).max(header[5].len());
    let mut out = String::new();
    let mut line = |values: [&str; 6]| {
        let mut text = String::new();
        for (i, value) in values.iter().enumerate() {
            let cell = fit(value, widths[i]);
            if i == 5 {
                text.push_str(&cell);
            } else if i == 4 {
                text.push_str(&format!("{cell:>w$}  ", w = widths[i]));
            } else {
                text.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    for c in &cells {
        line([&c[0], &c[1], &c[2], &c[3], &c[4], &c[5]]);
    }
    let healthy = rows.iter().filter(|r| r.healthy).count();
    out.push_str(&format!("{} endpoints: {} up, {} down\n", rows.len(), healthy, rows.len() - healthy));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(endpoint: &str, healthy: bool, reason: Option<&str>) -> Row {
        Row {
            policy: "api".into(),
            pool: "aws-use1".into(),
            endpoint: endpoint.into(),
            address: "192.0.2.10:8080".into(),
            probe: "http",
            healthy,
            latency_ms: Some(3),
            reason: reason.map(String::from),
        }
    }

    #[test]
    fn the_table_fits_in_eighty_columns_even_with_long_values() {
        let mut long = sample("an-endpoint-with-a-very-long-identifier", false, Some(&"tls: ".repeat(40)));
        long.policy = "a-policy-name-that-goes-on-and-on".into();
        long.address = "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535".into();
        let text = table(&[sample("use1-a", true, None), long]);
        for line in text.lines() {
            assert!(line.chars().count() <= TABLE_WIDTH, "{} columns: {line}", line.chars().count());
        }
        assert!(text.contains("an-endpoint-w…"), "{text}");
    }

    #[test]
    fn the_table_shows_result_latency_and_reason_and_a_summary() {
        let text = table(&[sample("use1-a", true, None), sample("use1-b", false, Some("status 503"))]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("POLICY"));
        assert!(lines[1].contains("use1-a") && lines[1].contains(" up ") && lines[1].contains("3ms"));
        assert!(lines[2].contains("DOWN") && lines[2].ends_with("status 503"));
        assert_eq!(lines[3], "2 endpoints: 1 up, 1 down");
    }
}

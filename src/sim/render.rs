//! Printing a [`Run`]: a table for people, JSON (ARCHITECTURE.md §7 schema), and a
//! self-contained SVG line chart of the weights over time.

use super::{Run, Step};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The timeline as a table: every tick where something changed or the held
/// decisions changed, then the verdict.
pub fn table(run: &Run) -> String {
    let mut out = String::new();
    let records: Vec<&str> = {
        let mut seen = Vec::new();
        for s in &run.steps {
            if !seen.contains(&s.record.as_str()) {
                seen.push(s.record.as_str());
            }
        }
        seen
    };
    let _ = writeln!(out, "scenario {} (seed {}), {} record(s)", run.scenario, run.seed, records.len());
    let mut last_held: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for s in &run.steps {
        let held: Vec<String> = s.held.iter().map(|h| h.reason.clone()).collect();
        let held_changed = last_held.get(s.record.as_str()) != Some(&held);
        if s.t > 0.0 && s.decisions.is_empty() && !held_changed {
            continue;
        }
        let weights: Vec<String> = s.weights.iter().map(|(id, w)| format!("{id} {w:.1}")).collect();
        let _ = writeln!(out, "{:>8}  {}  {}", seconds(s.t), s.record, weights.join("  "));
        for d in &s.decisions {
            let _ = writeln!(out, "{:>8}    {:.1}% → {:.1}%  {}", "", d.from, d.to, d.reason);
        }
        if held_changed {
            for h in &held {
                let _ = writeln!(out, "{:>8}    held: {h}", "");
            }
            last_held.insert(s.record.as_str(), held);
        }
    }
    if run.violations.is_empty() {
        let _ = writeln!(out, "invariants I1 I4 I5 I6 I7: ok");
    } else {
        for v in &run.violations {
            let _ = writeln!(out, "VIOLATION {} at {}: {}", v.invariant, seconds(v.t), v.detail);
        }
    }
    out
}

/// The run as one JSON object (ARCHITECTURE.md §7).
pub fn json(run: &Run) -> String {
    serde_json::to_string(run).expect("a run serializes")
}

fn seconds(t: f64) -> String {
    if t.fract() == 0.0 { format!("{}s", t as u64) } else { format!("{t:.3}s") }
}

const PALETTE: [&str; 10] =
    ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/// One chart per record: share of the published weight (%) over time, one line
/// per endpoint, with axes, a legend, and red marks where an invariant broke.
pub fn svg(run: &Run) -> String {
    let mut by_record: Vec<(&str, Vec<&Step>)> = Vec::new();
    for s in &run.steps {
        match by_record.iter_mut().find(|(r, _)| *r == s.record) {
            Some((_, list)) => list.push(s),
            None => by_record.push((s.record.as_str(), vec![s])),
        }
    }
    let (width, chart_height, left, right, top, bottom) = (960.0, 320.0, 60.0, 180.0, 40.0, 40.0);
    let height = chart_height * by_record.len().max(1) as f64;
    // The run's end: the last tick plus one tick.
    let last = run.steps.iter().map(|s| s.t).fold(0.0, f64::max);
    let tick = run.steps.iter().map(|s| s.t).filter(|t| *t > 0.0).fold(f64::INFINITY, f64::min);
    let end = if tick.is_finite() { last + tick } else { last.max(1.0) };
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (index, (record, steps)) in by_record.iter().enumerate() {
        let y0 = index as f64 * chart_height;
        let plot_w = width - left - right;
        let plot_h = chart_height - top - bottom;
        let x = |t: f64| left + t / end * plot_w;
        let y = |p: f64| y0 + top + (1.0 - p / 100.0) * plot_h;
        let _ = writeln!(
            out,
            r#"<text x="{left}" y="{}" font-size="14" font-weight="bold">{} — {} (seed {})</text>"#,
            y0 + 20.0,
            escape(&run.scenario),
            escape(record),
            run.seed
        );
        // Axes, grid and ticks.
        for p in [0.0, 25.0, 50.0, 75.0, 100.0] {
            let _ = writeln!(
                out,
                r##"<line x1="{left}" y1="{yy}" x2="{x2}" y2="{yy}" stroke="#ddd"/><text x="{tx}" y="{ty}" text-anchor="end">{p}%</text>"##,
                yy = y(p),
                x2 = left + plot_w,
                tx = left - 6.0,
                ty = y(p) + 4.0
            );
        }
        for i in 0..=10 {
            let t = end * f64::from(i) / 10.0;
            let _ = writeln!(
                out,
                r##"<line x1="{xx}" y1="{y1}" x2="{xx}" y2="{y2}" stroke="#333"/><text x="{xx}" y="{ty}" text-anchor="middle">{label}</text>"##,
                xx = x(t),
                y1 = y(0.0),
                y2 = y(0.0) + 5.0,
                ty = y(0.0) + 18.0,
                label = seconds(t.round())
            );
        }
        let _ = writeln!(
            out,
            r##"<line x1="{left}" y1="{a}" x2="{left}" y2="{b}" stroke="#333"/><line x1="{left}" y1="{b}" x2="{r}" y2="{b}" stroke="#333"/>"##,
            a = y(100.0),
            b = y(0.0),
            r = left + plot_w
        );
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="middle">time</text><text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">share of weight</text>"#,
            left + plot_w / 2.0,
            y(0.0) + 34.0,
            y(50.0),
            y(50.0)
        );
        // One line per endpoint, with a legend entry.
        let endpoints: Vec<&String> = steps.first().map(|s| s.weights.keys().collect()).unwrap_or_default();
        for (i, id) in endpoints.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let mut points = String::new();
            let mut previous: Option<f64> = None;
            for s in steps {
                let w = s.weights.get(*id).copied().unwrap_or(0.0);
                if let Some(p) = previous
                    && p != w
                {
                    let _ = write!(points, "{:.1},{:.1} ", x(s.t), y(p));
                }
                let _ = write!(points, "{:.1},{:.1} ", x(s.t), y(w));
                previous = Some(w);
            }
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                points.trim_end()
            );
            let ly = y0 + top + 16.0 * i as f64;
            let lx = left + plot_w + 16.0;
            let _ = writeln!(
                out,
                r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
                lx + 20.0,
                lx + 26.0,
                ly + 4.0,
                escape(id)
            );
        }
        for v in run.violations.iter().filter(|v| v.detail.contains(*record)) {
            let _ = writeln!(
                out,
                r#"<line x1="{xx}" y1="{a}" x2="{xx}" y2="{b}" stroke="red" stroke-dasharray="4 3"><title>{} {}</title></line>"#,
                escape(&v.invariant),
                escape(&v.detail),
                xx = x(v.t),
                a = y(100.0),
                b = y(0.0)
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

//! `report.md`: the figures as a table, then how each was measured.

use crate::Report;
use crate::figures::{Figure, Mark, Op};

fn value_text(f: &Figure) -> String {
    let Some(v) = f.value else { return "not measured".into() };
    match f.unit {
        "s" => format!("{v:.2} s"),
        "ms" if v < 1.0 => format!("{v:.3} ms"),
        "ms" => format!("{v:.2} ms"),
        "MB" => format!("{v:.1} MB"),
        "×" => format!("{v:.2}×"),
        unit => format!("{} {unit}", thousands(v)),
    }
}

fn target_text(f: &Figure) -> String {
    let Some(t) = &f.target else { return "—".into() };
    let bound = match f.unit {
        "s" => format!("{:.2} s", t.bound),
        "×" => format!("{}×", t.bound),
        unit => format!("{} {unit}", thousands(t.bound)),
    };
    let op = match t.op {
        Op::AtMost => "≤",
        Op::AtLeast => "≥",
        Op::Below => "<",
        Op::Exactly => "=",
    };
    format!("{op} {bound} ({})", t.text)
}

fn mark_text(mark: Mark) -> &'static str {
    match mark {
        Mark::Pass => "pass",
        Mark::Miss => "**miss**",
        Mark::Info => "—",
        Mark::Missing => "**not measured**",
    }
}

/// `12345.6` → `12 346`; small numbers keep up to one decimal.
pub fn thousands(v: f64) -> String {
    if v.abs() < 100.0 && v.fract() != 0.0 {
        return format!("{v:.1}");
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

fn load_text(l: [f64; 3]) -> String {
    format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])
}

pub fn table(figures: &[Figure]) -> String {
    let mut out = String::from("| figure | value | target | mark | notes |\n|---|---|---|---|---|\n");
    for f in figures {
        out += &format!(
            "| {} | {} | {} | {} | {} |\n",
            f.label,
            value_text(f),
            target_text(f),
            mark_text(f.mark),
            f.note.replace('|', "\\|")
        );
    }
    out
}

pub fn markdown(r: &Report) -> String {
    let count = |m: Mark| r.figures.iter().filter(|f| f.mark == m).count();
    let mut out = format!(
        "# veer benchmark report\n\n\
         Generated {} by `{}` at commit `{}` in {:.0} s.\n\
         Machine: {} CPUs ({}), {:.1} GB memory, Linux {}.\n\n\
         **{} pass, {} miss, {} not measured** ({} figures for context).\n\n",
        r.generated,
        r.command,
        r.commit,
        r.seconds,
        r.machine.nproc,
        r.machine.cpu,
        r.machine.memory_gb,
        r.machine.kernel,
        count(Mark::Pass),
        count(Mark::Miss),
        count(Mark::Missing),
        count(Mark::Info)
    );
    if r.quick {
        out += "> **Quick run**: small trial counts and short windows. The figures are indicative only; \
                the report of record is `scripts/bench report` on an idle machine.\n\n";
    }
    out += &table(&r.figures);
    out += "\nTargets: ARCHITECTURE.md §9, and issue 12 where ARCHITECTURE.md §9 names no number. CPU figures are CPU time \
            (/proc), so other load on the machine inflates them less than wall time.\n\n\
            ## How each figure was measured\n\n\
            Run from the repository root; each row's figures come from that command's `BENCH_JSON` lines \
            (also in `report.json`, with the raw objects).\n\n\
            | step | command | started (UTC) | took | nproc | load avg 1/5/15 min, start → end | exit |\n\
            |---|---|---|---|---|---|---|\n";
    for s in &r.steps {
        out += &format!(
            "| {} | `{}` | {} | {:.0} s | {} | {} → {} | {} |\n",
            s.name,
            s.ran.command,
            s.ran.started,
            s.seconds,
            s.ran.nproc,
            load_text(s.ran.load_start),
            load_text(s.ran.load_end),
            s.exit_code.map_or("killed".to_string(), |c| c.to_string())
        );
    }
    out += "\nReproduce: `scripts/bench report` (about 20 minutes; `--quick` about 4). \
            Logs of each step are in `target/bench/logs/`.\n";
    out
}

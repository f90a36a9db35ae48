//! A figure of the report: its value, its target and the mark, with the step
//! that measured it and the conditions it ran in.

use crate::steps::{Conditions, StepRun};
use serde::Serialize;
use serde_json::Value;

#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Mark {
    Pass,
    Miss,
    /// No target: reported for context.
    Info,
    /// Not measured (the step failed or skipped it).
    Missing,
}

#[derive(Serialize, Clone, Copy, PartialEq, Debug)]
pub enum Op {
    #[serde(rename = "<=")]
    AtMost,
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<")]
    Below,
    #[serde(rename = "==")]
    Exactly,
}

#[derive(Serialize, Clone, Debug)]
pub struct Target {
    pub op: Op,
    pub bound: f64,
    /// Where the target comes from and how it reads.
    pub text: String,
}

impl Target {
    pub fn holds(&self, value: f64) -> bool {
        match self.op {
            Op::AtMost => value <= self.bound,
            Op::AtLeast => value >= self.bound,
            Op::Below => value < self.bound,
            Op::Exactly => value == self.bound,
        }
    }
}

/// One figure of the report, with the step that measured it.
#[derive(Serialize)]
pub struct Figure {
    pub id: String,
    pub label: String,
    pub value: Option<f64>,
    pub unit: &'static str,
    pub target: Option<Target>,
    pub mark: Mark,
    /// Context (trial counts, the other side of a ratio), or why it is missing.
    pub note: String,
    pub step: &'static str,
    #[serde(flatten)]
    pub ran: Conditions,
}

/// Builds figures from one step's output.
pub struct FigureSet<'a> {
    pub run: Option<&'a StepRun>,
    pub out: Vec<Figure>,
}

impl<'a> FigureSet<'a> {
    /// The step's first `BENCH_JSON` object with `bench` = `bench` that `matches`.
    pub fn find(&self, bench: &str, matches: impl Fn(&Value) -> bool) -> Option<&'a Value> {
        self.run?.figures.iter().find(|v| v["bench"] == bench && matches(v))
    }

    /// Why a figure of this step is missing.
    fn why_missing(&self) -> String {
        match self.run {
            None => "the step did not run".into(),
            Some(r) if r.exit_code != Some(0) => {
                format!("`{}` failed (exit {:?}); see {}", r.ran.command, r.exit_code, r.log)
            }
            Some(r) => format!("`{}` printed no such figure; see {}", r.ran.command, r.log),
        }
    }

    pub fn add(&mut self, id: String, label: String, value: Option<f64>, unit: &'static str, target: Option<Target>) {
        let mark = match (value, &target) {
            (None, _) => Mark::Missing,
            (Some(_), None) => Mark::Info,
            (Some(v), Some(t)) if t.holds(v) => Mark::Pass,
            (Some(_), Some(_)) => Mark::Miss,
        };
        let note = if value.is_none() { self.why_missing() } else { String::new() };
        let run = self.run;
        self.out.push(Figure {
            id,
            label,
            value,
            unit,
            target,
            mark,
            note,
            step: run.map_or("", |r| r.name),
            ran: run.map(|r| r.ran.clone()).unwrap_or_default(),
        });
    }

    /// Adds context to the last figure (or replaces the reason it is missing).
    pub fn note(&mut self, text: String) {
        if let Some(f) = self.out.last_mut() {
            f.note = if f.note.is_empty() || f.mark != Mark::Missing { text } else { format!("{text}; {}", f.note) };
        }
    }
}

pub fn at_most(bound: f64, text: impl Into<String>) -> Option<Target> {
    Some(Target { op: Op::AtMost, bound, text: text.into() })
}

pub fn at_least(bound: f64, text: impl Into<String>) -> Option<Target> {
    Some(Target { op: Op::AtLeast, bound, text: text.into() })
}

pub fn below(bound: f64, text: impl Into<String>) -> Option<Target> {
    Some(Target { op: Op::Below, bound, text: text.into() })
}

pub fn exactly(bound: f64, text: impl Into<String>) -> Option<Target> {
    Some(Target { op: Op::Exactly, bound, text: text.into() })
}

pub fn number(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |v, key| v.get(key))?.as_f64()
}

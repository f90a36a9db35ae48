//! Semantic checks of drills (everything the parser cannot see), each finding at
//! the offending node. Targets are checked against the policies loaded with the
//! drills, so a drill of an endpoint that a policy edit removed is refused at
//! load and on reload (I10).

use super::model::{DEFAULT_DURATION, Drill, DrillTarget, MAX_DURATION};
use super::{LoadedDrill, schedule};
use crate::planner::TargetKind;
use crate::policy::Loaded;
use crate::policy::diagnostic::{Diagnostic, Findings};
use crate::policy::duration;
use crate::policy::load::UniqueNames;
use crate::policy::model::FailoverPolicy;
use crate::policy::validate::{check_name, check_percent};
use crate::time::Timestamp;
use std::path::PathBuf;

/// Checks every parsed drill against the policies in `loaded` and adds the drills
/// that resolve to `loaded.drills`.
pub fn check_all(parsed: Vec<(PathBuf, Drill)>, loaded: &mut Loaded) {
    let policies: Vec<&FailoverPolicy> = loaded.policies.iter().map(|p| &p.policy).collect();
    let mut names = UniqueNames::default();
    let mut found = Vec::new();
    for (file, drill) in parsed {
        let mut f = Findings::new(&file, drill.kind.referenced);
        check_drill(&drill, (!policies.is_empty()).then_some(policies.as_slice()), &mut f);
        names.check("drill", &drill.metadata.name, &file, &mut f);
        if policies.is_empty() && drill.spec.target.value.trim() != "leader" {
            f.list.push(
                Diagnostic::error_at(
                    &file,
                    drill.spec.target.referenced,
                    "drill target not checked: no policy was loaded with it (validate it together with the policies)",
                )
                .warning(),
            );
        }
        found.extend(f.list);
        if let Ok(definition) = drill.definition() {
            loaded.drills.push(LoadedDrill { path: file, drill, definition });
        }
    }
    loaded.diagnostics.extend(found);
}

/// Checks one drill; `policies` are the loaded policies when known (targets are
/// checked only then).
pub fn check_drill(d: &Drill, policies: Option<&[&FailoverPolicy]>, f: &mut Findings<'_>) {
    d.check_api_version(f);
    check_name(&d.metadata.name, f);
    let spec = &d.spec;
    let target = match DrillTarget::parse(&spec.target.value, spec.policy.as_ref().map(|p| p.value.as_str())) {
        Ok(t) => Some(t),
        Err(why) => {
            let at = match (&spec.policy, spec.target.value.trim()) {
                (Some(policy), "leader") => policy.referenced,
                _ => spec.target.referenced,
            };
            f.error_at(at, why);
            None
        }
    };
    match (&target, policies) {
        (Some(DrillTarget::Drain { policy, target }), Some(policies)) => {
            match policies.iter().find(|p| p.name() == policy) {
                None => {
                    let known: Vec<String> = policies.iter().map(|p| format!("`{}`", p.name())).collect();
                    let at = spec.policy.as_ref().map_or(spec.target.referenced, |p| p.referenced);
                    f.error_at(at, format!("unknown policy `{policy}` (loaded: {})", known.join(", ")));
                }
                Some(p) => {
                    let exists = match target.kind {
                        TargetKind::Endpoint => p.endpoints().any(|(_, e)| e.id.value == target.name),
                        TargetKind::Pool => p.spec.pools.value.iter().any(|pool| pool.name.value == target.name),
                    };
                    if !exists {
                        let what = if target.kind == TargetKind::Pool { "pool" } else { "endpoint" };
                        f.error(&spec.target, format!("policy `{policy}` has no {what} `{}`", target.name));
                    }
                }
            }
        }
        (Some(DrillTarget::Leader), _) => {
            if let Some(v) = &spec.duration {
                f.error(v, "`duration` does not apply to a leader drill (it ends when another replica leads)");
            }
            if let Some(v) = &spec.max_capacity_percent {
                f.error(v, "`maxCapacityPercent` does not apply to a leader drill (it drains nothing)");
            }
        }
        _ => {}
    }
    if let Some(v) = &spec.duration {
        let d = v.value.get();
        if d.is_zero() {
            f.error(v, "duration must be greater than zero");
        } else if d > MAX_DURATION {
            f.error(
                v,
                format!(
                    "duration {} is longer than a drill may last ({})",
                    duration::format(d),
                    duration::format(MAX_DURATION)
                ),
            );
        }
    }
    check_percent(&spec.max_capacity_percent, "maxCapacityPercent", false, f);
    let Some(schedule) = &spec.schedule else { return };
    if let Some(v) = schedule.min_spacing.as_ref().filter(|v| v.value.get().is_zero()) {
        f.error(v, "minSpacing must be greater than zero");
    }
    let items = &schedule.windows.value.0;
    if items.is_empty() {
        f.error(&schedule.windows, "windows needs at least one window");
        return;
    }
    let mut windows = Vec::new();
    for item in items {
        match item.value.window() {
            Ok(w) => windows.push(w),
            Err(why) => {
                let at = if item.value.days.value.is_empty() {
                    item.value.days.referenced
                } else {
                    item.value.to.referenced
                };
                f.error_at(if at.line() == 0 { schedule.windows.referenced } else { at }, why);
            }
        }
    }
    let length = match target {
        Some(DrillTarget::Leader) => std::time::Duration::ZERO,
        _ => spec.duration.as_ref().map_or(DEFAULT_DURATION, |v| v.value.get()),
    };
    if windows.len() == items.len() && schedule::next_start(&windows, Timestamp(0), length).is_none() {
        f.error(
            &schedule.windows,
            format!("no window is long enough for the drill's duration ({})", duration::format(length)),
        );
    }
}

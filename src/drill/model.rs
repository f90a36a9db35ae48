//! The Drill v1 document (ARCHITECTURE.md §5, §10 `veer drill`): what to rehearse, when,
//! how long, and when to stop.
//!
//! Read with the same rules as policies: flat `deny_unknown_fields` structs,
//! [`Spanned`] values for semantic checks, custom scalars whose parse errors point
//! at the scalar. [`Drill::definition`] turns a validated document into the plain
//! [`Definition`] the runner uses.

use super::schedule::{Days, TimeOfDay, Window};
use crate::planner::{Target, TargetKind};
use crate::policy::duration::PolicyDuration;
use crate::policy::model::Document;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_saphyr::{Location, Spanned};
use std::fmt;
use std::time::Duration;

/// How long the target stays drained when `duration` is not given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(300);
/// Least time between two scheduled starts when `minSpacing` is not given.
pub const DEFAULT_MIN_SPACING: Duration = Duration::from_secs(24 * 3600);
/// Largest share of the record's capacity a drill removes when not given.
pub const DEFAULT_MAX_CAPACITY_PERCENT: f64 = 50.0;
/// The longest drill: a rehearsal, not a maintenance window.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// One rehearsal: drain an endpoint or a pool for a while and bring it back
/// through warm-up, or hand leadership to another replica.
pub type Drill = Document<DrillSpec>;

/// The body of a drill.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DrillSpec {
    /// `ENDPOINT`, `endpoint/ID`, `pool/NAME`, or `leader`.
    pub target: Spanned<String>,
    /// The policy whose endpoint or pool is drained (endpoint ids are unique only
    /// within a policy); not for `leader`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Spanned<String>>,
    /// When it runs by itself; without it, only `veer drill run` starts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
    /// How long the target stays drained once the drain is seen at every provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Spanned<PolicyDuration>>,
    /// Largest share of the record's capacity the drill may remove, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_capacity_percent: Option<Spanned<f64>>,
    /// Conditions that stop the drill and restore at once.
    #[serde(default)]
    pub abort_on: AbortOn,
}

/// Weekly windows and spacing.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// One window (`weekdays 10:00-16:00`) or a list of windows, UTC.
    pub windows: Spanned<WindowList>,
    /// Least time between two scheduled starts (default 24h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_spacing: Option<Spanned<PolicyDuration>>,
}

/// Abort conditions; each is on unless set to `false`. An operator can always
/// abort (`veer drill abort`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AbortOn {
    /// A guard or velocity hold (or the change budget) on the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard_or_velocity_hold: Option<Spanned<bool>>,
    /// Another endpoint of the record turning unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_endpoint_unhealthy: Option<Spanned<bool>>,
    /// The health checker impaired (fail static).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checker_impaired: Option<Spanned<bool>>,
}

/// A list of windows, written as one compact string or a sequence whose items are
/// compact strings or `{days, from, to}` mappings.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowList(pub Vec<Spanned<WindowSpec>>);

/// One window as written.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowSpec {
    /// The days.
    pub days: Spanned<Days>,
    /// Opening time (UTC).
    pub from: Spanned<TimeOfDay>,
    /// Closing time (UTC); crossing midnight when not after `from`.
    pub to: Spanned<TimeOfDay>,
}

impl WindowSpec {
    /// The window, or why it is empty.
    pub fn window(&self) -> Result<Window, String> {
        Window::new(self.days.value, self.from.value, self.to.value)
    }

    fn compact(window: Window) -> Self {
        Self { days: unknown(window.days), from: unknown(window.from), to: unknown(window.to) }
    }
}

/// A value written inside a compact string: no position of its own.
fn unknown<T>(value: T) -> Spanned<T> {
    Spanned::new(value, Location::UNKNOWN, Location::UNKNOWN)
}

/// The field names of a `{days, from, to}` window.
const WINDOW_FIELDS: &[&str] = &["days", "from", "to"];

impl<'de> Deserialize<'de> for WindowSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WindowSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a window such as `weekdays 10:00-16:00` or {days, from, to}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WindowSpec, E> {
                Window::parse(v).map(WindowSpec::compact).map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WindowSpec, A::Error> {
                let (mut days, mut from, mut to) = (None, None, None);
                while let Some(key) = map.next_key::<String>()? {
                    let Some(field) = WINDOW_FIELDS.iter().copied().find(|f| *f == key) else {
                        return Err(de::Error::unknown_field(&key, WINDOW_FIELDS));
                    };
                    match field {
                        "days" if days.is_none() => days = Some(map.next_value()?),
                        "from" if from.is_none() => from = Some(map.next_value()?),
                        "to" if to.is_none() => to = Some(map.next_value()?),
                        _ => return Err(de::Error::duplicate_field(field)),
                    }
                }
                Ok(WindowSpec {
                    days: days.ok_or_else(|| de::Error::missing_field("days"))?,
                    from: from.ok_or_else(|| de::Error::missing_field("from"))?,
                    to: to.ok_or_else(|| de::Error::missing_field("to"))?,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for WindowSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("days", &self.days)?;
        map.serialize_entry("from", &self.from)?;
        map.serialize_entry("to", &self.to)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for WindowList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WindowList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a window such as `weekdays 10:00-16:00`, or a list of windows")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WindowList, E> {
                let window = Window::parse(v).map_err(E::custom)?;
                Ok(WindowList(vec![unknown(WindowSpec::compact(window))]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WindowList, A::Error> {
                let mut list = Vec::new();
                while let Some(item) = seq.next_element()? {
                    list.push(item);
                }
                Ok(WindowList(list))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for WindowList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Days {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Days;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("days such as weekdays, mon-fri or [mon, wed]")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Days, E> {
                Days::parse(v).map_err(E::custom)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Days, A::Error> {
                let mut days = Vec::new();
                while let Some(item) = seq.next_element::<Days>()? {
                    days.extend((0..7).filter(|d| item.contains(*d)));
                }
                Ok(Days::of(&days))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Days {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TimeOfDay;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a UTC time such as \"09:30\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TimeOfDay, E> {
                TimeOfDay::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TimeOfDay, E> {
                Err(E::custom(format!("expected a time such as \"09:30\" (quoted), found {v}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TimeOfDay, E> {
                Err(E::custom(format!("expected a time such as \"09:30\" (quoted), found {v}")))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a drill rehearses, resolved from `target` and `policy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum DrillTarget {
    /// Drain an endpoint or a pool of `policy`, then return it through warm-up.
    Drain {
        /// The policy (one record).
        policy: String,
        /// The endpoint or pool, scoped to `policy`.
        target: Target,
    },
    /// Graceful step-down of the current leader; another replica takes over.
    Leader,
}

impl DrillTarget {
    /// Reads `leader`, `pool/NAME`, `endpoint/ID` or a bare endpoint id (with the
    /// policy from `policy:`), or says why it cannot.
    pub fn parse(target: &str, policy: Option<&str>) -> Result<DrillTarget, String> {
        let text = target.trim();
        if text == "leader" {
            return match policy {
                None => Ok(DrillTarget::Leader),
                Some(_) => Err("a `leader` drill applies to no policy: remove `policy`".into()),
            };
        }
        let parsed: Target = text
            .parse()
            .map_err(|_| format!("invalid target `{text}`: expected ENDPOINT, endpoint/ID, pool/NAME or leader"))?;
        if parsed.policy.is_some() {
            return Err(format!("invalid target `{text}`: name the policy in `policy:`, not in the target"));
        }
        let policy = policy.ok_or_else(|| {
            let kind = if parsed.kind == TargetKind::Pool { "a pool" } else { "an endpoint" };
            format!("a drill of {kind} needs `policy` (endpoint ids are unique only within a policy)")
        })?;
        Ok(DrillTarget::Drain { policy: policy.to_string(), target: Target { policy: Some(policy.into()), ..parsed } })
    }

    /// The policy the drill drains in, if any.
    pub fn policy(&self) -> Option<&str> {
        match self {
            DrillTarget::Drain { policy, .. } => Some(policy),
            DrillTarget::Leader => None,
        }
    }
}

impl fmt::Display for DrillTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DrillTarget::Drain { target, .. } => target.fmt(f),
            DrillTarget::Leader => f.write_str("leader"),
        }
    }
}

/// Which abort conditions are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AbortFlags {
    /// A guard, velocity or change-budget hold on the record.
    pub guard_or_velocity_hold: bool,
    /// Another endpoint of the record unhealthy.
    pub other_endpoint_unhealthy: bool,
    /// The health checker impaired.
    pub checker_impaired: bool,
}

/// When a drill runs by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// Weekly windows, UTC.
    #[serde(serialize_with = "windows_as_text", deserialize_with = "windows_from_text")]
    pub windows: Vec<Window>,
    /// Least time between two scheduled starts.
    #[serde(with = "millis")]
    pub min_spacing: Duration,
}

fn windows_as_text<S: Serializer>(windows: &[Window], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(windows.iter().map(ToString::to_string))
}

fn windows_from_text<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Window>, D::Error> {
    let texts = Vec::<String>::deserialize(d)?;
    texts.iter().map(|t| Window::parse(t).map_err(de::Error::custom)).collect()
}

/// Durations as milliseconds in JSON.
pub(crate) mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// A validated drill, as the runner uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Definition {
    /// `metadata.name`.
    pub name: String,
    /// What is rehearsed.
    pub target: DrillTarget,
    /// When it runs by itself (`None`: only on request).
    pub schedule: Option<Schedule>,
    /// How long the target stays drained.
    #[serde(with = "millis")]
    pub duration: Duration,
    /// Largest share of the record's capacity it may remove, in percent.
    pub max_capacity_percent: f64,
    /// Abort conditions.
    pub abort_on: AbortFlags,
}

impl Drill {
    /// The drill's name.
    pub fn name(&self) -> &str {
        &self.metadata.name.value
    }

    /// The runner's view of a validated drill; `Err` names the first problem
    /// (validation reports them all with positions).
    pub fn definition(&self) -> Result<Definition, String> {
        let spec = &self.spec;
        let target = DrillTarget::parse(&spec.target.value, spec.policy.as_ref().map(|p| p.value.as_str()))?;
        let schedule = match &spec.schedule {
            None => None,
            Some(s) => Some(Schedule {
                windows: s.windows.value.0.iter().map(|w| w.value.window()).collect::<Result<_, _>>()?,
                min_spacing: s.min_spacing.as_ref().map_or(DEFAULT_MIN_SPACING, |d| d.value.get()),
            }),
        };
        let flag = |v: &Option<Spanned<bool>>| v.as_ref().is_none_or(|v| v.value);
        Ok(Definition {
            name: self.name().to_string(),
            target,
            schedule,
            duration: spec.duration.as_ref().map_or(DEFAULT_DURATION, |d| d.value.get()),
            max_capacity_percent: spec.max_capacity_percent.as_ref().map_or(DEFAULT_MAX_CAPACITY_PERCENT, |v| v.value),
            abort_on: AbortFlags {
                guard_or_velocity_hold: flag(&spec.abort_on.guard_or_velocity_hold),
                other_endpoint_unhealthy: flag(&spec.abort_on.other_endpoint_unhealthy),
                checker_impaired: flag(&spec.abort_on.checker_impaired),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::source::{DocumentText, parse_document};
    use std::path::Path;

    fn parse(text: &str) -> Result<Drill, String> {
        parse_document::<Drill>(Path::new("d.yaml"), &DocumentText { text: text.into(), first_line: 1 })
            .map_err(|d| d.to_string())
    }

    const HEAD: &str =
        "apiVersion: veer/v1\nkind: Drill\nmetadata: { name: d }\nspec:\n  target: use1-a\n  policy: api\n";

    #[test]
    fn windows_are_read_in_the_compact_and_the_mapping_form() {
        let drill = parse(&format!(
            "{HEAD}  schedule:\n    windows:\n      - weekdays 10:00-16:00\n      - {{ days: [sat, sun], from: \"22:00\", to: \"02:00\" }}\n    minSpacing: 168h\n"
        ))
        .unwrap();
        let definition = drill.definition().unwrap();
        let schedule = definition.schedule.unwrap();
        assert_eq!(schedule.windows[0].to_string(), "weekdays 10:00-16:00");
        assert_eq!(schedule.windows[1].to_string(), "weekends 22:00-02:00");
        assert_eq!(schedule.min_spacing, Duration::from_secs(168 * 3600));
        let windows = &drill.spec.schedule.as_ref().unwrap().windows.value.0;
        assert_eq!(windows[1].value.to.referenced.line(), 10, "the mapping form keeps positions");

        let one = parse(&format!("{HEAD}  schedule: {{ windows: daily 00:00-24:00 }}\n")).unwrap();
        assert_eq!(one.definition().unwrap().schedule.unwrap().min_spacing, DEFAULT_MIN_SPACING);
    }

    #[test]
    fn bad_windows_are_parse_errors_at_the_scalar() {
        let err = parse(&format!("{HEAD}  schedule:\n    windows: weekdays 10:00-25:00\n")).unwrap_err();
        assert!(err.starts_with("d.yaml:8:14: error: time `25:00` is out of range"), "{err}");
        let err =
            parse(&format!("{HEAD}  schedule:\n    windows: [{{ days: funday, from: \"10:00\", to: \"11:00\" }}]\n"))
                .unwrap_err();
        assert!(err.contains("d.yaml:8:") && err.contains("unknown day `funday`"), "{err}");
        let err =
            parse(&format!("{HEAD}  schedule:\n    windows: [{{ days: mon, from: \"10:00\", until: \"11:00\" }}]\n"))
                .unwrap_err();
        assert!(
            err.contains("d.yaml:8:") && err.contains("unknown field `until`, expected one of days, from, to"),
            "{err}"
        );
    }

    #[test]
    fn defaults_and_targets_resolve() {
        let d = parse(HEAD).unwrap().definition().unwrap();
        assert_eq!(d.duration, DEFAULT_DURATION);
        assert_eq!(d.max_capacity_percent, DEFAULT_MAX_CAPACITY_PERCENT);
        assert!(
            d.abort_on.guard_or_velocity_hold && d.abort_on.other_endpoint_unhealthy && d.abort_on.checker_impaired
        );
        assert_eq!(d.target.to_string(), "api/endpoint/use1-a");
        assert_eq!(DrillTarget::parse("leader", None), Ok(DrillTarget::Leader));
        assert!(DrillTarget::parse("leader", Some("api")).is_err());
        assert!(DrillTarget::parse("pool/east", None).unwrap_err().contains("needs `policy`"));
        assert!(DrillTarget::parse("api/use1-a", Some("api")).unwrap_err().contains("name the policy in `policy:`"));
    }

    #[test]
    fn definitions_round_trip_through_json() {
        let d =
            parse(&format!("{HEAD}  schedule: {{ windows: [\"fri 22:00-02:00\"] }}\n")).unwrap().definition().unwrap();
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["schedule"]["windows"][0], "fri 22:00-02:00");
        assert_eq!(serde_json::from_value::<Definition>(json).unwrap(), d);
    }
}

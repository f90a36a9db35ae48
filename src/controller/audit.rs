//! The audit trail of operator overrides (I8): every override created, deleted or
//! expired is appended to the store's [`Space::Audit`] with who, why and when, so
//! `veer history` can answer "who drained this, and why" after the override is gone.
//!
//! Keys are `<at, zero-padded ms>-<override id>-<event>`: names sort by time, and an
//! expiry recorded twice (two leaders in a hand-over) lands on the same key, so the
//! trail never shows it twice. The trail keeps the [`AUDIT_KEEP`] newest events.

use crate::coord::{CoordError, Coordinator, Entry, Key, Space, Writer};
use crate::planner::Override;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Events kept in the trail; older ones are pruned when a new one is appended.
pub const AUDIT_KEEP: usize = 500;

/// What happened to an override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// An operator created it.
    Created,
    /// An operator deleted it before its expiry.
    Deleted,
    /// Its TTL ran out (recorded by the leader when it removes the entry).
    Expired,
}

impl EventKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Deleted => "deleted",
            Self::Expired => "expired",
        }
    }
}

/// One entry of the trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverrideEvent {
    /// When it happened (for an expiry: the expiry time).
    pub at: Timestamp,
    /// What happened.
    pub event: EventKind,
    /// Who: the override's author when created, the operator who deleted it, `veer` on expiry.
    pub by: String,
    /// Why: the override's reason when created, the deletion's reason if one was given.
    pub reason: Option<String>,
    /// The override as it was.
    #[serde(rename = "override")]
    pub item: Override,
}

impl OverrideEvent {
    /// The event for a newly created override.
    pub fn created(item: &Override) -> Self {
        Self {
            at: item.created_at,
            event: EventKind::Created,
            by: item.author.clone(),
            reason: Some(item.reason.clone()),
            item: item.clone(),
        }
    }

    fn key(&self) -> Key {
        Key::new(Space::Audit, format!("{:020}-{}-{}", self.at.as_millis(), self.item.id, self.event.as_str()))
    }
}

/// Appends `event` and prunes the trail to the [`AUDIT_KEEP`] newest events.
pub async fn append(coordinator: &dyn Coordinator, event: &OverrideEvent) -> Result<(), CoordError> {
    append_keeping(coordinator, event, AUDIT_KEEP).await
}

async fn append_keeping(coordinator: &dyn Coordinator, event: &OverrideEvent, keep: usize) -> Result<(), CoordError> {
    let value = serde_json::to_value(event).expect("override events serialize");
    coordinator.put(&event.key(), &Entry::new(value), Writer::Replica).await?;
    let names: Vec<String> = coordinator.list(Space::Audit, "").await?.into_iter().map(|(name, _)| name).collect();
    let keep = keep.max(1);
    if names.len() > keep {
        for old in &names[..names.len() - keep] {
            coordinator.delete(&Key::new(Space::Audit, old.clone()), Writer::Replica).await?;
        }
    }
    Ok(())
}

/// The trail, newest first; entries that do not parse are skipped.
pub async fn events(coordinator: &dyn Coordinator) -> Result<Vec<OverrideEvent>, CoordError> {
    let mut out: Vec<OverrideEvent> = coordinator
        .list(Space::Audit, "")
        .await?
        .into_iter()
        .filter_map(|(_, entry)| serde_json::from_value(entry.value).ok())
        .collect();
    out.reverse();
    Ok(out)
}

/// Removes the overrides whose TTL ran out by `now` and records each expiry; the
/// leader calls it every round. Returns the ids removed. The planner already
/// ignores expired overrides, so this only tidies the store and writes the trail.
pub async fn expire_overrides(coordinator: &dyn Coordinator, now: Timestamp) -> Result<Vec<String>, CoordError> {
    let mut removed = Vec::new();
    for (name, entry) in coordinator.list(Space::Overrides, "").await? {
        if entry.is_live(now) {
            continue;
        }
        if let Ok(item) = serde_json::from_value::<Override>(entry.value) {
            let at = item.expires_at.or(entry.expires_at).unwrap_or(now);
            let event = OverrideEvent { at, event: EventKind::Expired, by: "veer".into(), reason: None, item };
            append(coordinator, &event).await?;
        }
        coordinator.delete(&Key::new(Space::Overrides, name.clone()), Writer::Replica).await?;
        tracing::info!(id = %name, "override expired");
        removed.push(name);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coord::standalone::StandaloneCoordinator;
    use crate::planner::{FreezeScope, OverrideAction};

    fn freeze(id: &str, created: u64, expires: Option<u64>) -> Override {
        Override {
            id: id.into(),
            action: OverrideAction::Freeze { scope: FreezeScope::All },
            reason: "incident 42".into(),
            author: "ana".into(),
            created_at: Timestamp(created),
            expires_at: expires.map(Timestamp),
            force: expires.is_none(),
        }
    }

    async fn store(o: &Override, coordinator: &dyn Coordinator) {
        let value = serde_json::to_value(o).unwrap();
        let entry = match o.expires_at {
            Some(at) => Entry::expiring(value, at),
            None => Entry::new(value),
        };
        coordinator.put(&Key::new(Space::Overrides, &o.id), &entry, Writer::Replica).await.unwrap();
    }

    #[tokio::test]
    async fn expired_overrides_are_removed_once_and_their_expiry_is_in_the_trail_with_author_and_reason() {
        let dir = tempfile::tempdir().unwrap();
        let coordinator = StandaloneCoordinator::open(dir.path().join("s.json"), "r1").unwrap();
        let (short, forever) = (freeze("o-short", 1_000, Some(5_000)), freeze("o-forever", 1_000, None));
        for o in [&short, &forever] {
            store(o, &coordinator).await;
            append(&coordinator, &OverrideEvent::created(o)).await.unwrap();
        }
        assert!(expire_overrides(&coordinator, Timestamp(4_999)).await.unwrap().is_empty(), "not yet");
        assert_eq!(expire_overrides(&coordinator, Timestamp(5_000)).await.unwrap(), ["o-short"]);
        assert_eq!(expire_overrides(&coordinator, Timestamp(9_000)).await.unwrap(), Vec::<String>::new());
        let trail = events(&coordinator).await.unwrap();
        let kinds: Vec<(&str, EventKind)> = trail.iter().map(|e| (e.item.id.as_str(), e.event)).collect();
        assert_eq!(
            kinds,
            [("o-short", EventKind::Expired), ("o-short", EventKind::Created), ("o-forever", EventKind::Created)],
            "newest first"
        );
        let expired = &trail[0];
        assert_eq!(
            (expired.at, expired.item.author.as_str(), expired.item.reason.as_str()),
            (Timestamp(5_000), "ana", "incident 42")
        );
        let live = coordinator.list(Space::Overrides, "").await.unwrap();
        assert_eq!(live.len(), 1, "only the override without TTL is left");
    }

    #[tokio::test]
    async fn the_trail_keeps_the_newest_events() {
        let dir = tempfile::tempdir().unwrap();
        let coordinator = StandaloneCoordinator::open(dir.path().join("s.json"), "r1").unwrap();
        for i in 0..5u64 {
            let o = freeze(&format!("o-{i}"), 1_000 + i, Some(10_000));
            append_keeping(&coordinator, &OverrideEvent::created(&o), 3).await.unwrap();
        }
        let ids: Vec<String> = events(&coordinator).await.unwrap().into_iter().map(|e| e.item.id).collect();
        assert_eq!(ids, ["o-4", "o-3", "o-2"]);
    }
}

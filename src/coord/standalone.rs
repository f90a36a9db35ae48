//! The `standalone` backend: one process, always the leader, all state in one local file.
//!
//! The file is replaced atomically on every write (temp file in the same directory, fsync,
//! rename over the old file, fsync the directory), so a crash at any point leaves either the
//! old or the new file, never a torn one. Temp files a crash left behind are deleted on open
//! and never read. The epoch is persisted and incremented at every start, so a restarted
//! controller fences the writes of its previous life at the providers (their ownership
//! records carry the epoch). A lock file keeps a second process off the same state.
//!
//! File I/O is synchronous inside the async methods: the file is small, writes are rare
//! (overrides, plan history) and one process owns it, so a blocking-pool hop buys nothing.
//!
//! Memory: values are held as their compact JSON text, not as parsed `serde_json::Value`s
//! (a parsed object costs a map node and a heap string per key, about ten times its text:
//! the plan history of 10 000 endpoints is megabytes of JSON); a write changes the one
//! entry in place and undoes it if the file cannot be written, instead of copying the
//! whole state; and the file is serialized straight into the temp file, one entry at a
//! time. A write that changes nothing (the planner state of a quiet round) is skipped.

use super::{CoordError, Coordinator, Entry, Epoch, FenceError, Key, Leadership, LossReason, Space, Writer};
use super::{LeaderCell, TenureEvent, Timings, WriteGuard};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The on-disk format, version 1; in memory its entries are [`Stored`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StateFile<E = Stored> {
    version: u32,
    /// The epoch of the last start. Invariant: strictly increases from one start (or
    /// re-acquisition after a step-down) to the next.
    epoch: u64,
    /// Entries by [`Key::path`].
    entries: BTreeMap<String, E>,
}

impl<E> Default for StateFile<E> {
    fn default() -> Self {
        Self { version: 0, epoch: 0, entries: BTreeMap::new() }
    }
}

/// An [`Entry`] with its value as compact JSON text. It reads and writes as an `Entry`, so
/// the file format is unchanged; parsing and printing round-trip every JSON value exactly.
#[derive(Debug, Clone, PartialEq)]
struct Stored {
    value: Box<str>,
    expires_at: Option<crate::time::Timestamp>,
}

impl Stored {
    fn new(entry: &Entry) -> Self {
        Self { value: entry.value.to_string().into_boxed_str(), expires_at: entry.expires_at }
    }

    fn entry(&self) -> Result<Entry, CoordError> {
        let value = serde_json::from_str(&self.value)
            .map_err(|e| CoordError::Local(format!("a stored value does not parse: {e}")))?;
        Ok(Entry { value, expires_at: self.expires_at })
    }
}

impl Serialize for Stored {
    /// As an [`Entry`], its value transcoded from the text token by token: a write of the
    /// planner state does not build the parsed value it avoids holding.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut entry = s.serialize_struct("Entry", 1 + usize::from(self.expires_at.is_some()))?;
        entry.serialize_field("value", &JsonText(&self.value))?;
        if let Some(at) = &self.expires_at {
            entry.serialize_field("expiresAt", at)?;
        }
        entry.end()
    }
}

/// JSON text that serializes as the value it holds.
struct JsonText<'a>(&'a str);

impl Serialize for JsonText<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde_transcode::Transcoder::new(&mut serde_json::Deserializer::from_str(self.0)).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Stored {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Entry::deserialize(d).map(|entry| Self::new(&entry))
    }
}

/// One write to the state, undone when the file cannot be written.
enum Change {
    /// The next epoch.
    NextEpoch,
    /// Sets the entry at a path.
    Put(String, Stored),
    /// Removes the entry at a path.
    Delete(String),
}

/// A lease that never runs out in practice: the standalone leader has nobody to yield to.
fn forever() -> Timings {
    const YEAR: u64 = 365 * 24 * 3600;
    Timings {
        lease: Duration::from_secs(10 * YEAR),
        renew_deadline: Duration::from_secs(9 * YEAR),
        retry: Duration::from_secs(YEAR),
    }
}

/// The standalone coordinator.
#[derive(Debug)]
pub struct StandaloneCoordinator {
    identity: String,
    path: PathBuf,
    state: Mutex<StateFile>,
    cell: LeaderCell,
    temp_counter: AtomicU64,
    /// Held (locked) for the life of the coordinator.
    _lock: File,
}

impl StandaloneCoordinator {
    /// Opens (or creates) the state file, deletes temp files left by a crash, takes the lock
    /// and starts a new tenure with the next epoch.
    pub fn open(path: impl Into<PathBuf>, identity: &str) -> Result<Self, CoordError> {
        let path = path.into();
        let local =
            |what: &str, e: &dyn std::fmt::Display| CoordError::Local(format!("{what} {}: {e}", path.display()));
        let dir = parent_dir(&path);
        fs::create_dir_all(&dir).map_err(|e| local("cannot create the directory of", &e))?;
        let lock_path = sibling(&path, ".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| local("cannot open the lock file of", &e))?;
        lock.try_lock().map_err(|e| local("another process holds the state file", &e))?;
        remove_temp_files(&path).map_err(|e| local("cannot clean temp files of", &e))?;
        let mut state = match fs::read(&path) {
            Ok(bytes) => {
                let state: StateFile<Stored> = serde_json::from_slice(&bytes)
                    .map_err(|e| local("the state file is not valid (was it edited by hand?)", &e))?;
                if state.version != 1 {
                    return Err(local("unsupported state file version in", &state.version));
                }
                state
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile { version: 1, ..StateFile::default() },
            Err(e) => return Err(local("cannot read", &e)),
        };
        state.epoch += 1;
        let this = Self {
            identity: identity.to_owned(),
            path,
            state: Mutex::new(StateFile::default()),
            cell: LeaderCell::new(forever()),
            temp_counter: AtomicU64::new(0),
            _lock: lock,
        };
        this.persist(&state)?;
        let epoch = Epoch(state.epoch);
        *this.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
        let now = Instant::now();
        this.cell.apply(TenureEvent::Acquired { epoch, sent_at: now }, now);
        Ok(this)
    }

    /// Reads the entries of a state file without taking the lock or starting a
    /// tenure (`veer plan` reads state and writes nothing). A missing file is empty.
    pub fn peek(path: &Path) -> Result<BTreeMap<Key, Entry>, CoordError> {
        let state: StateFile<Entry> = match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| CoordError::Local(format!("the state file {} is not valid: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile::default(),
            Err(e) => return Err(CoordError::Local(format!("cannot read {}: {e}", path.display()))),
        };
        Ok(state.entries.into_iter().filter_map(|(path, entry)| Some((Key::parse(&path)?, entry))).collect())
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `state` atomically: temp file, fsync, rename, fsync of the directory.
    fn persist(&self, state: &StateFile) -> Result<(), CoordError> {
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let temp = sibling(&self.path, &format!(".tmp-{}-{n}", std::process::id()));
        let result = (|| -> std::io::Result<()> {
            let mut file = BufWriter::new(OpenOptions::new().write(true).create_new(true).open(&temp)?);
            serde_json::to_writer_pretty(&mut file, state)?;
            let file = file.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            drop(file);
            fs::rename(&temp, &self.path)?;
            File::open(parent_dir(&self.path))?.sync_all()
        })();
        result.map_err(|e| {
            let _ = fs::remove_file(&temp);
            CoordError::Local(format!("cannot write {}: {e}", self.path.display()))
        })
    }

    /// Applies `change`, persists the state, and undoes the change if that fails, so a
    /// failed write changes nothing. Returns the epoch after the change.
    fn update(&self, change: Change) -> Result<u64, CoordError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let undo = match change {
            Change::NextEpoch => {
                state.epoch += 1;
                None
            }
            Change::Put(path, stored) => {
                if state.entries.get(&path) == Some(&stored) {
                    return Ok(state.epoch);
                }
                let before = state.entries.insert(path.clone(), stored);
                Some((path, before))
            }
            Change::Delete(path) => match state.entries.remove(&path) {
                Some(before) => Some((path, Some(before))),
                None => return Ok(state.epoch),
            },
        };
        if let Err(e) = self.persist(&state) {
            match undo {
                None => state.epoch -= 1,
                Some((path, Some(before))) => {
                    state.entries.insert(path, before);
                }
                Some((path, None)) => {
                    state.entries.remove(&path);
                }
            }
            return Err(e);
        }
        Ok(state.epoch)
    }

    fn check_writer(&self, key: &Key, writer: Writer) -> Result<Option<WriteGuard>, CoordError> {
        match writer {
            Writer::Leader(epoch) => Ok(Some(self.cell.fence(epoch, Duration::ZERO)?)),
            Writer::Replica if key.space.leader_only() => Err(CoordError::LeaderOnly { space: key.space }),
            Writer::Replica => Ok(None),
        }
    }
}

#[async_trait]
impl Coordinator for StandaloneCoordinator {
    fn identity(&self) -> &str {
        &self.identity
    }

    fn leadership(&self) -> watch::Receiver<Leadership> {
        self.cell.subscribe()
    }

    /// Always wins. After a step-down, a new tenure gets the next persisted epoch.
    async fn campaign(&self) -> Result<Epoch, CoordError> {
        match self.cell.current() {
            Leadership::Leader { epoch } => Ok(epoch),
            Leadership::Releasing { .. } | Leadership::Stopped => Err(CoordError::Stopped),
            Leadership::Follower { .. } | Leadership::Lost { .. } => {
                let epoch = self.update(Change::NextEpoch)?;
                let now = Instant::now();
                self.cell.apply(TenureEvent::Acquired { epoch: Epoch(epoch), sent_at: now }, now);
                Ok(Epoch(epoch))
            }
        }
    }

    fn epoch(&self) -> Option<Epoch> {
        self.cell.epoch()
    }

    fn remaining_lease(&self) -> Option<Duration> {
        self.cell.remaining_lease()
    }

    fn fence(&self, epoch: Epoch, expected_write: Duration) -> Result<WriteGuard, FenceError> {
        self.cell.fence(epoch, expected_write)
    }

    async fn step_down(&self) -> Result<(), CoordError> {
        self.cell.apply(TenureEvent::Ended(LossReason::SteppedDown), Instant::now());
        Ok(())
    }

    async fn release(&self) -> Result<(), CoordError> {
        self.cell.drain_writes().await;
        self.cell.apply(TenureEvent::Stopped, Instant::now());
        Ok(())
    }

    async fn get(&self, key: &Key) -> Result<Option<Entry>, CoordError> {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).entries.get(&key.path()).map(Stored::entry).transpose()
    }

    async fn list(&self, space: Space, prefix: &str) -> Result<Vec<(String, Entry)>, CoordError> {
        let start = Key::new(space, prefix).path();
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state
            .entries
            .range(start.clone()..)
            .take_while(|(path, _)| path.starts_with(&start))
            .filter_map(|(path, stored)| Some((Key::parse(path)?.name, stored)))
            .map(|(name, stored)| Ok((name, stored.entry()?)))
            .collect()
    }

    async fn put(&self, key: &Key, entry: &Entry, writer: Writer) -> Result<(), CoordError> {
        let _guard = self.check_writer(key, writer)?;
        self.update(Change::Put(key.path(), Stored::new(entry))).map(drop)
    }

    async fn get_text(&self, key: &Key) -> Result<Option<String>, CoordError> {
        Ok(self.state.lock().unwrap_or_else(|e| e.into_inner()).entries.get(&key.path()).map(|s| s.value.to_string()))
    }

    async fn put_text(&self, key: &Key, value: String, writer: Writer) -> Result<(), CoordError> {
        let _guard = self.check_writer(key, writer)?;
        // Checked without building the value: the file must stay readable.
        serde_json::from_str::<serde::de::IgnoredAny>(&value)
            .map_err(|e| CoordError::Local(format!("not JSON: {e}")))?;
        self.update(Change::Put(key.path(), Stored { value: value.into_boxed_str(), expires_at: None })).map(drop)
    }

    async fn delete(&self, key: &Key, writer: Writer) -> Result<(), CoordError> {
        let _guard = self.check_writer(key, writer)?;
        self.update(Change::Delete(key.path())).map(drop)
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `<dir>/.<file name><suffix>`: hidden, in the same directory (rename is atomic only
/// within one file system).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().map_or_else(|| "veer-state".into(), |n| n.to_string_lossy().into_owned());
    parent_dir(path).join(format!(".{name}{suffix}"))
}

/// Deletes `.<name>.tmp-*` files: writes a crash interrupted. They are never read.
fn remove_temp_files(path: &Path) -> std::io::Result<()> {
    let name = path.file_name().map_or_else(|| "veer-state".into(), |n| n.to_string_lossy().into_owned());
    let prefix = format!(".{name}.tmp-");
    for entry in fs::read_dir(parent_dir(path))? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn the_epoch_increments_at_every_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut epochs = Vec::new();
        for _ in 0..3 {
            let coord = StandaloneCoordinator::open(&path, "a").unwrap();
            epochs.push(coord.campaign().await.unwrap());
        }
        assert_eq!(epochs, vec![Epoch(1), Epoch(2), Epoch(3)]);
    }

    #[tokio::test]
    async fn a_second_process_cannot_open_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let _first = StandaloneCoordinator::open(&path, "a").unwrap();
        let err = StandaloneCoordinator::open(&path, "b").unwrap_err();
        assert!(err.to_string().contains("another process holds"), "{err}");
    }

    #[tokio::test]
    async fn leader_only_spaces_refuse_replica_writes_and_stale_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let coord = StandaloneCoordinator::open(dir.path().join("s.json"), "a").unwrap();
        let epoch = coord.campaign().await.unwrap();
        let key = Key::new(Space::Warmup, "use1-a");
        let entry = Entry::new(json!({"stage": 2}));
        assert!(matches!(coord.put(&key, &entry, Writer::Replica).await, Err(CoordError::LeaderOnly { .. })));
        coord.put(&key, &entry, Writer::Leader(epoch)).await.unwrap();
        coord.step_down().await.unwrap();
        let next = coord.campaign().await.unwrap();
        assert!(next > epoch);
        let err = coord.put(&key, &entry, Writer::Leader(epoch)).await.unwrap_err();
        assert!(err.is_fenced(), "{err}");
        coord.put(&Key::new(Space::Overrides, "drain-x"), &entry, Writer::Replica).await.unwrap();
    }

    #[tokio::test]
    async fn state_and_overrides_survive_a_restart_and_expire_by_their_stored_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        {
            let coord = StandaloneCoordinator::open(&path, "a").unwrap();
            let drain = Entry::expiring(json!({"drain": "pool/aws-use1"}), crate::time::Timestamp(10_000));
            coord.put(&Key::new(Space::Overrides, "d1"), &drain, Writer::Replica).await.unwrap();
            coord
                .put(&Key::new(Space::Overrides, "d2"), &Entry::new(json!({"freeze": "all"})), Writer::Replica)
                .await
                .unwrap();
            coord.release().await.unwrap();
        }
        let coord = StandaloneCoordinator::open(&path, "a").unwrap();
        let live = coord.list_live(Space::Overrides, "", crate::time::Timestamp(9_999)).await.unwrap();
        assert_eq!(live.len(), 2);
        let live = coord.list_live(Space::Overrides, "", crate::time::Timestamp(10_000)).await.unwrap();
        assert_eq!(live, vec![("d2".to_owned(), json!({"freeze": "all"}))]);
        let epoch = coord.campaign().await.unwrap();
        let pruned = coord.prune_expired(Space::Overrides, crate::time::Timestamp(10_000), Writer::Leader(epoch)).await;
        assert_eq!(pruned.unwrap(), vec!["d1".to_owned()]);
    }

    #[tokio::test]
    async fn plan_history_keeps_the_newest_plans_and_never_prunes_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let coord = StandaloneCoordinator::open(dir.path().join("s.json"), "a").unwrap();
        let epoch = coord.campaign().await.unwrap();
        for generation in [1, 2, 3, 9, 10, 11] {
            coord.append_plan(epoch, "api.example.com.", generation, json!({"g": generation}), 3).await.unwrap();
        }
        coord.append_plan(epoch, "api.example.com.x", 1, json!({}), 3).await.unwrap();
        let generations: Vec<u64> =
            coord.plans("api.example.com.").await.unwrap().into_iter().map(|(g, _)| g).collect();
        assert_eq!(generations, vec![9, 10, 11]);
        coord.append_plan(epoch, "api.example.com.", 12, json!({"g": 12}), 0).await.unwrap();
        let plans = coord.plans("api.example.com.").await.unwrap();
        assert_eq!(plans, vec![(12, json!({"g": 12}))]);
        assert_eq!(coord.plans("api.example.com.x").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn temp_files_left_by_a_crash_are_ignored_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        {
            let coord = StandaloneCoordinator::open(&path, "a").unwrap();
            coord.put(&Key::new(Space::Overrides, "o"), &Entry::new(json!(1)), Writer::Replica).await.unwrap();
        }
        let torn = sibling(&path, ".tmp-999-0");
        fs::write(&torn, b"{\"version\":1,\"epoch\":99,\"entr").unwrap();
        let coord = StandaloneCoordinator::open(&path, "a").unwrap();
        assert!(!torn.exists());
        assert_eq!(coord.campaign().await.unwrap(), Epoch(2));
        assert_eq!(coord.get(&Key::new(Space::Overrides, "o")).await.unwrap(), Some(Entry::new(json!(1))));
    }

    #[tokio::test]
    async fn a_write_that_cannot_reach_the_file_changes_nothing_and_an_unchanged_put_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let coord = StandaloneCoordinator::open(state_dir.join("s.json"), "a").unwrap();
        let epoch = coord.campaign().await.unwrap();
        let (kept, added) = (Key::new(Space::Overrides, "kept"), Key::new(Space::Overrides, "added"));
        let entry = Entry::expiring(json!({"drain": "pool/a", "weights": [1.5, 2]}), crate::time::Timestamp(7));
        coord.put(&kept, &entry, Writer::Replica).await.unwrap();
        fs::remove_dir_all(&state_dir).unwrap();

        coord.put(&kept, &entry, Writer::Replica).await.expect("an unchanged put needs no write");
        assert!(coord.put(&added, &entry, Writer::Replica).await.is_err());
        assert!(coord.put(&kept, &Entry::new(json!(2)), Writer::Replica).await.is_err());
        assert!(coord.delete(&kept, Writer::Replica).await.is_err());
        coord.step_down().await.unwrap();
        assert!(coord.campaign().await.is_err());
        assert_eq!(coord.get(&kept).await.unwrap(), Some(entry.clone()));
        assert_eq!(coord.get(&added).await.unwrap(), None);

        fs::create_dir_all(&state_dir).unwrap();
        assert_eq!(coord.campaign().await.unwrap(), Epoch(epoch.0 + 1), "the failed campaign used no epoch");
        coord.put(&added, &Entry::new(json!({"n": 1})), Writer::Replica).await.unwrap();
        let file: serde_json::Value = serde_json::from_slice(&fs::read(state_dir.join("s.json")).unwrap()).unwrap();
        let expected = json!({
            "version": 1,
            "epoch": epoch.0 + 1,
            "entries": {
                kept.path(): {"value": {"drain": "pool/a", "weights": [1.5, 2]}, "expiresAt": 7},
                added.path(): {"value": {"n": 1}},
            },
        });
        assert_eq!(file, expected);
    }

    #[tokio::test]
    async fn values_written_as_text_read_back_as_text_and_as_values_with_the_same_rules() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let coord = StandaloneCoordinator::open(&path, "a").unwrap();
        let epoch = coord.campaign().await.unwrap();
        let key = Key::new(Space::Planner, "state");
        let text = r#"{"records":{"api":{"generation":3,"share":0.25}}}"#.to_string();
        let refused = coord.put_text(&key, text.clone(), Writer::Replica).await;
        assert!(matches!(refused, Err(CoordError::LeaderOnly { .. })), "{refused:?}");
        let not_json = coord.put_text(&key, "{\"records\":".into(), Writer::Leader(epoch)).await.unwrap_err();
        assert!(not_json.to_string().contains("not JSON"), "{not_json}");
        assert_eq!(coord.get_text(&key).await.unwrap(), None);

        coord.put_text(&key, text.clone(), Writer::Leader(epoch)).await.unwrap();
        assert_eq!(coord.get_text(&key).await.unwrap(), Some(text.clone()));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(coord.get(&key).await.unwrap(), Some(Entry::new(value.clone())));
        drop(coord);
        let reopened = StandaloneCoordinator::open(&path, "a").unwrap();
        assert_eq!(reopened.get(&key).await.unwrap(), Some(Entry::new(value)));
    }

    #[tokio::test]
    async fn a_damaged_state_file_is_refused_rather_than_silently_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        fs::write(&path, b"{\"version\":1,").unwrap();
        let err = StandaloneCoordinator::open(&path, "a").unwrap_err();
        assert!(err.to_string().contains("not valid"), "{err}");
    }
}

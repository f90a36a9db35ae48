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

use super::{CoordError, Coordinator, Entry, Epoch, FenceError, Key, Leadership, LossReason, Space, Writer};
use super::{LeaderCell, TenureEvent, Timings, WriteGuard};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The on-disk format, version 1.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StateFile {
    version: u32,
    /// The epoch of the last start. Invariant: strictly increases from one start (or
    /// re-acquisition after a step-down) to the next.
    epoch: u64,
    /// Entries by [`Key::path`].
    entries: BTreeMap<String, Entry>,
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
                let state: StateFile = serde_json::from_slice(&bytes)
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
        let state: StateFile = match fs::read(path) {
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
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| CoordError::Local(e.to_string()))?;
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        let temp = sibling(&self.path, &format!(".tmp-{}-{n}", std::process::id()));
        let result = (|| -> std::io::Result<()> {
            let mut file = OpenOptions::new().write(true).create_new(true).open(&temp)?;
            file.write_all(&bytes)?;
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

    /// Applies `change` to a copy of the state, persists it, and only then makes it current,
    /// so a failed write changes nothing.
    fn update(&self, change: impl FnOnce(&mut StateFile)) -> Result<(), CoordError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = state.clone();
        change(&mut next);
        self.persist(&next)?;
        *state = next;
        Ok(())
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
                let mut epoch = 0;
                self.update(|state| {
                    state.epoch += 1;
                    epoch = state.epoch;
                })?;
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
        Ok(self.state.lock().unwrap_or_else(|e| e.into_inner()).entries.get(&key.path()).cloned())
    }

    async fn list(&self, space: Space, prefix: &str) -> Result<Vec<(String, Entry)>, CoordError> {
        let start = Key::new(space, prefix).path();
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Ok(state
            .entries
            .range(start.clone()..)
            .take_while(|(path, _)| path.starts_with(&start))
            .filter_map(|(path, entry)| Some((Key::parse(path)?.name, entry.clone())))
            .collect())
    }

    async fn put(&self, key: &Key, entry: &Entry, writer: Writer) -> Result<(), CoordError> {
        let _guard = self.check_writer(key, writer)?;
        self.update(|state| {
            state.entries.insert(key.path(), entry.clone());
        })
    }

    async fn delete(&self, key: &Key, writer: Writer) -> Result<(), CoordError> {
        let _guard = self.check_writer(key, writer)?;
        if !self.state.lock().unwrap_or_else(|e| e.into_inner()).entries.contains_key(&key.path()) {
            return Ok(());
        }
        self.update(|state| {
            state.entries.remove(&key.path());
        })
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
    async fn a_damaged_state_file_is_refused_rather_than_silently_reset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        fs::write(&path, b"{\"version\":1,").unwrap();
        let err = StandaloneCoordinator::open(&path, "a").unwrap_err();
        assert!(err.to_string().contains("not valid"), "{err}");
    }
}

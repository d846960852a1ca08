//! Commit marks: how the store notices that it recovered less than it acknowledged.
//!
//! sled treats a damaged stretch of its log as the end of the log, so a rotten disk block loses
//! every later write without an error. To notice, each flush that covers writes to a keyspace
//! first writes, in the store's own meta keyspace, a mark `seq/<keyspace>` = the flush's
//! number; the flush makes it durable together with the writes. Once a flush has returned, its
//! numbers are durable, and they are saved (at most about once a second, and at shutdown) to a
//! small file beside the store, `store.marks`, written to a temporary file, synced and renamed.
//! At open, every keyspace's recovered mark must be at least the one in that file; a keyspace
//! whose mark came back lower lost acknowledged writes, and is **damaged**: it refuses every
//! read and write with [`super::StoreError::Damaged`], and the node reports it as not ready.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::time::{Duration, Instant};

use super::engine::{Engine, Op};
use super::{META_KEYSPACE, StoreError};

/// How often the marks file is rewritten while writes go on.
const SAVE_EVERY: Duration = Duration::from_secs(1);

fn mark_key(keyspace: &str) -> Vec<u8> {
    format!("seq/{keyspace}").into_bytes()
}

#[derive(Default)]
struct State {
    /// Keyspaces written since the last flush started.
    dirty: HashSet<String>,
    /// The last durable mark of each keyspace.
    durable: BTreeMap<String, u64>,
    /// The next flush's number.
    next: u64,
    /// Whether `durable` changed since the file was saved.
    unsaved: bool,
    saved_at: Option<Instant>,
}

/// The marks of one store.
pub(super) struct Marks {
    file: PathBuf,
    /// A std mutex: held for a map update only, never across an await or a flush.
    state: Mutex<State>,
}

/// The marks file of the store at `store`: `<store>.marks`, beside sled's directory.
fn file_of(store: &Path) -> PathBuf {
    let mut name = store.file_name().unwrap_or_default().to_os_string();
    name.push(".marks");
    store.with_file_name(name)
}

fn read_file(path: &Path) -> Result<BTreeMap<String, u64>, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => {
            return Err(StoreError::Engine(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    let mut marks = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let parsed = line
            .rsplit_once('\t')
            .and_then(|(name, seq)| Some((name.to_string(), seq.parse::<u64>().ok()?)));
        match parsed {
            Some((name, seq)) => {
                marks.insert(name, seq);
            }
            None => {
                return Err(StoreError::Damaged(format!(
                    "{} is damaged (line {line:?}); remove it to accept the store as recovered",
                    path.display()
                )));
            }
        }
    }
    Ok(marks)
}

impl Marks {
    /// Reads the marks file of the store at `store` and checks what `engine` recovered
    /// against it. Returns the marks and the damaged keyspaces, with the reason of each.
    pub(super) fn open(
        store: &Path,
        engine: &dyn Engine,
    ) -> Result<(Self, HashMap<String, String>), StoreError> {
        let file = file_of(store);
        let saved = read_file(&file)?;
        let meta = engine.keyspace(META_KEYSPACE)?;
        let mut damaged = HashMap::new();
        let mut durable = BTreeMap::new();
        let mut highest = 0;
        for (name, acknowledged) in &saved {
            let recovered = meta
                .get(&mark_key(name))?
                .and_then(|b| Some(u64::from_be_bytes(b.as_slice().try_into().ok()?)))
                .unwrap_or(0);
            highest = highest.max(recovered).max(*acknowledged);
            durable.insert(name.clone(), recovered.max(*acknowledged));
            if recovered < *acknowledged {
                let why = format!(
                    "keyspace {name} is damaged: the store recovered it only up to commit \
                     {recovered}, but commit {acknowledged} had been acknowledged (the store \
                     file lost data); restore this node's data directory from a backup, or \
                     remove {} to accept what was recovered",
                    file.display()
                );
                tracing::error!(keyspace = %name, recovered, acknowledged, "store damaged: a keyspace recovered less than it acknowledged");
                damaged.insert(name.clone(), why);
            }
        }
        let marks = Self {
            file,
            state: Mutex::new(State {
                durable,
                next: highest + 1,
                ..State::default()
            }),
        };
        Ok((marks, damaged))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keyspace `name` is about to be written.
    pub(super) fn note(&self, name: &str) {
        let mut state = self.state();
        if !state.dirty.contains(name) {
            state.dirty.insert(name.to_string());
        }
    }

    /// Before a flush: writes the marks of the keyspaces written since the last one. Returns
    /// what to record once the flush is done.
    pub(super) fn before_flush(
        &self,
        engine: &dyn Engine,
    ) -> Result<Option<(u64, Vec<String>)>, StoreError> {
        let (seq, names) = {
            let mut state = self.state();
            if state.dirty.is_empty() {
                return Ok(None);
            }
            let seq = state.next;
            state.next += 1;
            (seq, state.dirty.drain().collect::<Vec<_>>())
        };
        let ops: Vec<Op> = names
            .iter()
            .map(|n| Op::Put(mark_key(n), seq.to_be_bytes().to_vec()))
            .collect();
        engine.keyspace(META_KEYSPACE)?.apply(&ops)?;
        Ok(Some((seq, names)))
    }

    /// After a flush that covered `covered`: its marks are durable; saves the file when due
    /// (or now, with `force`). Blocks (file I/O).
    pub(super) fn after_flush(&self, covered: Option<(u64, Vec<String>)>, force: bool) {
        let lines = {
            let mut state = self.state();
            if let Some((seq, names)) = covered {
                for name in names {
                    state.durable.insert(name, seq);
                }
                state.unsaved = true;
            }
            let due = state.saved_at.is_none_or(|at| at.elapsed() >= SAVE_EVERY);
            if !state.unsaved || !(due || force) {
                return;
            }
            state.unsaved = false;
            state.saved_at = Some(Instant::now());
            state
                .durable
                .iter()
                .filter(|(n, _)| !n.contains(['\n', '\t']))
                .map(|(n, s)| format!("{n}\t{s}\n"))
                .collect::<String>()
        };
        if let Err(e) = self.save(&lines) {
            tracing::warn!(file = %self.file.display(), error = %e, "cannot save the store's commit marks");
            self.state().unsaved = true;
        }
    }

    fn save(&self, text: &str) -> std::io::Result<()> {
        let tmp = self.file.with_extension("marks.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.file)?;
        if let Some(dir) = self.file.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

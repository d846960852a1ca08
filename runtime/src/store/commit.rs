//! Group commit: many writers, one flush at a time, each writer released by the first flush
//! that started after its write was applied.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};
use tokio::time::{Duration, Instant};

use super::marks::Marks;
use super::{Engine, StoreError};

/// How often the committer refreshes the size on disk when idle.
const SIZE_EVERY: Duration = Duration::from_secs(1);
/// How often a store whose disk is full looks for space again.
const FULL_RETRY_EVERY: Duration = Duration::from_millis(250);
/// The room a full store wants before it writes again.
const PROBE_BYTES: usize = 4 * 1024 * 1024;

pub(super) struct GroupCommit {
    /// Writes applied so far (a sequence number per write).
    written: AtomicU64,
    /// The highest write sequence known durable, or the error that stopped the committer.
    durable: watch::Sender<Result<u64, StoreError>>,
    wake: Notify,
    flushes: AtomicU64,
    /// How many writes the last flush made durable (for trace spans).
    last_group: AtomicU64,
    size_on_disk: AtomicU64,
    /// Whether the disk is full (writes refused, reads checked against `tainted`).
    full: AtomicBool,
    /// Writers between their first check and their answer: once the disk is full, readers
    /// wait until these have recorded what failed.
    inflight: AtomicU64,
    /// While the disk is full: the keys that hold writes that could not be made durable
    /// (their reads are refused until the store reopens from disk). A std mutex: held for a
    /// lookup only.
    tainted: Mutex<Tainted>,
}

/// The keys a full disk left with writes that are not durable.
#[derive(Default)]
struct Tainted {
    /// Every key (the engine could not be reopened).
    all: bool,
    keys: HashMap<String, HashSet<Vec<u8>>>,
}

/// One writer in flight (see [`GroupCommit::begin_write`]).
pub(super) struct Inflight<'a>(&'a AtomicU64);

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One writer in flight that outlives the call that started it: a write applied now whose
/// durability is awaited elsewhere (see [`super::Durable`]).
pub(super) struct OwnedInflight(Arc<GroupCommit>);

impl Drop for OwnedInflight {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl GroupCommit {
    /// Wakes the committer (its store is going away, or a writer waits).
    pub(super) fn nudge(&self) {
        self.wake.notify_one();
    }

    /// [`GroupCommit::begin_write`], for a writer that hands its write on.
    pub(super) fn begin_write_owned(self: &Arc<Self>) -> OwnedInflight {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        OwnedInflight(Arc::clone(self))
    }

    /// Starts the committer. `room` is a directory on the store's filesystem, where a full
    /// store checks that space came back (None: it reopens and retries blindly).
    pub(super) fn start(
        engine: Arc<dyn Engine>,
        marks: Option<Arc<Marks>>,
        room: Option<PathBuf>,
    ) -> Arc<Self> {
        let (durable, _) = watch::channel(Ok(0));
        let commit = Arc::new(Self {
            written: AtomicU64::new(0),
            durable,
            wake: Notify::new(),
            flushes: AtomicU64::new(0),
            last_group: AtomicU64::new(0),
            size_on_disk: AtomicU64::new(engine.size_on_disk().unwrap_or(0)),
            full: AtomicBool::new(false),
            inflight: AtomicU64::new(0),
            tainted: Mutex::new(Tainted::default()),
        });
        tokio::spawn(run(Arc::downgrade(&commit), engine, marks, room));
        commit
    }

    pub(super) fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Records one applied write; returns its sequence number.
    pub(super) fn note_write(&self) -> u64 {
        self.written.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Fails if an earlier flush failed, or the disk is full.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        match &*self.durable.borrow() {
            Ok(_) => Ok(()),
            Err(e) => Err(failure(e)),
        }
    }

    /// While the disk is full: its message.
    pub(super) fn full(&self) -> Option<String> {
        if !self.full.load(Ordering::Acquire) {
            return None;
        }
        match &*self.durable.borrow() {
            Err(StoreError::Full(m)) => Some(m.clone()),
            _ => None,
        }
    }

    /// A writer starts: counted until the guard drops.
    pub(super) fn begin_write(&self) -> Inflight<'_> {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        Inflight(&self.inflight)
    }

    /// While the disk is full: waits (briefly) until every writer in flight has recorded
    /// whether its write failed, so that a read never shows a write that is not durable.
    pub(super) async fn settle(&self) -> Result<(), StoreError> {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.inflight.load(Ordering::Acquire) > 0 {
            if Instant::now() >= deadline {
                return Err(StoreError::Full(
                    "the disk of this node's store is full and writes are still settling".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }

    /// Whether `key` of keyspace `name` (or, with None, all of it) may be read now: while the
    /// disk is full, only what no failed write touched (what it shows is on disk).
    pub(super) fn readable(&self, name: &str, key: Option<&[u8]>) -> Result<(), StoreError> {
        if !self.full.load(Ordering::Acquire) {
            return Ok(());
        }
        let tainted = self.tainted.lock().unwrap_or_else(|p| p.into_inner());
        let touched = tainted.keys.get(name);
        let refused = tainted.all
            || match key {
                Some(key) => touched.is_some_and(|t| t.contains(key)),
                None => touched.is_some_and(|t| !t.is_empty()),
            };
        if refused {
            return Err(StoreError::Full(format!(
                "the disk of this node's store is full and a write to keyspace {name} could \
                 not be made durable: it is readable again once space is freed"
            )));
        }
        Ok(())
    }

    /// Records the keys of a write to `name` that failed while the disk was full.
    pub(super) fn taint_keys(&self, name: &str, keys: impl IntoIterator<Item = Vec<u8>>) {
        let mut tainted = self.tainted.lock().unwrap_or_else(|p| p.into_inner());
        tainted
            .keys
            .entry(name.to_string())
            .or_default()
            .extend(keys);
    }

    fn taint_all(&self) {
        self.tainted.lock().unwrap_or_else(|p| p.into_inner()).all = true;
    }

    /// Whether write `seq` is durable already (no flush failed first).
    pub(super) fn is_durable(&self, seq: u64) -> bool {
        matches!(&*self.durable.borrow(), Ok(d) if *d >= seq)
    }

    /// Waits until write `seq` is durable.
    pub(super) async fn wait_durable(&self, seq: u64) -> Result<(), StoreError> {
        if self.is_durable(seq) {
            return Ok(());
        }
        let mut rx = self.durable.subscribe();
        self.wake.notify_one();
        let result = rx
            .wait_for(|d| !matches!(d, Ok(d) if *d < seq))
            .await
            .map_err(|_| StoreError::Failed("the store was closed".into()))?;
        match &*result {
            Ok(_) => Ok(()),
            Err(e) => Err(failure(e)),
        }
    }

    pub(super) fn size_on_disk(&self) -> u64 {
        self.size_on_disk.load(Ordering::Relaxed)
    }

    /// How many writes the last flush made durable.
    pub(super) fn last_group(&self) -> u64 {
        self.last_group.load(Ordering::Relaxed)
    }

    pub(super) fn stats(&self) -> (u64, u64) {
        (self.flushes.load(Ordering::Relaxed), self.written())
    }
}

/// What a writer is told after the committer failed.
fn failure(e: &StoreError) -> StoreError {
    match e {
        StoreError::Full(_) => e.clone(),
        other => StoreError::Failed(other.to_string()),
    }
}

async fn run(
    commit: std::sync::Weak<GroupCommit>,
    engine: Arc<dyn Engine>,
    marks: Option<Arc<Marks>>,
    room: Option<PathBuf>,
) {
    let mut last_size = Instant::now();
    // One sample of each per flush, not per write: a flush covers many writes.
    let commit_seconds = ::metrics::histogram!(crate::metrics::STORE_COMMIT_SECONDS);
    let commit_writes = ::metrics::histogram!(crate::metrics::STORE_COMMIT_WRITES);
    loop {
        let Some(c) = commit.upgrade() else {
            return;
        };
        let durable = match &*c.durable.borrow() {
            Ok(d) => *d,
            Err(StoreError::Full(_)) => u64::MAX,
            Err(_) => return,
        };
        if durable == u64::MAX {
            drop(c);
            if !recover(&commit, &engine, room.as_ref()).await {
                return;
            }
            continue;
        }
        let target = c.written();
        if durable >= target {
            // Nothing to flush: sleep until a writer waits (or refresh the size now and then).
            let woken = tokio::time::timeout(SIZE_EVERY, c.wake.notified()).await;
            if woken.is_err() || last_size.elapsed() >= SIZE_EVERY {
                let engine = Arc::clone(&engine);
                let marks = marks.clone();
                if let Ok(Ok(size)) = tokio::task::spawn_blocking(move || {
                    if let Some(marks) = marks {
                        marks.after_flush(None, false);
                    }
                    engine.size_on_disk()
                })
                .await
                {
                    c.size_on_disk.store(size, Ordering::Relaxed);
                }
                last_size = Instant::now();
            }
            continue;
        }
        let flushing = Arc::clone(&engine);
        let marking = marks.clone();
        let counting = Arc::clone(&c);
        let flush_started = Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            // Everything counted as written by now is applied, so this flush covers it: the
            // writes that came while this task was starting join it (a flush costs about the
            // same for one write or fifty).
            let target = counting.written();
            // The marks of the keyspaces written go into this flush (see `marks`).
            let covered = match &marking {
                Some(marks) => marks.before_flush(&*flushing).map_err(|e| (e, None))?,
                None => None,
            };
            if let Err(e) = flushing.flush() {
                return Err((e, covered.map(|(_, names)| names)));
            }
            if let Some(marks) = marking {
                marks.after_flush(covered, false);
            }
            Ok(target)
        })
        .await
        .unwrap_or_else(|e| Err((StoreError::Engine(format!("flush task failed: {e}")), None)));
        c.flushes.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(target) => {
                commit_seconds.record(flush_started.elapsed().as_secs_f64());
                commit_writes.record((target - durable) as f64);
                c.last_group.store(target - durable, Ordering::Relaxed);
                let _ = c.durable.send_replace(Ok(target));
            }
            Err((StoreError::Full(m), covered)) => {
                tracing::error!(error = %m, "store disk full: writes are refused until space returns");
                // Every writer waiting is told, and records the keys it failed to write.
                drop(covered);
                c.full.store(true, Ordering::Release);
                let _ = c.durable.send_replace(Err(StoreError::Full(m)));
            }
            Err((e, _)) => {
                tracing::error!(error = %e, "store flush failed: no more writes will be acknowledged");
                let _ = c.durable.send_replace(Err(e));
                return;
            }
        }
    }
}

/// A full store: waits for room, then reopens the engine from disk (dropping the writes that
/// were never acknowledged, so that reads show durable data only), makes one flush and
/// resumes. Returns false if the store is gone.
async fn recover(
    commit: &std::sync::Weak<GroupCommit>,
    engine: &Arc<dyn Engine>,
    room: Option<&PathBuf>,
) -> bool {
    loop {
        tokio::time::sleep(FULL_RETRY_EVERY).await;
        if commit.strong_count() == 0 {
            return false;
        }
        if !has_room(room).await {
            continue;
        }
        let Some(c) = commit.upgrade() else {
            return false;
        };
        let reopening = Arc::clone(engine);
        let reopened = tokio::task::spawn_blocking(move || {
            reopening.reopen()?;
            reopening.flush()
        })
        .await
        .unwrap_or_else(|e| Err(StoreError::Engine(e.to_string())));
        match reopened {
            Ok(()) => {
                // Every write applied so far went to the failed engine and was refused; the
                // reopened one holds exactly what is on disk.
                let base = c.written();
                *c.tainted.lock().unwrap_or_else(|p| p.into_inner()) = Tainted::default();
                let _ = c.durable.send_replace(Ok(base));
                c.full.store(false, Ordering::Release);
                tracing::info!("store reopened from disk with room again: writes resumed");
                return true;
            }
            Err(e) => {
                // The old engine is gone: nothing is readable until a reopen works.
                c.taint_all();
                tracing::warn!(error = %e, "store not reopened yet");
            }
        }
    }
}

/// Whether `PROBE_BYTES` can be written and synced in `room` (and removes the probe).
async fn has_room(room: Option<&PathBuf>) -> bool {
    let Some(dir) = room.cloned() else {
        return true;
    };
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let probe = dir.join(".troupe-space-probe");
        let written = std::fs::File::create(&probe).and_then(|mut f| {
            f.write_all(&vec![0u8; PROBE_BYTES])?;
            f.sync_all()
        });
        let _ = std::fs::remove_file(&probe);
        written.is_ok()
    })
    .await
    .unwrap_or(false)
}

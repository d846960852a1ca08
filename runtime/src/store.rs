//! Stores: each stateful actor owns one keyspace on its node's disk.
//!
//! # The model
//!
//! A node has one [`Store`] (one sled database: sled allows one open per directory, and its
//! trees share a log, so one flush makes every keyspace durable). A stateful actor claims its
//! [`Keyspace`] by name; while the claim is held, nobody else can open it: a second claim fails
//! with [`StoreError::AlreadyOwned`] (an actor restarting waits briefly for its predecessor's
//! handle to drop). Values are bincode; keys are bytes with a stable order ([`key`]).
//!
//! # Nothing acknowledged is lost
//!
//! [`Keyspace::commit`] applies a [`WriteBatch`] atomically (a state change and its outgoing
//! events together) and returns only once it is durable. Durability is a **group commit**: one
//! task runs sled's `flush` in a blocking thread, one flush at a time (concurrent flushes can
//! deadlock in sled 0.34), and every write that was applied before a flush started is durable
//! when it ends; many concurrent writers share one flush. [`Keyspace::durable`] waits for the
//! writes applied so far, for readers that must only show durable data.
//!
//! The engine sits behind the small [`engine::Engine`] trait, so that another embedded engine
//! can replace sled if the crash tests ever say it must.
//!
//! ```
//! # async fn demo() -> Result<(), troupe_runtime::store::StoreError> {
//! use troupe_runtime::store::{Store, WriteBatch};
//!
//! let store = Store::temporary()?;
//! let orders = store.claim("orders/0", std::time::Duration::ZERO).await?;
//! let mut batch = WriteBatch::new();
//! batch.put(b"order:1", &("pending", 1200u64))?;
//! batch.put(b"outbox:1", &"order.created")?;
//! orders.commit(batch).await?; // both or neither, and durable when this returns
//! assert_eq!(orders.get::<(String, u64)>(b"order:1")?, Some(("pending".into(), 1200)));
//! assert!(store.claim("orders/0", std::time::Duration::ZERO).await.is_err());
//! # Ok(()) }
//! ```

mod batches;
mod commit;
mod durable;
pub mod engine;
pub mod key;
mod keyspace;
mod marks;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::time::{Duration, Instant, timeout_at};

use commit::GroupCommit;
pub use durable::Durable;
pub use engine::{Engine, Entries, KeyspaceEngine, Op, SledEngine};
use marks::Marks;

/// The runtime's own keyspace (placement records): never claimed by an actor, whose keyspaces
/// are all named `<service>/<shard or slot>`.
const META_KEYSPACE: &str = "troupe.meta";

/// The largest value we decode from disk: a corrupt length must not allocate gigabytes.
const MAX_VALUE_BYTES: usize = 64 * 1024 * 1024;

/// A store failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Another live actor owns the keyspace.
    #[error("keyspace {0} is owned by another actor")]
    AlreadyOwned(String),
    /// The engine failed (disk, corruption).
    #[error("storage engine: {0}")]
    Engine(String),
    /// A value did not encode or decode.
    #[error("value codec: {0}")]
    Codec(String),
    /// A flush failed earlier: the store no longer acknowledges writes.
    #[error("the store failed to flush and stopped acknowledging writes: {0}")]
    Failed(String),
    /// The disk is full: writes are refused at once until space returns, and the store
    /// resumes by itself then.
    #[error("{0}")]
    Full(String),
    /// The keyspace recovered less than it had acknowledged (a damaged store file): it serves
    /// nothing rather than answer without the lost writes. The message says what to do.
    #[error("{0}")]
    Damaged(String),
}

struct Inner {
    engine: Arc<dyn Engine>,
    commit: Arc<GroupCommit>,
    /// The commit marks (a store on disk only).
    marks: Option<Arc<Marks>>,
    /// Keyspaces that recovered less than they acknowledged, with the reason.
    damaged: HashMap<String, String>,
    /// Names of the keyspaces claimed now. A std mutex: held for a set operation only.
    owned: Mutex<HashSet<String>>,
    /// Signalled when a claim is released.
    released: Notify,
    /// This open's generation of batch numbers ([`batches`]).
    generation: u64,
    /// Each keyspace's batch counter since the store opened.
    batches: batches::Counters,
    /// Each keyspace's highest noted sequence since the store opened
    /// ([`Keyspace::note_sequence`]).
    sequences: batches::Counters,
}

impl Drop for Inner {
    /// Wakes the committer, so that it sees the store is gone and lets go of the engine (and
    /// its files) now rather than at its next periodic wake-up.
    fn drop(&mut self) {
        self.commit.nudge();
    }
}

/// This node's store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the sled store at `path` with a page cache of `cache_bytes`. Blocks:
    /// call it from a blocking context or at startup. Needs a tokio runtime (for the committer).
    /// Checks what sled recovered against the commit marks saved beside it (`marks`).
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let engine: Arc<dyn Engine> = Arc::new(SledEngine::open(path, cache_bytes)?);
        let (marks, damaged) = Marks::open(path, &*engine)?;
        let room = path.parent().map(Path::to_path_buf);
        Ok(Self::with_parts(
            engine,
            Some(Arc::new(marks)),
            damaged,
            room,
        ))
    }

    /// A store in a temporary directory, removed when dropped: for tests.
    pub fn temporary() -> Result<Self, StoreError> {
        Ok(Self::with_engine(Arc::new(SledEngine::temporary()?)))
    }

    /// A store over any engine.
    pub fn with_engine(engine: Arc<dyn Engine>) -> Self {
        Self::with_parts(engine, None, HashMap::new(), None)
    }

    fn with_parts(
        engine: Arc<dyn Engine>,
        marks: Option<Arc<Marks>>,
        damaged: HashMap<String, String>,
        room: Option<std::path::PathBuf>,
    ) -> Self {
        let generation = batches::next_generation(&*engine);
        let commit = GroupCommit::start(Arc::clone(&engine), marks.clone(), room);
        Self {
            inner: Arc::new(Inner {
                engine,
                commit,
                marks,
                damaged,
                owned: Mutex::new(HashSet::new()),
                released: Notify::new(),
                generation,
                batches: batches::Counters::default(),
                sequences: batches::Counters::default(),
            }),
        }
    }

    fn try_claim(&self, name: &str) -> bool {
        self.inner
            .owned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string())
    }

    /// Claims keyspace `name` for the caller. If another owner holds it, waits up to `wait`
    /// for it to be released (an actor's successor after a restart), then fails with
    /// [`StoreError::AlreadyOwned`].
    pub async fn claim(&self, name: &str, wait: Duration) -> Result<Keyspace, StoreError> {
        let deadline = Instant::now() + wait;
        loop {
            let released = self.inner.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.try_claim(name) {
                break;
            }
            if timeout_at(deadline, released).await.is_err() {
                return Err(StoreError::AlreadyOwned(name.to_string()));
            }
        }
        match self.inner.engine.keyspace(name) {
            Ok(engine) => Ok(Keyspace {
                name: name.to_string(),
                batches: self.inner.batches.of(name),
                sequence: self.inner.sequences.of(name),
                engine,
                store: self.clone(),
                damaged: self.inner.damaged.get(name).cloned(),
            }),
            Err(e) => {
                self.release(name);
                Err(e)
            }
        }
    }

    fn release(&self, name: &str) {
        self.inner
            .owned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        self.inner.released.notify_waiters();
    }

    /// Waits until every write applied so far is durable.
    pub async fn sync(&self) -> Result<(), StoreError> {
        let seq = self.inner.commit.written();
        self.inner.commit.wait_durable(seq).await
    }

    /// [`Store::sync`], then saves the commit marks: at shutdown, so that the next open can
    /// check that everything acknowledged was recovered.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        self.sync().await?;
        if let Some(marks) = self.inner.marks.clone() {
            tokio::task::spawn_blocking(move || marks.after_flush(None, true))
                .await
                .map_err(|e| StoreError::Engine(e.to_string()))?;
        }
        Ok(())
    }

    /// Why this store should not be trusted now (damaged keyspaces): empty when it can be.
    pub fn problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self.inner.damaged.values().cloned().collect();
        problems.sort();
        if let Some(full) = self.inner.commit.full() {
            problems.push(full);
        }
        problems
    }

    /// The bytes the store takes on disk (refreshed by the committer about once a second).
    pub fn size_on_disk(&self) -> u64 {
        self.inner.commit.size_on_disk()
    }

    /// The runtime's own record at `key` (see [`Store::put_record`]).
    pub fn record<V: DeserializeOwned>(&self, key: &str) -> Result<Option<V>, StoreError> {
        let meta = self.inner.engine.keyspace(META_KEYSPACE)?;
        meta.get(key.as_bytes())?.map(|b| decode(&b)).transpose()
    }

    /// Writes one of the runtime's own records (such as the shard placement this node agreed
    /// to) and returns once it is durable. These live apart from every actor's keyspace.
    pub async fn put_record<V: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &V,
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::new();
        batch.put(key.as_bytes(), value)?;
        let commit = &self.inner.commit;
        commit.check()?;
        self.inner
            .engine
            .keyspace(META_KEYSPACE)?
            .apply(&batch.ops)?;
        let seq = commit.note_write();
        commit.wait_durable(seq).await
    }

    /// Whether any keyspace whose name starts with `prefix` (`kv/` for every shard of `kv`)
    /// holds at least one entry. Blocks briefly (opens each matching keyspace).
    pub fn has_data(&self, prefix: &str) -> Result<bool, StoreError> {
        for name in self.inner.engine.keyspace_names()? {
            if name.starts_with(prefix)
                && !self
                    .inner
                    .engine
                    .keyspace(&name)?
                    .scan(b"", None, 1)?
                    .is_empty()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// How many flushes have run, and how many writes they covered: `writes / flushes` is the
    /// group-commit factor.
    pub fn commit_stats(&self) -> (u64, u64) {
        self.inner.commit.stats()
    }
}

/// Writes to apply together, atomically.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    ops: Vec<Op>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`.
    pub fn put<V: Serialize + ?Sized>(
        &mut self,
        key: &[u8],
        value: &V,
    ) -> Result<&mut Self, StoreError> {
        let bytes = encode_value(value)?;
        self.ops.push(Op::Put(key.to_vec(), bytes));
        Ok(self)
    }

    /// Sets `key` to `bytes`, encoded already.
    pub(crate) fn put_raw(&mut self, key: Vec<u8>, bytes: Vec<u8>) -> &mut Self {
        self.ops.push(Op::Put(key, bytes));
        self
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: &[u8]) -> &mut Self {
        self.ops.push(Op::Delete(key.to_vec()));
        self
    }

    /// Whether the batch has no writes.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// One actor's keyspace. Dropping it releases the claim.
pub struct Keyspace {
    name: String,
    engine: Arc<dyn KeyspaceEngine>,
    store: Store,
    /// Why this keyspace serves nothing, if it is damaged.
    damaged: Option<String>,
    /// Its batch counter ([`batches`]).
    batches: Arc<std::sync::atomic::AtomicU64>,
    /// The highest sequence its owners noted since the store opened, kept across claims.
    sequence: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Keyspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyspace")
            .field("name", &self.name)
            .finish()
    }
}

impl Drop for Keyspace {
    fn drop(&mut self) {
        self.store.release(&self.name);
    }
}

/// Encodes a value as the store keeps it.
pub(crate) fn encode_value<V: Serialize + ?Sized>(value: &V) -> Result<Vec<u8>, StoreError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|e| StoreError::Codec(e.to_string()))
}

/// Decodes a stored value (bounded like every read of the store).
pub(crate) fn decode_value<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, StoreError> {
    decode(bytes)
}

fn decode<V: DeserializeOwned>(bytes: &[u8]) -> Result<V, StoreError> {
    let config = bincode::config::standard().with_limit::<MAX_VALUE_BYTES>();
    bincode::serde::decode_from_slice::<V, _>(bytes, config)
        .map(|(v, _)| v)
        .map_err(|e| StoreError::Codec(e.to_string()))
}

#[cfg(test)]
mod tests;

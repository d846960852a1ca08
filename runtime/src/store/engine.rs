//! The embedded engine behind the store: a small trait, and sled behind it.

mod intent;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use super::StoreError;

/// Raw entries of a scan: (key, value) bytes in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// One write of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Set a key.
    Put(Vec<u8>, Vec<u8>),
    /// Remove a key.
    Delete(Vec<u8>),
}

impl Op {
    /// The key it writes.
    pub fn key(&self) -> &[u8] {
        match self {
            Self::Put(k, _) | Self::Delete(k) => k,
        }
    }
}

/// An embedded engine: named keyspaces sharing one durability point.
pub trait Engine: Send + Sync + 'static {
    /// Opens (or creates) keyspace `name`.
    fn keyspace(&self, name: &str) -> Result<Arc<dyn KeyspaceEngine>, StoreError>;
    /// Makes every write applied so far, in every keyspace, durable. Blocks.
    fn flush(&self) -> Result<(), StoreError>;
    /// Bytes used on disk.
    fn size_on_disk(&self) -> Result<u64, StoreError>;
    /// The names of the keyspaces that exist (opened once, empty or not).
    fn keyspace_names(&self) -> Result<Vec<String>, StoreError>;
    /// Opens the engine again from what is on disk, after a write error left it unusable
    /// (writes applied but not flushed are dropped: they were never acknowledged). Blocks.
    fn reopen(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// One keyspace of an [`Engine`].
pub trait KeyspaceEngine: Send + Sync + 'static {
    /// The value at `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Applies `ops` atomically (all or none become visible, and durable together).
    fn apply(&self, ops: &[Op]) -> Result<(), StoreError>;
    /// Up to `limit` entries with keys starting with `prefix` and greater than `after`.
    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError>;
    /// Up to `limit` entries with keys starting with `prefix` and less than `before`, in
    /// descending key order.
    fn scan_rev(
        &self,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError>;
}

/// The least key greater than every key starting with `prefix` (`None`: there is none).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A sled error as a store error: a full disk is named as such (the store waits for space and
/// resumes), anything else is an engine failure.
fn engine_err(e: sled::Error) -> StoreError {
    match &e {
        sled::Error::Io(io)
            if io.kind() == std::io::ErrorKind::StorageFull || io.raw_os_error() == Some(28) =>
        {
            StoreError::Full(format!(
                "the disk of this node's store is full, writes are refused until space is freed: {io}"
            ))
        }
        _ => StoreError::Engine(e.to_string()),
    }
}

/// An open sled database and the trees opened in it.
struct Open {
    db: sled::Db,
    trees: HashMap<String, sled::Tree>,
}

/// sled 0.34: one `Db` per node, one `Tree` per keyspace.
///
/// After an I/O error (a full disk) sled refuses every later operation; the only way back is
/// to open the database again from disk. So keyspaces hold a name, not a tree, and look their
/// tree up on each operation (a read lock and a map lookup, nothing next to a flush), and
/// [`Engine::reopen`] can swap the database underneath them.
pub struct SledEngine {
    /// Where and how to open it again (None: a temporary database, never reopened).
    reopen_with: Option<sled::Config>,
    /// A std lock: held to look up a tree or swap the database, never across an await.
    open: Arc<RwLock<Option<Open>>>,
    /// Keeps a temporary database's config (and so its directory) alive.
    _config: sled::Config,
}

impl std::fmt::Debug for SledEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledEngine").finish_non_exhaustive()
    }
}

impl SledEngine {
    /// Opens the database at `path`. sled's own periodic flusher is off: the store's group
    /// commit is the only one that flushes, so no two flushes ever run at once.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None);
        let db = config.open().map_err(engine_err)?;
        Ok(Self::with_db(db, Some(config.clone()), config))
    }

    /// A database in a temporary directory, removed on drop.
    pub fn temporary() -> Result<Self, StoreError> {
        let config = sled::Config::new()
            .temporary(true)
            .cache_capacity(16 * 1024 * 1024)
            .flush_every_ms(None);
        let db = config.open().map_err(engine_err)?;
        Ok(Self::with_db(db, None, config))
    }

    fn with_db(db: sled::Db, reopen_with: Option<sled::Config>, config: sled::Config) -> Self {
        Self {
            reopen_with,
            open: Arc::new(RwLock::new(Some(Open {
                db,
                trees: HashMap::new(),
            }))),
            _config: config,
        }
    }

    fn db(&self) -> Result<sled::Db, StoreError> {
        read(&self.open)
            .as_ref()
            .map(|o| o.db.clone())
            .ok_or_else(reopening)
    }
}

fn reopening() -> StoreError {
    StoreError::Full(
        "the disk of this node's store was full: the store is reopening from disk and refuses \
         writes meanwhile"
            .into(),
    )
}

fn read(lock: &RwLock<Option<Open>>) -> std::sync::RwLockReadGuard<'_, Option<Open>> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write(lock: &RwLock<Option<Open>>) -> std::sync::RwLockWriteGuard<'_, Option<Open>> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

/// The tree of keyspace `name` in the database open now.
fn tree(lock: &RwLock<Option<Open>>, name: &str) -> Result<sled::Tree, StoreError> {
    if let Some(tree) = read(lock).as_ref().and_then(|o| o.trees.get(name)) {
        return Ok(tree.clone());
    }
    let mut guard = write(lock);
    let open = guard.as_mut().ok_or_else(reopening)?;
    let tree = open.db.open_tree(name.as_bytes()).map_err(engine_err)?;
    // First opened since the database was: finish a write a crash interrupted.
    intent::recover(&tree)?;
    open.trees.insert(name.to_string(), tree.clone());
    Ok(tree)
}

struct SledKeyspace {
    name: String,
    open: Arc<RwLock<Option<Open>>>,
    /// One write of several keys at a time ([`intent`]).
    intents: Mutex<()>,
}

impl SledKeyspace {
    fn tree(&self) -> Result<sled::Tree, StoreError> {
        tree(&self.open, &self.name)
    }
}

impl Engine for SledEngine {
    fn keyspace(&self, name: &str) -> Result<Arc<dyn KeyspaceEngine>, StoreError> {
        tree(&self.open, name)?;
        Ok(Arc::new(SledKeyspace {
            name: name.to_string(),
            open: Arc::clone(&self.open),
            intents: Mutex::new(()),
        }))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db()?.flush().map(|_| ()).map_err(engine_err)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db()?.size_on_disk().map_err(engine_err)
    }

    fn keyspace_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .db()?
            .tree_names()
            .into_iter()
            .filter_map(|n| String::from_utf8(n.to_vec()).ok())
            .filter(|n| n != "__sled__default")
            .collect())
    }

    fn reopen(&self) -> Result<(), StoreError> {
        let Some(config) = &self.reopen_with else {
            return Err(StoreError::Engine(
                "a temporary store cannot be reopened".into(),
            ));
        };
        let mut guard = write(&self.open);
        // Drop the failed database (and every tree of it) before opening the directory again:
        // sled holds a lock on it.
        drop(guard.take());
        let db = config.open().map_err(engine_err)?;
        *guard = Some(Open {
            db,
            trees: HashMap::new(),
        });
        Ok(())
    }
}

impl KeyspaceEngine for SledKeyspace {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree()?
            .get(key)
            .map_err(engine_err)?
            .map(|v| v.to_vec()))
    }

    fn apply(&self, ops: &[Op]) -> Result<(), StoreError> {
        match ops {
            [] => return Ok(()),
            // One key is atomic as it is.
            [Op::Put(k, v)] => {
                return self
                    .tree()?
                    .insert(k.as_slice(), v.as_slice())
                    .map(|_| ())
                    .map_err(engine_err);
            }
            [Op::Delete(k)] => {
                return self
                    .tree()?
                    .remove(k.as_slice())
                    .map(|_| ())
                    .map_err(engine_err);
            }
            _ => {}
        }
        if ops.len() <= intent::MAX_OPS {
            // A few keys (an entity command's): not sled's batches, which serialize every
            // writer of the process ([`intent`]).
            return intent::apply(&self.tree()?, ops, &self.intents);
        }
        // Many keys: one lock for all of them costs less than an intent's copy of them.
        let mut batch = sled::Batch::default();
        for op in ops {
            match op {
                Op::Put(k, v) => batch.insert(k.as_slice(), v.as_slice()),
                Op::Delete(k) => batch.remove(k.as_slice()),
            }
        }
        self.tree()?.apply_batch(batch).map_err(engine_err)
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        let tree = self.tree()?;
        let iter = match after {
            Some(after) => {
                let mut start = after.to_vec();
                start.push(0);
                tree.range(start..)
            }
            None => tree.range(prefix.to_vec()..),
        };
        collect(iter, prefix, limit)
    }

    fn scan_rev(
        &self,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        let tree = self.tree()?;
        let end = match before {
            Some(before) if before <= prefix => return Ok(Vec::new()),
            Some(before) => Some(before.to_vec()),
            None => prefix_end(prefix),
        };
        let iter = match end {
            Some(end) => tree.range(prefix.to_vec()..end),
            None => tree.range(prefix.to_vec()..),
        };
        collect(iter.rev(), prefix, limit)
    }
}

/// Up to `limit` entries of `iter` while their keys start with `prefix` (the intent record
/// left out).
fn collect(
    iter: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    prefix: &[u8],
    limit: usize,
) -> Result<Entries, StoreError> {
    let mut out = Vec::new();
    for item in iter {
        let (k, v) = item.map_err(engine_err)?;
        if !k.starts_with(prefix) || out.len() >= limit {
            break;
        }
        if k == intent::INTENT_KEY {
            continue;
        }
        out.push((k.to_vec(), v.to_vec()));
    }
    Ok(out)
}

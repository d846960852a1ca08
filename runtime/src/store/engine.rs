//! The embedded engine behind the store: a small trait, and sled behind it.

use std::path::Path;
use std::sync::Arc;

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
}

fn engine_err(e: sled::Error) -> StoreError {
    StoreError::Engine(e.to_string())
}

/// sled 0.34: one `Db` per node, one `Tree` per keyspace.
pub struct SledEngine {
    db: sled::Db,
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
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None)
            .open()
            .map_err(engine_err)?;
        Ok(Self { db })
    }

    /// A database in a temporary directory, removed on drop.
    pub fn temporary() -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(16 * 1024 * 1024)
            .flush_every_ms(None)
            .open()
            .map_err(engine_err)?;
        Ok(Self { db })
    }
}

struct SledKeyspace(sled::Tree);

impl Engine for SledEngine {
    fn keyspace(&self, name: &str) -> Result<Arc<dyn KeyspaceEngine>, StoreError> {
        let tree = self.db.open_tree(name.as_bytes()).map_err(engine_err)?;
        Ok(Arc::new(SledKeyspace(tree)))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(engine_err)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(engine_err)
    }

    fn keyspace_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .db
            .tree_names()
            .into_iter()
            .filter_map(|n| String::from_utf8(n.to_vec()).ok())
            .filter(|n| n != "__sled__default")
            .collect())
    }
}

impl KeyspaceEngine for SledKeyspace {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(key).map_err(engine_err)?.map(|v| v.to_vec()))
    }

    fn apply(&self, ops: &[Op]) -> Result<(), StoreError> {
        if let [Op::Put(k, v)] = ops {
            // A single put needs no batch.
            return self
                .0
                .insert(k.as_slice(), v.as_slice())
                .map(|_| ())
                .map_err(engine_err);
        }
        let mut batch = sled::Batch::default();
        for op in ops {
            match op {
                Op::Put(k, v) => batch.insert(k.as_slice(), v.as_slice()),
                Op::Delete(k) => batch.remove(k.as_slice()),
            }
        }
        self.0.apply_batch(batch).map_err(engine_err)
    }

    fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, StoreError> {
        let mut out = Vec::new();
        let iter = match after {
            Some(after) => {
                let mut start = after.to_vec();
                start.push(0);
                self.0.range(start..)
            }
            None => self.0.range(prefix.to_vec()..),
        };
        for item in iter {
            let (k, v) = item.map_err(engine_err)?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}

//! [`Durable`]: a point in the store's sequence of applied writes that something (a reply)
//! waits for, so that nothing leaves before what it depends on is on disk.

use super::{Store, StoreError, commit};

/// A write applied to the store and not yet known durable ([`super::Keyspace::apply`]), or
/// what a reader saw ([`super::Keyspace::seen`]).
pub struct Durable {
    pub(super) seq: u64,
    /// The keyspace's number for the batch, if this is a write ([`super::batches`]).
    pub(super) batch: Option<u64>,
    pub(super) store: Store,
    pub(super) after: After,
}

/// What the wait must do besides waiting for `seq`.
pub(super) enum After {
    Nothing,
    /// A write: if the flush fails for a full disk, its keys must not be shown until the
    /// store reopens; counted in flight until the wait ends, so that readers can settle.
    Write {
        keyspace: String,
        keys: Vec<Vec<u8>>,
        _inflight: commit::OwnedInflight,
        /// The commit's trace span (empty while export is off): ends once durable.
        span: crate::telemetry::Span,
    },
    /// A read of `key`: while the disk is full, what it read is good once the writes in
    /// flight have settled and none that failed touched it.
    Read {
        keyspace: String,
        key: Vec<u8>,
    },
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl Durable {
    /// The number of the batch this write applied, in its keyspace's sequence (None for what
    /// a read saw): numbers only grow, across restarts too.
    pub fn batch(&self) -> Option<u64> {
        self.batch
    }

    /// Whether the write (or what was read) is durable already: then [`Durable::wait`] would
    /// return `Ok` at once, and a reply that waits for it can leave without a wait (a read of
    /// a shard with nothing in flight, the usual case).
    pub fn is_reached(&self) -> bool {
        self.store.inner.commit.is_durable(self.seq)
    }

    /// Waits until the write (or what was read) is durable; fails if a flush failed first
    /// (a write may or may not survive: see [`StoreError`]).
    pub async fn wait(mut self) -> Result<(), StoreError> {
        let commit = &self.store.inner.commit;
        let result = commit.wait_durable(self.seq).await;
        if let After::Write { span, .. } = &mut self.after
            && span.is_recording()
        {
            span.set("troupe.store.group_writes", commit.last_group() as i64);
            if let Err(e) = &result {
                span.fail(e);
            }
        }
        match (result, &self.after) {
            (Err(StoreError::Full(why)), After::Write { keyspace, keys, .. }) => {
                // Applied but not durable: readers must not see it until the reopen.
                commit.taint_keys(keyspace, keys.iter().cloned());
                Err(StoreError::Full(why))
            }
            (Err(StoreError::Full(_)), After::Read { keyspace, key }) => {
                commit.settle().await?;
                commit.readable(keyspace, Some(key))
            }
            (result, _) => result,
        }
    }
}

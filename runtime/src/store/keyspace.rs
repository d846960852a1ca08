//! A keyspace's reads and writes: what its owner does with it.

use serde::de::DeserializeOwned;

use super::durable::{After, Durable};
use super::{Keyspace, StoreError, WriteBatch, batches, decode};

impl Keyspace {
    /// The keyspace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Why the keyspace serves nothing, if it is damaged (every read and write fails with
    /// [`StoreError::Damaged`]).
    pub fn damaged(&self) -> Option<&str> {
        self.damaged.as_deref()
    }

    /// A floor for sequences that must keep growing across restarts without a counter on
    /// disk: above every batch number this keyspace was given before its store last opened
    /// ([`batches`]), and at or above every sequence noted for it since
    /// ([`Keyspace::note_sequence`]), by this owner or an earlier one in this process (a
    /// shard restarted by its supervisor must not number anything again).
    pub fn sequence_floor(&self) -> u64 {
        (self.store.inner.generation << 32)
            .max(self.sequence.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Notes that sequences below `next` are taken (see [`Keyspace::sequence_floor`]).
    pub fn note_sequence(&self, next: u64) {
        self.sequence
            .fetch_max(next, std::sync::atomic::Ordering::AcqRel);
    }

    /// Fails if the keyspace is damaged.
    fn check(&self) -> Result<(), StoreError> {
        match &self.damaged {
            Some(why) => Err(StoreError::Damaged(why.clone())),
            None => Ok(()),
        }
    }

    /// The value at `key`, as applied (see [`Keyspace::durable`] for what is durable).
    pub fn get<V: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<V>, StoreError> {
        self.check()?;
        self.store.inner.commit.readable(&self.name, Some(key))?;
        self.engine.get(key)?.map(|b| decode(&b)).transpose()
    }

    /// As [`Keyspace::get`], the value as stored (encoded).
    pub(crate) fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        self.store.inner.commit.readable(&self.name, Some(key))?;
        self.engine.get(key)
    }

    /// Up to `limit` entries whose keys start with `prefix`, in key order, after `after`.
    pub fn scan<V: DeserializeOwned>(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, V)>, StoreError> {
        self.scan_raw(prefix, after, limit)?
            .into_iter()
            .map(|(k, v)| decode(&v).map(|v| (k, v)))
            .collect()
    }

    /// As [`Keyspace::scan`], the values as stored (encoded).
    pub fn scan_raw(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<super::Entries, StoreError> {
        self.check()?;
        self.store.inner.commit.readable(&self.name, None)?;
        self.engine.scan(prefix, after, limit)
    }

    /// Up to `limit` entries whose keys start with `prefix` and come before `before`, in
    /// descending key order, as stored (encoded).
    pub fn scan_rev_raw(
        &self,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Result<super::Entries, StoreError> {
        self.check()?;
        self.store.inner.commit.readable(&self.name, None)?;
        self.engine.scan_rev(prefix, before, limit)
    }

    /// Applies `batch` atomically and returns once it is durable.
    pub async fn commit(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.check()?;
        let commit = &self.store.inner.commit;
        let _inflight = commit.begin_write();
        commit.check()?;
        if let Some(marks) = &self.store.inner.marks {
            marks.note(&self.name);
        }
        batches::next(self.store.inner.generation, &self.batches);
        let result = match self.engine.apply(&batch.ops) {
            Ok(()) => commit.wait_durable(commit.note_write()).await,
            Err(e) => Err(e),
        };
        if let Err(StoreError::Full(_)) = &result {
            // Applied (maybe) but not durable: readers must not see it until the reopen.
            commit.taint_keys(&self.name, batch.ops.iter().map(|op| op.key().to_vec()));
        }
        result
    }

    /// Waits until every write applied to the store so far (this keyspace's included) is
    /// durable: a reader that must show only durable data calls this first.
    pub async fn durable(&self) -> Result<(), StoreError> {
        let commit = &self.store.inner.commit;
        if commit.full().is_some() {
            // While the disk is full, what no failed write touched is what is on disk (each
            // read checks its keys).
            return commit.settle().await;
        }
        self.store.sync().await
    }

    /// Applies `batch` atomically and returns at once, with the [`Durable`] to wait on before
    /// anything that depends on it (a reply) leaves: an actor that must not wait for the disk
    /// between two messages hands it to [`crate::service::RequestContext::reply_when_durable`].
    /// The write counts as in flight until that wait ends, like one in [`Keyspace::commit`]:
    /// its keyspace is marked for damage detection, and if the disk fills before it is durable
    /// its keys are not shown until the store reopens.
    pub fn apply(&self, batch: WriteBatch) -> Result<Durable, StoreError> {
        self.check()?;
        let commit = &self.store.inner.commit;
        let inflight = commit.begin_write_owned();
        commit.check()?;
        if batch.is_empty() {
            return Ok(Durable {
                seq: commit.written(),
                batch: None,
                store: self.store.clone(),
                after: After::Nothing,
            });
        }
        if let Some(marks) = &self.store.inner.marks {
            marks.note(&self.name);
        }
        let number = batches::next(self.store.inner.generation, &self.batches);
        // The commit's span, a child of the work that wrote (ends once durable).
        let span =
            crate::telemetry::Span::child_of_current(crate::telemetry::Kind::Internal, || {
                commit_span(&self.name, &batch.ops)
            })
            .map(|(_, span)| span)
            .unwrap_or_default();
        self.engine.apply(&batch.ops)?;
        Ok(Durable {
            seq: commit.note_write(),
            batch: Some(number),
            store: self.store.clone(),
            after: After::Write {
                keyspace: self.name.clone(),
                keys: batch.ops.iter().map(|op| op.key().to_vec()).collect(),
                _inflight: inflight,
                span,
            },
        })
    }
}

impl Keyspace {
    /// What a reader of `key` waits on before it shows what it read: every write applied to
    /// the store so far (while the disk is full: the writes in flight have settled and none
    /// that failed touched `key`).
    pub fn seen(&self, key: &[u8]) -> Durable {
        Durable {
            seq: self.store.inner.commit.written(),
            batch: None,
            store: self.store.clone(),
            after: After::Read {
                keyspace: self.name.clone(),
                key: key.to_vec(),
            },
        }
    }
}

/// The name and attributes of a commit's span: the keyspace, the writes and their bytes.
fn commit_span(
    keyspace: &str,
    ops: &[super::engine::Op],
) -> (
    std::borrow::Cow<'static, str>,
    Vec<crate::telemetry::KeyValue>,
) {
    use crate::telemetry::KeyValue;
    let bytes: usize = ops
        .iter()
        .map(|op| match op {
            super::engine::Op::Put(k, v) => k.len() + v.len(),
            super::engine::Op::Delete(k) => k.len(),
        })
        .sum();
    (
        "store commit".into(),
        vec![
            KeyValue::new("troupe.store.keyspace", keyspace.to_string()),
            KeyValue::new("troupe.store.writes", ops.len() as i64),
            KeyValue::new("troupe.store.bytes", bytes as i64),
        ],
    )
}

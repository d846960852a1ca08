//! Numbered batches: each keyspace's writes form an ordered sequence of numbered batches, so
//! that what one shard committed can be named, compared and (a later issue) replicated in
//! order.
//!
//! A batch's number is `generation << 32 | n`: the store's generation, one more at every open
//! of the store (kept in its own records), and `n` counting the keyspace's batches since that
//! open from 1, across claims of the keyspace (a shard restarted in the same process goes on
//! where its predecessor stopped). So a keyspace's batch numbers only grow, across shard
//! restarts and node restarts alike, at no cost per batch beyond an atomic increment; the
//! numbers have a gap at each open of the store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::engine::Engine;
use super::{META_KEYSPACE, Op, StoreError};

/// The store's record of its generation.
const GENERATION_KEY: &[u8] = b"batches.generation";

/// Reads the store's last generation and durably records the next one, which it returns. If
/// the record cannot be written (a full disk), the next one is still used, with a warning:
/// numbers may repeat after the next open then.
pub(super) fn next_generation(engine: &dyn Engine) -> u64 {
    let read = || -> Result<u64, StoreError> {
        let meta = engine.keyspace(META_KEYSPACE)?;
        Ok(meta
            .get(GENERATION_KEY)?
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
            .map_or(0, u64::from_be_bytes))
    };
    let last = read().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot read the store's batch generation");
        0
    });
    let next = last.saturating_add(1);
    let write = || -> Result<(), StoreError> {
        let meta = engine.keyspace(META_KEYSPACE)?;
        meta.apply(&[Op::Put(
            GENERATION_KEY.to_vec(),
            next.to_be_bytes().to_vec(),
        )])?;
        engine.flush()
    };
    if let Err(e) = write() {
        tracing::warn!(error = %e, generation = next, "cannot record the store's batch generation: batch numbers may repeat after the next restart");
    }
    next
}

/// Each keyspace's batch counter since the store opened.
#[derive(Default)]
pub(super) struct Counters {
    /// A std mutex: held to look up or insert a counter at a claim only.
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

impl Counters {
    /// The counter of keyspace `name`.
    pub(super) fn of(&self, name: &str) -> Arc<AtomicU64> {
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(counters.entry(name.to_string()).or_default())
    }
}

/// The number of the next batch of a keyspace whose counter is `counter`.
pub(super) fn next(generation: u64, counter: &AtomicU64) -> u64 {
    let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
    (generation << 32) | (n & u64::from(u32::MAX))
}

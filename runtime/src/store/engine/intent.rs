//! Atomic writes of several keys on sled without sled's batches.
//!
//! sled 0.34's `Tree::apply_batch` takes a process-wide write lock for every batch (its
//! "concurrency control"): with 64 writers, durable writes of two keys ran at 10.6k/s as sled
//! batches where two single inserts each ran at 77-168k/s (`cargo bench --bench runtime --
//! store` prints both). Entity commands write several keys at once (the state and an event
//! for the outbox, a delivery's dedupe mark, a timer), so this cost every such command a
//! factor of ten.
//!
//! Instead, a write of several keys is an intent: the whole write is first recorded under one
//! reserved key of the keyspace, then each key is written on its own, then the intent is
//! removed. sled recovers a prefix of its log after a crash, in the order things were written,
//! so the recovered keyspace holds either no trace of the write, or the intent with some of
//! its keys (the intent is then applied again: puts and removes are idempotent), or all of it
//! with the intent gone. The keyspace is recovered that way when it is first opened. One
//! write of several keys at a time per keyspace (a lock); single-key writes need no intent,
//! and writes of more than [`MAX_OPS`] keys are sled batches.

use std::sync::Mutex;

use super::super::StoreError;
use super::{Op, engine_err};

/// The most keys written through an intent: beyond, the intent's copy of every value costs
/// more than sled's lock (a bulk load of 100-key batches took three times the disk through
/// intents), so larger writes are sled batches.
pub(super) const MAX_OPS: usize = 8;

/// The reserved key of a keyspace's intent (never shown by a scan).
pub(super) const INTENT_KEY: &[u8] = b"\xff\xfetroupe.intent";

/// Encodes `ops`: per op a tag (0 put, 1 remove), the key's length (u32 BE) and the key, and
/// for a put the value's length and the value.
fn encode(ops: &[Op]) -> Vec<u8> {
    let size: usize = ops
        .iter()
        .map(|op| match op {
            Op::Put(k, v) => 9 + k.len() + v.len(),
            Op::Delete(k) => 5 + k.len(),
        })
        .sum();
    let mut out = Vec::with_capacity(size);
    let field = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    for op in ops {
        match op {
            Op::Put(k, v) => {
                out.push(0);
                field(&mut out, k);
                field(&mut out, v);
            }
            Op::Delete(k) => {
                out.push(1);
                field(&mut out, k);
            }
        }
    }
    out
}

/// Decodes what [`encode`] wrote; None if it is not that.
fn decode(mut bytes: &[u8]) -> Option<Vec<Op>> {
    fn field<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        if rest.len() < len {
            return None;
        }
        let (value, rest) = rest.split_at(len);
        *bytes = rest;
        Some(value)
    }
    let mut ops = Vec::new();
    while let Some((tag, rest)) = bytes.split_first() {
        bytes = rest;
        let key = field(&mut bytes)?.to_vec();
        ops.push(match tag {
            0 => Op::Put(key, field(&mut bytes)?.to_vec()),
            1 => Op::Delete(key),
            _ => return None,
        });
    }
    Some(ops)
}

fn apply_one(tree: &sled::Tree, op: &Op) -> Result<(), StoreError> {
    match op {
        Op::Put(k, v) => tree.insert(k.as_slice(), v.as_slice()).map(|_| ()),
        Op::Delete(k) => tree.remove(k.as_slice()).map(|_| ()),
    }
    .map_err(engine_err)
}

/// Writes `ops` to `tree` atomically (see the module docs); `one_at_a_time` is the keyspace's.
pub(super) fn apply(
    tree: &sled::Tree,
    ops: &[Op],
    one_at_a_time: &Mutex<()>,
) -> Result<(), StoreError> {
    let _one = one_at_a_time.lock().unwrap_or_else(|p| p.into_inner());
    tree.insert(INTENT_KEY, encode(ops)).map_err(engine_err)?;
    for op in ops {
        apply_one(tree, op)?;
    }
    tree.remove(INTENT_KEY).map_err(engine_err)?;
    Ok(())
}

/// Completes the write a crash interrupted, if any: called when the keyspace is opened.
pub(super) fn recover(tree: &sled::Tree) -> Result<(), StoreError> {
    let Some(bytes) = tree.get(INTENT_KEY).map_err(engine_err)? else {
        return Ok(());
    };
    let ops = decode(&bytes).ok_or_else(|| {
        StoreError::Engine("the record of an interrupted write does not decode".into())
    })?;
    for op in &ops {
        apply_one(tree, op)?;
    }
    tree.remove(INTENT_KEY).map_err(engine_err)?;
    tracing::info!(
        writes = ops.len(),
        "completed a write a crash had interrupted"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn temporary_tree() -> sled::Tree {
        let db = sled::Config::new().temporary(true).open().unwrap();
        db.open_tree("t").unwrap()
    }

    #[test]
    fn an_intent_round_trips_and_garbage_is_refused() {
        let ops = vec![
            Op::Put(b"a".to_vec(), b"1".to_vec()),
            Op::Delete(b"b".to_vec()),
            Op::Put(Vec::new(), Vec::new()),
        ];
        assert_eq!(decode(&encode(&ops)), Some(ops));
        assert_eq!(decode(&[0, 0, 0, 0, 9]), None);
        assert_eq!(decode(&[7, 0, 0, 0, 0]), None);
    }

    #[test]
    fn an_interrupted_write_is_completed_when_the_keyspace_opens() {
        let tree = temporary_tree();
        tree.insert(b"b", b"old".to_vec()).unwrap();
        let ops = vec![
            Op::Put(b"a".to_vec(), b"1".to_vec()),
            Op::Delete(b"b".to_vec()),
        ];
        // As a crash would leave it: the intent and the first key, not the second.
        tree.insert(INTENT_KEY, encode(&ops)).unwrap();
        tree.insert(b"a", b"1".to_vec()).unwrap();
        recover(&tree).unwrap();
        assert_eq!(tree.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(tree.get(b"b").unwrap(), None);
        assert_eq!(tree.get(INTENT_KEY).unwrap(), None);
        // Nothing to do the second time.
        recover(&tree).unwrap();
        let lock = Mutex::new(());
        apply(&tree, &ops, &lock).unwrap();
        assert_eq!(tree.get(INTENT_KEY).unwrap(), None, "removed once applied");
    }
}

//! Entries: the many small records an entity keeps beside its state, each under its own key.
//!
//! An entity's state is read and written whole by every command. That suits what is small and
//! always needed (a product's stock, a wallet's balance), but not what grows with use: the
//! keys a product remembers reservations by, the charges of a wallet, the orders of a user.
//! Kept in the state, each of those makes every command read and rewrite all of them.
//!
//! Entries are named by bytes, kept in the entity's shard keyspace under the entity's own
//! prefix, and read and written one at a time through the command's [`Context`]:
//! [`Context::entry`], [`Context::put_entry`], [`Context::delete_entry`] and, for a range in
//! name order, [`Context::entries`]. A handler's writes are written in the same atomic batch
//! as its state change and effects, and only if it succeeds; it reads its own writes. Removing
//! the entity ([`Context::remove`]) removes its entries too.
//!
//! A read that fails (a damaged record, a failing disk) makes the command fail with a store
//! failure whatever the handler answers, and nothing it did is written: the handler sees the
//! entry as absent, which it may act on, but none of that survives.
//!
//! ```no_run
//! # use troupe_runtime::entity::{Command, Context, Entity};
//! # fn remember<E: Entity>(cx: &mut Context<'_, E>, key: &str) -> bool {
//! // Whether `key` was seen before, remembering it now.
//! let seen = cx.entry::<u64>(key.as_bytes()).is_some();
//! cx.put_entry(key.as_bytes(), &1u64);
//! seen
//! # }
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Context, Entity};
use crate::store::{Keyspace, StoreError, WriteBatch};

/// The prefix of the entities' entries in a shard's keyspace.
pub(crate) const ENTRY_PREFIX: &[u8] = b"e/";

/// Entries read from the store at most per page while removing an entity.
const REMOVE_PAGE: usize = 1024;

/// The key of entry `name` of entity `id`: the id's length comes before the id, so that no
/// id's entries are mistaken for another's whose id starts the same.
fn entry_key(id: &[u8], name: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix_len(id) + name.len());
    key.extend_from_slice(ENTRY_PREFIX);
    key.extend_from_slice(&u32::try_from(id.len()).unwrap_or(u32::MAX).to_be_bytes());
    key.extend_from_slice(id);
    key.extend_from_slice(name);
    key
}

/// The length of the prefix of entity `id`'s entries.
fn prefix_len(id: &[u8]) -> usize {
    ENTRY_PREFIX.len() + 4 + id.len()
}

/// One command's view of its entity's entries: the store, and its own writes on top.
#[derive(Default)]
pub(crate) struct Entries<'a> {
    keyspace: Option<&'a Keyspace>,
    /// The entity's id key (its entries' keys are made from it only when used).
    id: &'a [u8],
    /// This command's writes by full key, encoded (`None`: deleted).
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Why a read failed, if one did: the command then fails.
    failed: RefCell<Option<String>>,
}

impl<'a> Entries<'a> {
    /// The entries of the entity whose id key is `id`, in `keyspace`.
    pub(crate) fn of(keyspace: &'a Keyspace, id: &'a [u8]) -> Self {
        Self {
            keyspace: Some(keyspace),
            id,
            ..Self::default()
        }
    }

    fn key(&self, name: &[u8]) -> Vec<u8> {
        entry_key(self.id, name)
    }

    fn fail(&self, why: impl std::fmt::Display) {
        self.failed
            .borrow_mut()
            .get_or_insert_with(|| why.to_string());
    }

    /// Why a read failed, if one did.
    pub(crate) fn take_failure(&mut self) -> Option<String> {
        self.failed.get_mut().take()
    }

    /// Adds this command's writes to `batch`; with `remove_all`, deletes every entry first
    /// (the entity was removed), keeping only what the command wrote after.
    pub(crate) fn write(self, batch: &mut WriteBatch, remove_all: bool) -> Result<(), StoreError> {
        if remove_all && let Some(keyspace) = self.keyspace {
            let mut after: Option<Vec<u8>> = None;
            loop {
                let page = keyspace.scan_raw(&self.key(b""), after.as_deref(), REMOVE_PAGE)?;
                let Some((last, _)) = page.last() else { break };
                after = Some(last.clone());
                for (key, _) in &page {
                    if !self.pending.contains_key(key) {
                        batch.delete(key);
                    }
                }
            }
        }
        for (key, value) in self.pending {
            match value {
                Some(bytes) => batch.put_raw(key, bytes),
                None => batch.delete(&key),
            };
        }
        Ok(())
    }
}

impl<E: Entity> Context<'_, E> {
    /// Entry `name` of this entity, if it has one (see [`crate::entity::entries`]).
    pub fn entry<T: DeserializeOwned>(&self, name: &[u8]) -> Option<T> {
        let entries = &self.entries;
        let key = entries.key(name);
        let bytes = match entries.pending.get(&key) {
            Some(pending) => pending.clone()?,
            None => match entries.keyspace?.get_raw(&key) {
                Ok(found) => found?,
                Err(e) => {
                    entries.fail(e);
                    return None;
                }
            },
        };
        match crate::store::decode_value(&bytes) {
            Ok(value) => Some(value),
            Err(e) => {
                entries.fail(format!("entry of {} {}: {e}", E::NAME, self.id));
                None
            }
        }
    }

    /// Sets entry `name` to `value`, written with this command's batch if it succeeds.
    pub fn put_entry<T: Serialize + ?Sized>(&mut self, name: &[u8], value: &T) {
        match crate::store::encode_value(value) {
            Ok(bytes) => {
                let key = self.entries.key(name);
                self.entries.pending.insert(key, Some(bytes));
            }
            Err(why) => self.broken = Some(why.to_string()),
        }
    }

    /// Deletes entry `name` (nothing if there is none), with this command's batch.
    pub fn delete_entry(&mut self, name: &[u8]) {
        let key = self.entries.key(name);
        self.entries.pending.insert(key, None);
    }

    /// Up to `limit` entries whose names start with `prefix` and come after `after`, in name
    /// order, as (name, value). This command's own writes are included.
    pub fn entries<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Vec<(Vec<u8>, T)> {
        self.range(prefix, after, limit, false)
    }

    /// As [`Context::entries`], in descending name order: those that come before `before`.
    pub fn entries_rev<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
        before: Option<&[u8]>,
        limit: usize,
    ) -> Vec<(Vec<u8>, T)> {
        self.range(prefix, before, limit, true)
    }

    fn range<T: DeserializeOwned>(
        &self,
        prefix: &[u8],
        from: Option<&[u8]>,
        limit: usize,
        rev: bool,
    ) -> Vec<(Vec<u8>, T)> {
        let entries = &self.entries;
        let full = entries.key(prefix);
        let from = from.map(|name| entries.key(name));
        let beyond = |key: &[u8]| match &from {
            Some(from) if rev => key < from.as_slice(),
            Some(from) => key > from.as_slice(),
            None => true,
        };
        // This command's writes in range (a handful: they are all looked at).
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = entries
            .pending
            .iter()
            .filter(|(key, _)| key.starts_with(&full) && beyond(key))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let deleted = merged.values().filter(|v| v.is_none()).count();
        if let Some(keyspace) = entries.keyspace {
            // Enough that the deletions among them cannot leave fewer than `limit`.
            let wanted = limit.saturating_add(deleted);
            let stored = if rev {
                keyspace.scan_rev_raw(&full, from.as_deref(), wanted)
            } else {
                keyspace.scan_raw(&full, from.as_deref(), wanted)
            };
            match stored {
                Ok(stored) => {
                    // A write of this command beyond the stored page cannot come out ahead of
                    // an unread stored name: at least `limit` stored names precede it.
                    for (key, value) in stored {
                        merged.entry(key).or_insert(Some(value));
                    }
                }
                Err(e) => {
                    entries.fail(e);
                    return Vec::new();
                }
            }
        }
        let mut ordered: Vec<(Vec<u8>, Option<Vec<u8>>)> = merged.into_iter().collect();
        if rev {
            ordered.reverse();
        }
        let mut out = Vec::new();
        for (key, value) in ordered {
            if out.len() == limit {
                break;
            }
            let Some(bytes) = value else { continue };
            match crate::store::decode_value(&bytes) {
                Ok(value) => out.push((key[prefix_len(entries.id)..].to_vec(), value)),
                Err(e) => {
                    entries.fail(format!("entry of {} {}: {e}", E::NAME, self.id));
                    return Vec::new();
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;

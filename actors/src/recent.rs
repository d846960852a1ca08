//! [`Recent`]: the newest records of an entity by key, each in an entry of its own, the oldest
//! forgotten first beyond a bound.
//!
//! A product remembers its reservations by key, a wallet its charges: a key is asked again
//! only by a caller retrying within minutes, so the newest few thousand are enough, but they
//! must not be rewritten by every command. Each record is an entry of the entity
//! ([`troupe_runtime::entity::entries`]); a second entry per record numbers it, so that the
//! oldest can be found and forgotten without reading the others. The entity's state keeps
//! only the two counters ([`Recent`], 16 bytes).
//!
//! The records are read and written through a [`Book`]: a command's context, or a
//! [`MemoryBook`] for tests and property tests that run without a store.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use troupe_runtime::entity::{Context, Entity};

/// Where records are kept: an entity's entries.
pub trait Book {
    /// The record named `name`.
    fn read<V: DeserializeOwned>(&self, name: &[u8]) -> Option<V>;
    /// Sets the record named `name`.
    fn write<V: Serialize>(&mut self, name: &[u8], value: &V);
    /// Removes the record named `name`.
    fn erase(&mut self, name: &[u8]);
}

impl<E: Entity> Book for Context<'_, E> {
    fn read<V: DeserializeOwned>(&self, name: &[u8]) -> Option<V> {
        self.entry(name)
    }

    fn write<V: Serialize>(&mut self, name: &[u8], value: &V) {
        self.put_entry(name, value);
    }

    fn erase(&mut self, name: &[u8]) {
        self.delete_entry(name);
    }
}

/// A [`Book`] in memory, encoded as the store would.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryBook(BTreeMap<Vec<u8>, Vec<u8>>);

impl MemoryBook {
    /// How many records it holds (numbering entries included).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Book for MemoryBook {
    fn read<V: DeserializeOwned>(&self, name: &[u8]) -> Option<V> {
        let bytes = self.0.get(name)?;
        bincode::serde::decode_from_slice(bytes, bincode::config::standard())
            .ok()
            .map(|(v, _)| v)
    }

    fn write<V: Serialize>(&mut self, name: &[u8], value: &V) {
        if let Ok(bytes) = bincode::serde::encode_to_vec(value, bincode::config::standard()) {
            self.0.insert(name.to_vec(), bytes);
        }
    }

    fn erase(&mut self, name: &[u8]) {
        self.0.remove(name);
    }
}

/// A record as kept: its number among the remembered ones (none while held).
#[derive(Serialize, Deserialize)]
struct Kept<V> {
    seq: Option<u64>,
    value: V,
}

/// The first field of a [`Kept`] alone (bincode reads a prefix of the record).
#[derive(Deserialize)]
struct Numbered {
    seq: Option<u64>,
}

/// The counters of one set of records (kept in the entity's state): the numbers of the oldest
/// remembered record and of the next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recent {
    floor: u64,
    next: u64,
}

/// The name of record `key` in the set tagged `tag`.
fn record_name(tag: u8, key: &str) -> Vec<u8> {
    let mut name = Vec::with_capacity(2 + key.len());
    name.extend_from_slice(&[tag, b'k']);
    name.extend_from_slice(key.as_bytes());
    name
}

/// The name of the entry that says which key has number `seq`.
fn number_name(tag: u8, seq: u64) -> [u8; 10] {
    let mut name = [0u8; 10];
    name[0] = tag;
    name[1] = b'n';
    name[2..].copy_from_slice(&seq.to_be_bytes());
    name
}

impl Recent {
    /// How many records are remembered (held ones not counted).
    pub fn len(&self) -> u64 {
        self.next - self.floor
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record `key` of the set tagged `tag`, held or remembered.
    pub fn get<V: DeserializeOwned>(book: &impl Book, tag: u8, key: &str) -> Option<V> {
        book.read::<Kept<V>>(&record_name(tag, key))
            .map(|kept| kept.value)
    }

    /// Keeps `value` under `key` without numbering it: it stays until [`Recent::remember`]
    /// numbers it (a reservation still open must not be forgotten).
    pub fn hold<V: Serialize>(book: &mut impl Book, tag: u8, key: &str, value: V) {
        book.write(&record_name(tag, key), &Kept { seq: None, value });
    }

    /// Sets `key` to `value` as the newest remembered record, and forgets the oldest beyond
    /// `max`. A key remembered already is numbered again (as newest).
    pub fn remember<V: Serialize>(
        &mut self,
        book: &mut impl Book,
        tag: u8,
        key: &str,
        value: V,
        max: u64,
    ) {
        let seq = self.next;
        self.next += 1;
        book.write(
            &record_name(tag, key),
            &Kept {
                seq: Some(seq),
                value,
            },
        );
        book.write(&number_name(tag, seq), &key);
        while self.len() > max {
            let oldest = number_name(tag, self.floor);
            if let Some(old_key) = book.read::<String>(&oldest) {
                let name = record_name(tag, &old_key);
                // Unless it was numbered again since, or held again.
                if book
                    .read::<Numbered>(&name)
                    .is_some_and(|kept| kept.seq == Some(self.floor))
                {
                    book.erase(&name);
                }
            }
            book.erase(&oldest);
            self.floor += 1;
        }
    }

    /// Sets remembered or held record `key` to `value`, keeping its number (nothing if there
    /// is no such record).
    pub fn update<V: Serialize>(book: &mut impl Book, tag: u8, key: &str, value: V) {
        let name = record_name(tag, key);
        if let Some(kept) = book.read::<Numbered>(&name) {
            book.write(
                &name,
                &Kept {
                    seq: kept.seq,
                    value,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_oldest_are_forgotten_first_and_held_ones_stay() {
        let mut book = MemoryBook::default();
        let mut recent = Recent::default();
        Recent::hold(&mut book, b'r', "open", 7u64);
        for n in 0..10u64 {
            recent.remember(&mut book, b'r', &format!("k{n}"), n, 4);
        }
        assert_eq!(recent.len(), 4);
        assert_eq!(Recent::get::<u64>(&book, b'r', "k5"), None);
        assert_eq!(Recent::get::<u64>(&book, b'r', "k6"), Some(6));
        assert_eq!(Recent::get::<u64>(&book, b'r', "k9"), Some(9));
        assert_eq!(Recent::get::<u64>(&book, b'r', "open"), Some(7));
        // Four records, four numbers and the held one: nothing forgotten lingers.
        assert_eq!(book.len(), 9);
    }

    #[test]
    fn a_key_remembered_again_is_kept_as_newest() {
        let mut book = MemoryBook::default();
        let mut recent = Recent::default();
        recent.remember(&mut book, b'c', "a", 1u64, 2);
        recent.remember(&mut book, b'c', "b", 2u64, 2);
        recent.remember(&mut book, b'c', "a", 3u64, 2);
        // "a"'s first number is forgotten, not "a" itself.
        assert_eq!(Recent::get::<u64>(&book, b'c', "a"), Some(3));
        assert_eq!(Recent::get::<u64>(&book, b'c', "b"), Some(2));
        Recent::update(&mut book, b'c', "b", 4u64);
        recent.remember(&mut book, b'c', "c", 5u64, 2);
        assert_eq!(Recent::get::<u64>(&book, b'c', "b"), None);
        assert_eq!(Recent::get::<u64>(&book, b'c', "a"), Some(3));
        // Updating a key it does not have creates nothing.
        Recent::update(&mut book, b'c', "zz", 9u64);
        assert_eq!(Recent::get::<u64>(&book, b'c', "zz"), None);
    }
}

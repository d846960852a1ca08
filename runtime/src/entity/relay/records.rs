//! What the relay and the subscribers keep in keyspaces: dead letters in the publishing shard,
//! and the marks of what a subscriber applied.

use serde::{Deserialize, Serialize};

use crate::entity::effects::OutboxRecord;
use crate::events::Delivery;

/// The keyspace prefix of dead letters.
pub(crate) const DEAD_PREFIX: &[u8] = b"x/";

/// An event a subscriber refused too often, kept in the publishing shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The event as it was published.
    pub event: OutboxRecord,
    /// Its number in the shard's outbox.
    pub seq: u64,
    /// The subscription that refused it.
    pub subscription: String,
    /// How many times it was refused.
    pub attempts: u32,
    /// The last refusal.
    pub last_error: String,
    /// When it was set aside, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// The key of a dead letter: by subscription, then event number.
pub(crate) fn dead_key(subscription: &str, seq: u64) -> Vec<u8> {
    let mut key = DEAD_PREFIX.to_vec();
    let name = subscription.as_bytes();
    key.extend_from_slice(&u16::try_from(name.len()).unwrap_or(u16::MAX).to_be_bytes());
    key.extend_from_slice(name);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The highest-applied mark of a subscriber for one publishing shard and key.
pub(crate) fn applied_key(delivery: &Delivery) -> Vec<u8> {
    let mut key = b"h/".to_vec();
    for part in [delivery.subscription.as_bytes(), delivery.source.as_bytes()] {
        key.extend_from_slice(&u16::try_from(part.len()).unwrap_or(u16::MAX).to_be_bytes());
        key.extend_from_slice(part);
    }
    key.extend_from_slice(&delivery.key);
    key
}

/// The mark of a re-driven event applied.
pub(crate) fn redriven_key(delivery: &Delivery) -> Vec<u8> {
    let mut key = b"r/".to_vec();
    key.extend_from_slice(&delivery.event);
    key
}

//! Ids of the business entities: UUIDs, which decide their shard by their 16 bytes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use troupe_runtime::entity::EntityId;

/// A UUID as an entity id (users, products, orders).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Id(pub uuid::Uuid);

impl Id {
    /// A fresh id, in creation-time order (UUID v7).
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}

impl Default for Id {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Id {
    type Err = uuid::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(Self)
    }
}

impl EntityId for Id {
    fn key(&self) -> Vec<u8> {
        self.0.as_bytes().to_vec()
    }

    fn from_key(key: &[u8]) -> Option<Self> {
        uuid::Uuid::from_slice(key).ok().map(Id)
    }
}

/// Milliseconds since the Unix epoch now (what entities stamp their records with; the edge
/// shows them as RFC 3339).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_id_reads_back_and_keys_by_its_bytes() {
        let id = Id::new();
        assert_eq!(id.to_string().parse::<Id>().unwrap(), id);
        assert_eq!(id.key(), id.0.as_bytes().to_vec());
        assert_eq!(Id::from_key(&id.key()), Some(id));
        assert_eq!(Id::from_key(b"short"), None);
        assert!("not-a-uuid".parse::<Id>().is_err());
    }
}

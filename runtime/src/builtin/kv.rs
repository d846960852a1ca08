//! `kv`: the built-in key-value service, and the smallest entity: the example to copy when
//! writing your own.
//!
//! Each key is an entity (its id is the key, which alone decides its shard); its state is the
//! stored value with its version. `Put` sets the next version and is answered once durable;
//! `Get` reads and is answered once what it read is durable. Neither makes the shard wait for
//! the disk (see [`crate::entity`]).
//!
//! ```no_run
//! # async fn demo(runtime: &troupe_runtime::Runtime) -> Result<(), Box<dyn std::error::Error>> {
//! use troupe_runtime::kv::{Get, Kv, Put};
//!
//! let color = runtime.entity::<Kv>("color".to_string());
//! let version = color.ask(Put { value: b"\"blue\"".to_vec() }).await?;
//! let stored = color.ask(Get).await?;
//! assert_eq!(stored.map(|s| s.version), Some(version));
//! # Ok(()) }
//! ```

use serde::{Deserialize, Serialize};

use crate::entity::{Command, Commands, Context, DomainError, DomainKind, Entity};

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// The largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// The kv entity: one per key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kv;

/// A stored value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// 1 for the first put of a key, then one more per put.
    pub version: u64,
    /// The value.
    pub value: Vec<u8>,
}

/// What kv refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum KvError {
    /// The key is empty or too long.
    #[error("key: 1 to {MAX_KEY_BYTES} bytes")]
    BadKey,
    /// The value is too large.
    #[error("a value is at most {MAX_VALUE_BYTES} bytes")]
    TooLarge,
}

impl DomainError for KvError {
    fn kind(&self) -> DomainKind {
        DomainKind::InvalidInput
    }
}

impl Entity for Kv {
    const NAME: &'static str = "kv";
    type Id = String;
    type State = Versioned;
    type Error = KvError;

    fn commands(commands: &mut Commands<Self>) {
        commands.add::<Put>().add::<Get>();
    }
}

/// Store `value` at the key: answers the new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Put {
    /// The value (at most [`MAX_VALUE_BYTES`]).
    pub value: Vec<u8>,
}

impl Command<Kv> for Put {
    const NAME: &'static str = "put";
    type Reply = u64;

    fn handle(self, cx: &mut Context<'_, Kv>) -> Result<u64, KvError> {
        if cx.id().is_empty() || cx.id().len() > MAX_KEY_BYTES {
            return Err(KvError::BadKey);
        }
        if self.value.len() > MAX_VALUE_BYTES {
            return Err(KvError::TooLarge);
        }
        let version = cx.state().map_or(1, |v| v.version + 1);
        cx.set(Versioned {
            version,
            value: self.value,
        });
        Ok(version)
    }
}

/// Read the key: its durable value, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Get;

impl Command<Kv> for Get {
    const NAME: &'static str = "get";
    const IDEMPOTENT: bool = true;
    type Reply = Option<Versioned>;

    fn handle(self, cx: &mut Context<'_, Kv>) -> Result<Option<Versioned>, KvError> {
        Ok(cx.state().cloned())
    }
}

#[cfg(test)]
mod tests;

//! Entities: the typed model that stateful business services are written in.
//!
//! # The model
//!
//! An [`Entity`] type is a kind of thing with an identity (an order, a wallet): it declares its
//! id type, the state it keeps, the commands it takes (each a type of its own with its own
//! reply, [`Command`]) and its domain error (a `thiserror` enum whose variants each have a
//! [`DomainKind`] the edge turns into a status, with no string matching).
//!
//! The id alone decides where an entity lives: `shard = hash(id) mod N` of the service's
//! shards, each shard a member actor on the node that owns it (see [`crate::shard`]). There is
//! no separate key to pass and no way to reach an entity except through its id, so a call that
//! skips sharding cannot be written. A shard keeps each entity's state in its own keyspace
//! (absent until a command creates it).
//!
//! A command's handler is a plain function over a [`Context`]: it reads and changes the state,
//! and returns its reply or a domain error. The runtime writes the change as one atomic batch
//! and sends the reply only once that batch is durable, while the shard goes on with its next
//! command (group commit covers many shards' and many commands' batches with one flush). A
//! reply that changed nothing still waits until everything the shard had applied when it read
//! is durable, so no caller ever sees state that a crash could take back. A handler that fails
//! with a domain error changes nothing.
//!
//! Through the same context a handler can tell other entities and services, publish events
//! (written to the shard's outbox in the same batch as the change) and schedule commands to
//! itself, in memory or durably; all of it leaves only once the batch is durable ([`effects`]).
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use troupe_runtime::entity::{Command, Commands, Context, DomainError, DomainKind, Entity};
//!
//! /// A counter per name.
//! struct Counter;
//!
//! #[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
//! enum CounterError {
//!     #[error("counter {0} does not exist")]
//!     NotFound(String),
//! }
//!
//! impl DomainError for CounterError {
//!     fn kind(&self) -> DomainKind {
//!         DomainKind::NotFound
//!     }
//! }
//!
//! impl Entity for Counter {
//!     const NAME: &'static str = "counters";
//!     type Id = String;
//!     type State = u64;
//!     type Error = CounterError;
//!     fn commands(commands: &mut Commands<Self>) {
//!         commands.add::<Add>().add::<Read>();
//!     }
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! struct Add(u64);
//!
//! impl Command<Counter> for Add {
//!     const NAME: &'static str = "add";
//!     type Reply = u64;
//!     fn handle(self, cx: &mut Context<'_, Counter>) -> Result<u64, CounterError> {
//!         let total = cx.state().copied().unwrap_or(0) + self.0;
//!         cx.set(total);
//!         Ok(total)
//!     }
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! struct Read;
//!
//! impl Command<Counter> for Read {
//!     const NAME: &'static str = "read";
//!     const IDEMPOTENT: bool = true;
//!     type Reply = u64;
//!     fn handle(self, cx: &mut Context<'_, Counter>) -> Result<u64, CounterError> {
//!         cx.state().copied().ok_or_else(|| CounterError::NotFound(cx.id().clone()))
//!     }
//! }
//!
//! # async fn demo(runtime: &troupe_runtime::Runtime) -> Result<(), Box<dyn std::error::Error>> {
//! // Hosted like any service (`[services.counters] shards = 16` in the configuration):
//! runtime.host(troupe_runtime::entity::EntityService::<Counter>::new()).await?;
//! let total = runtime.entity::<Counter>("visits".to_string()).ask(Add(1)).await?;
//! # Ok(()) }
//! ```

mod call;
pub mod effects;
pub mod entries;
mod relay;
mod service;
mod subscriber;
#[cfg(any(test, feature = "testsuite"))]
pub mod testing;

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Duration;

pub use call::{AskError, EntityRef};
pub use effects::{OutboxRecord, TimerId};
pub use relay::DeadLetter;
pub(crate) use service::admin;
pub use service::{EntityRequest, EntityResponse, EntityService, Failure, Shard};
pub use subscriber::ToCommand;
pub(crate) use subscriber::{entity_deliverer, service_deliverer};

/// A kind of entity: its id, its state, its commands and its domain error.
pub trait Entity: Send + Sync + Sized + 'static {
    /// The service's name, unique in the cluster (`orders`): its shards are configured under
    /// `[services.<NAME>]`.
    const NAME: &'static str;
    /// How long a caller waits for a reply unless it says otherwise.
    const TIMEOUT: Duration = Duration::from_secs(5);
    /// The entity's identity: it alone decides the shard.
    type Id: EntityId;
    /// What one entity keeps.
    type State: Serialize + DeserializeOwned + Send + 'static;
    /// What its commands can fail with.
    type Error: DomainError;

    /// Lists the commands this entity takes.
    fn commands(commands: &mut Commands<Self>);
}

/// An entity's identity.
pub trait EntityId:
    Serialize + DeserializeOwned + Clone + fmt::Display + Send + Sync + 'static
{
    /// The bytes that decide the shard and key the state: equal ids, equal bytes.
    fn key(&self) -> Vec<u8>;

    /// The id whose [`EntityId::key`] is `key`, if it is one.
    fn from_key(key: &[u8]) -> Option<Self>;
}

impl EntityId for String {
    fn key(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    fn from_key(key: &[u8]) -> Option<Self> {
        String::from_utf8(key.to_vec()).ok()
    }
}

impl EntityId for u64 {
    fn key(&self) -> Vec<u8> {
        self.to_be_bytes().to_vec()
    }

    fn from_key(key: &[u8]) -> Option<Self> {
        Some(u64::from_be_bytes(key.try_into().ok()?))
    }
}

/// A command to an entity of type `E`, with its own reply.
pub trait Command<E: Entity>: Serialize + DeserializeOwned + Send + 'static {
    /// Its name among `E`'s commands (what travels on the wire).
    const NAME: &'static str;
    /// Whether applying it twice has the effect of applying it once: such a command is sent
    /// again when its first answer was lost, others never are.
    const IDEMPOTENT: bool = false;
    /// What a caller gets back.
    type Reply: Serialize + DeserializeOwned + Send + 'static;

    /// Reads and changes the entity's state through `cx`. An `Err` changes nothing.
    fn handle(self, cx: &mut Context<'_, E>) -> Result<Self::Reply, E::Error>;
}

/// What a domain error means to a client, whichever service raised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum DomainKind {
    /// The request is malformed or out of range (400).
    InvalidInput,
    /// No such thing (404).
    NotFound,
    /// It clashes with what exists (409).
    Conflict,
    /// Well-formed but impossible (422).
    Unprocessable,
    /// Not possible now; nothing was done; try later (503).
    Unavailable,
}

/// A service's domain error.
pub trait DomainError:
    std::error::Error + Serialize + DeserializeOwned + Clone + Send + Sync + 'static
{
    /// What it means to a client.
    fn kind(&self) -> DomainKind;
}

/// What a command's handler sees and changes, and what it causes besides (see [`effects`]:
/// tells, published events, timers).
pub struct Context<'a, E: Entity> {
    id: &'a E::Id,
    state: Option<E::State>,
    changed: bool,
    /// What the handler asked for besides the change ([`effects`]).
    caused: Vec<effects::Caused>,
    /// Why an effect could not be encoded: the command then fails and writes nothing.
    broken: Option<String>,
    /// The event this command delivers, if it does.
    delivery: Option<&'a crate::events::Delivery>,
    /// Its entries ([`entries`]), read from the store and written by this command.
    entries: entries::Entries<'a>,
    /// The number the next durable timer gets (the shard's count, taken back after).
    next_timer: u64,
    /// The durable timers this command cancels (their records' keys).
    cancelled: Vec<Vec<u8>>,
}

impl<E: Entity> fmt::Debug for Context<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("entity", &E::NAME)
            .field("id", &self.id.to_string())
            .field("changed", &self.changed)
            .field("caused", &self.caused.len())
            .finish_non_exhaustive()
    }
}

impl<'a, E: Entity> Context<'a, E> {
    pub(crate) fn new(id: &'a E::Id, state: Option<E::State>) -> Self {
        Self {
            id,
            state,
            changed: false,
            caused: Vec::new(),
            broken: None,
            delivery: None,
            entries: entries::Entries::default(),
            next_timer: 0,
            cancelled: Vec::new(),
        }
    }

    /// As [`Context::new`], in a shard: the entity's entries are in `keyspace` (its id key is
    /// `id_key`), and its durable timers are numbered from `next_timer`.
    pub(crate) fn in_shard(
        id: &'a E::Id,
        state: Option<E::State>,
        keyspace: &'a crate::store::Keyspace,
        id_key: &'a [u8],
        next_timer: u64,
    ) -> Self {
        Self {
            entries: entries::Entries::of(keyspace, id_key),
            next_timer,
            ..Self::new(id, state)
        }
    }

    /// The entity's id.
    pub fn id(&self) -> &E::Id {
        self.id
    }

    /// Its state, or `None` if no command has created it.
    pub fn state(&self) -> Option<&E::State> {
        self.state.as_ref()
    }

    /// Its state, to change in place (the change is written when the handler succeeds).
    pub fn state_mut(&mut self) -> Option<&mut E::State> {
        self.changed = true;
        self.state.as_mut()
    }

    /// Sets its state (creating the entity if it did not exist).
    pub fn set(&mut self, state: E::State) {
        self.changed = true;
        self.state = Some(state);
    }

    /// Removes the entity: its state and its entries are deleted.
    pub fn remove(&mut self) {
        self.changed = true;
        self.state = None;
    }

    /// The state to write, if the handler changed it (`Some(None)` deletes), and its entries'
    /// writes.
    pub(crate) fn into_change(self) -> (Option<Option<E::State>>, entries::Entries<'a>) {
        (self.changed.then_some(self.state), self.entries)
    }
}

/// The commands of entity `E`, by name.
pub struct Commands<E: Entity> {
    handlers: std::collections::HashMap<&'static str, service::Handler<E>>,
}

impl<E: Entity> fmt::Debug for Commands<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.handlers.keys().collect();
        names.sort();
        f.debug_struct("Commands")
            .field("entity", &E::NAME)
            .field("commands", &names)
            .finish()
    }
}

impl<E: Entity> Commands<E> {
    fn of_entity() -> Self {
        let mut commands = Self {
            handlers: std::collections::HashMap::new(),
        };
        E::commands(&mut commands);
        commands
    }

    /// Adds command `C`.
    pub fn add<C: Command<E>>(&mut self) -> &mut Self {
        self.handlers.insert(C::NAME, service::run::<E, C>);
        self
    }

    fn get(&self, name: &str) -> Option<service::Handler<E>> {
        self.handlers.get(name).copied()
    }
}

/// The prefix of the entities' states in a shard's keyspace.
pub(crate) const STATE_PREFIX: &[u8] = b"s/";

/// The store key of an entity's state in its shard's keyspace.
fn state_key(id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + id.len());
    key.extend_from_slice(STATE_PREFIX);
    key.extend_from_slice(id);
    key
}

#[cfg(test)]
mod tests;

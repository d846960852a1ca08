//! The shard side of entities: one member per shard, hosted like any service, which loads an
//! entity's state, runs the command's handler, applies the change and answers once durable.

use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use super::{Command, Commands, Context, Entity, EntityId, state_key};
use crate::service::{MemberInfo, RequestContext, Service, ServiceError, decode, encode};
use crate::store::{Keyspace, WriteBatch};

/// A command as it travels to its shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRequest {
    /// The command's name.
    pub command: String,
    /// The entity's id, encoded.
    pub id: Vec<u8>,
    /// The command, encoded.
    pub payload: Vec<u8>,
}

/// A shard's answer: the encoded reply, or why there is none.
pub type EntityResponse = Result<Vec<u8>, Failure>;

/// Why a command has no reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Failure {
    /// The handler refused it (the encoded domain error); nothing changed.
    #[error("the command was refused")]
    Domain(Vec<u8>),
    /// The shard does not know the command (the caller runs another version).
    #[error("unknown command {0}")]
    UnknownCommand(String),
    /// The command or the id did not decode.
    #[error("malformed command: {0}")]
    Malformed(String),
    /// The shard's store refused the read or the write; nothing was applied.
    #[error("{0}")]
    Store(String),
}

/// How a shard runs one command type: decode, handle, encode.
pub(super) type Handler<E> = fn(&[u8], &mut Context<'_, E>) -> Result<Vec<u8>, Failure>;

pub(super) fn run<E: Entity, C: Command<E>>(
    payload: &[u8],
    cx: &mut Context<'_, E>,
) -> Result<Vec<u8>, Failure> {
    let command: C = decode(payload).map_err(|e| Failure::Malformed(e.to_string()))?;
    match command.handle(cx) {
        Ok(reply) => encode(&reply).map_err(|e| Failure::Malformed(e.to_string())),
        Err(domain) => Err(Failure::Domain(
            encode(&domain).map_err(|e| Failure::Malformed(e.to_string()))?,
        )),
    }
}

/// The store key of a shard's batch counter.
const BATCH_KEY: &[u8] = b"m/batch";

/// One shard of an entity service: its keyspace, and the number of the next batch it writes.
///
/// A shard's writes form an ordered sequence of numbered batches: every batch carries its
/// number (the counter is written in the same batch), so the sequence survives restarts and
/// can be replayed elsewhere in order (replicating a shard to other nodes builds on it).
#[derive(Debug)]
pub struct Shard {
    keyspace: Keyspace,
    next_batch: u64,
}

impl Shard {
    /// Opens a shard over its claimed keyspace.
    pub fn open(keyspace: Keyspace) -> Result<Self, crate::store::StoreError> {
        let next_batch = keyspace.get::<u64>(BATCH_KEY)?.map_or(1, |last| last + 1);
        Ok(Self {
            keyspace,
            next_batch,
        })
    }

    /// The number of the last batch this shard wrote (0: none yet).
    pub fn last_batch(&self) -> u64 {
        self.next_batch - 1
    }
}

/// Hosts the shards of entity `E` (see [`crate::Runtime::host`]).
pub struct EntityService<E: Entity> {
    commands: Commands<E>,
    _entity: PhantomData<fn() -> E>,
}

impl<E: Entity> std::fmt::Debug for EntityService<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityService")
            .field("commands", &self.commands)
            .finish()
    }
}

impl<E: Entity> Default for EntityService<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Entity> EntityService<E> {
    /// The service of entity `E`, with its commands.
    pub fn new() -> Self {
        Self {
            commands: Commands::of_entity(),
            _entity: PhantomData,
        }
    }

    /// Runs one command against `shard`: the reply waits in `rcx` for durability.
    pub(crate) fn apply(
        &self,
        shard: &mut Shard,
        request: &EntityRequest,
        rcx: &RequestContext<'_>,
    ) -> EntityResponse {
        let keyspace = &shard.keyspace;
        let Some(handler) = self.commands.get(&request.command) else {
            return Err(Failure::UnknownCommand(request.command.clone()));
        };
        let id: E::Id = decode(&request.id).map_err(|e| Failure::Malformed(e.to_string()))?;
        let key = state_key(&id.key());
        let state = keyspace
            .get::<E::State>(&key)
            .map_err(|e| Failure::Store(e.to_string()))?;
        let mut cx = Context::new(&id, state);
        let outcome = handler(&request.payload, &mut cx);
        let change = if outcome.is_ok() {
            cx.into_change()
        } else {
            None
        };
        let durable = match change {
            None => keyspace.seen(&key),
            Some(state) => {
                let mut batch = WriteBatch::new();
                match &state {
                    Some(state) => {
                        batch
                            .put(&key, state)
                            .map_err(|e| Failure::Store(e.to_string()))?;
                    }
                    None => {
                        batch.delete(&key);
                    }
                }
                batch
                    .put(BATCH_KEY, &shard.next_batch)
                    .map_err(|e| Failure::Store(e.to_string()))?;
                let durable = keyspace
                    .apply(batch)
                    .map_err(|e| Failure::Store(e.to_string()))?;
                shard.next_batch += 1;
                durable
            }
        };
        rcx.reply_when_durable(durable);
        outcome
    }
}

impl<E: Entity> Service for EntityService<E> {
    const NAME: &'static str = E::NAME;
    type Request = EntityRequest;
    type Response = EntityResponse;
    /// A shard's state is its keyspace (entities are read from it per command: sled caches
    /// what is hot) and its batch counter.
    type State = Shard;

    async fn init(&self, member: &MemberInfo) -> Result<Shard, ServiceError> {
        if !member.sharded {
            return Err(ServiceError(format!(
                "entity service {} must be configured with shards",
                E::NAME
            )));
        }
        Shard::open(member.keyspace().await?).map_err(|e| ServiceError(e.to_string()))
    }

    async fn handle(
        &self,
        shard: &mut Shard,
        request: EntityRequest,
        cx: &RequestContext<'_>,
    ) -> EntityResponse {
        self.apply(shard, &request, cx)
    }
}

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

    /// Runs one command against `keyspace`: the reply waits in `rcx` for durability.
    pub(crate) fn apply(
        &self,
        keyspace: &Keyspace,
        request: &EntityRequest,
        rcx: &RequestContext<'_>,
    ) -> EntityResponse {
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
                keyspace
                    .apply(batch)
                    .map_err(|e| Failure::Store(e.to_string()))?
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
    /// A shard's state is its keyspace: entities are read from it per command (sled caches
    /// what is hot).
    type State = Keyspace;

    async fn init(&self, member: &MemberInfo) -> Result<Keyspace, ServiceError> {
        if !member.sharded {
            return Err(ServiceError(format!(
                "entity service {} must be configured with shards",
                E::NAME
            )));
        }
        member.keyspace().await
    }

    async fn handle(
        &self,
        keyspace: &mut Keyspace,
        request: EntityRequest,
        cx: &RequestContext<'_>,
    ) -> EntityResponse {
        self.apply(keyspace, &request, cx)
    }
}

//! The shard side of entities: one member per shard, hosted like any service, which loads an
//! entity's state, runs the command's handler, applies the change and answers once durable.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::time::Duration;

pub(crate) mod admin;
mod write;

use super::effects::{self, OUTBOX_PREFIX, TIMER_PREFIX, TimerRecord};
use super::relay::{self, RelayHandle};
use super::subscriber::{self, Seen};
use super::{Command, Commands, Context, Entity, EntityId, state_key};
use crate::events::Delivery;
use crate::service::{MemberInfo, Outbound, RequestContext, Service, ServiceError, decode, encode};
use crate::store::{Keyspace, StoreError, WriteBatch};

/// A command as it travels to its shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRequest {
    /// The command's name.
    pub command: String,
    /// The entity's id, encoded.
    pub id: Vec<u8>,
    /// The command, encoded.
    pub payload: Vec<u8>,
    /// The durable timer this command is the firing of (its record's key), if it is one: the
    /// command's batch deletes the record, and a timer whose record is gone does nothing.
    pub timer: Option<Vec<u8>>,
    /// The event this command is the delivery of, if it is one: applied at most once.
    pub event: Option<Delivery>,
}

impl EntityRequest {
    /// Command `command` for entity `id` of type `E`.
    pub(crate) fn new<E: Entity, C: Command<E>>(
        id: &E::Id,
        command: &C,
        timer: Option<Vec<u8>>,
    ) -> Result<Self, crate::CallError> {
        Ok(Self {
            command: C::NAME.to_string(),
            id: encode(id)?,
            payload: encode(command)?,
            timer,
            event: None,
        })
    }
}

/// One shard of an entity service: its keyspace, and what it numbers.
#[derive(Debug)]
pub struct Shard {
    /// Shared with the relay, which reads and trims the outbox.
    keyspace: Arc<Keyspace>,
    /// The entity type's name, for its outbox records.
    entity: &'static str,
    /// How long a tell may wait for room or a link.
    timeout: Duration,
    /// Arms a timer of the entity type.
    arm: fn(&Outbound, &Arc<effects::Armed>, Vec<u8>, u64, EntityRequest),
    /// Its durable timers armed in memory (cancelled ones stop waiting).
    armed: Arc<effects::Armed>,
    /// The next outbox record's number.
    next_outbox: u64,
    /// The next durable timer's number (to tell apart timers due the same millisecond).
    next_timer: u64,
    outbound: Option<Outbound>,
    /// The relay delivering the outbox (none while no subscription is declared).
    relay: Option<RelayHandle>,
}

impl Shard {
    /// Opens a shard over its keyspace: numbers the outbox after its last record and arms
    /// every durable timer it holds.
    pub(crate) fn open<E: Entity>(
        keyspace: Keyspace,
        outbound: Option<Outbound>,
    ) -> Result<Self, StoreError> {
        let mut shard = Self {
            entity: E::NAME,
            timeout: E::TIMEOUT,
            arm: effects::arm::<E>,
            armed: Arc::default(),
            // Above every number given before, even if the outbox is empty now.
            next_outbox: keyspace.sequence_floor(),
            // Above every timer numbered before, in this process or an earlier one (a timer
            // numbered again with the same due time would overwrite a pending one).
            next_timer: keyspace.sequence_floor(),
            outbound,
            keyspace: Arc::new(keyspace),
            relay: None,
        };
        if let Some(why) = shard.keyspace.damaged() {
            // It serves nothing (each command says why); there is nothing to arm.
            tracing::error!(
                keyspace = shard.keyspace.name(),
                why,
                "a damaged shard starts without its outbox and timers"
            );
            return Ok(shard);
        }
        shard.recover::<E>()?;
        if let Some(outbound) = &shard.outbound
            && !outbound.bus().is_empty()
        {
            // Everything in the outbox now was recovered from disk: durable.
            shard.relay = Some(relay::start(
                Arc::clone(&shard.keyspace),
                Arc::clone(outbound.bus()),
                outbound.clone(),
                E::NAME,
                shard.next_outbox,
            ));
        }
        Ok(shard)
    }

    /// Numbers the outbox after its last record and arms every durable timer.
    fn recover<E: Entity>(&mut self) -> Result<(), StoreError> {
        let keyspace = &self.keyspace;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page =
                keyspace.scan::<effects::OutboxRecord>(OUTBOX_PREFIX, after.as_deref(), 1024)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            // Keyed by entity first: the highest number may be anywhere.
            for (key, _) in &page {
                if let Some(seq) = effects::outbox_seq(key) {
                    self.next_outbox = self.next_outbox.max(seq + 1);
                    self.keyspace.note_sequence(self.next_outbox);
                }
            }
        }
        let mut timers = 0;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = keyspace.scan::<TimerRecord>(TIMER_PREFIX, after.as_deref(), 1024)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (key, record) in page {
                timers += 1;
                let Some(outbound) = &self.outbound else {
                    continue;
                };
                let Ok(id) = decode::<E::Id>(&record.request.id) else {
                    continue;
                };
                let mut request = record.request;
                request.timer = Some(key);
                // It fires in the trace of the command that set it.
                crate::telemetry::with(record.trace, || {
                    effects::arm::<E>(outbound, &self.armed, id.key(), record.due_ms, request);
                });
            }
        }
        if timers > 0 {
            tracing::debug!(
                keyspace = keyspace.name(),
                timers,
                "armed the shard's durable timers"
            );
        }
        Ok(())
    }

    /// The shard's keyspace.
    pub fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    /// The events in the shard's outbox, each entity's oldest first, up to `limit` after
    /// `after` (a key of an earlier page).
    pub fn outbox(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, effects::OutboxRecord)>, StoreError> {
        self.keyspace.scan(OUTBOX_PREFIX, after, limit)
    }
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

    /// Runs one command against `shard`: the reply and the effects wait in `rcx` for
    /// durability.
    pub(crate) fn apply(
        &self,
        shard: &mut Shard,
        request: &EntityRequest,
        rcx: &RequestContext<'_>,
    ) -> EntityResponse {
        if request.command.starts_with(admin::PREFIX) {
            return shard.admin(request, rcx);
        }
        let Some(handler) = self.commands.get(&request.command) else {
            return Err(Failure::UnknownCommand(request.command.clone()));
        };
        let store = |e: StoreError| Failure::Store(e.to_string());
        let id: E::Id = decode(&request.id).map_err(|e| Failure::Malformed(e.to_string()))?;
        let id_key = id.key();
        let key = state_key(&id_key);
        let mut batch = WriteBatch::new();
        if let Some(timer) = &request.timer {
            if !timer.starts_with(TIMER_PREFIX) {
                return Err(Failure::Malformed("not a timer key".into()));
            }
            if shard
                .keyspace
                .get::<TimerRecord>(timer)
                .map_err(store)?
                .is_none()
            {
                // Fired before (its record went with that command's batch).
                return Err(Failure::Malformed("the timer has fired already".into()));
            }
            // Gone with this command's batch, whether the handler succeeds or not.
            batch.delete(timer);
        }
        let seen = match &request.event {
            Some(delivery) => Some(subscriber::seen(&shard.keyspace, delivery).map_err(store)?),
            None => None,
        };
        if let Some(Seen::Before) = seen {
            // Applied before: acknowledged once what says so is durable.
            let delivery = request
                .event
                .as_ref()
                .map(relay::applied_key)
                .unwrap_or_default();
            rcx.reply_when_durable(shard.keyspace.seen(&delivery));
            return Ok(Vec::new());
        }
        let state = shard.keyspace.get::<E::State>(&key).map_err(store)?;
        let keyspace = Arc::clone(&shard.keyspace);
        let mut cx = Context::in_shard(&id, state, &keyspace, &id_key, shard.next_timer);
        cx.delivery = request.event.as_ref();
        let outcome = handler(&request.payload, &mut cx);
        let (cancelled, next_timer) = cx.take_timers();
        if next_timer > shard.next_timer {
            // Numbers handed out are never handed out again, whatever the outcome.
            shard.next_timer = next_timer;
            shard.keyspace.note_sequence(next_timer);
        }
        if let Some(why) = cx.entries.take_failure() {
            // What the handler decided rests on a read that failed: none of it stands.
            return Err(Failure::Store(why));
        }
        let caused = match cx.take_caused() {
            Ok(caused) => caused,
            Err(why) => return Err(Failure::Malformed(why)),
        };
        let caused = if outcome.is_ok() {
            if let Some(seen) = &seen {
                seen.write(&mut batch).map_err(store)?;
            }
            for timer in &cancelled {
                batch.delete(timer);
                shard.armed.cancel(timer);
            }
            let (change, entries) = cx.into_change();
            match &change {
                Some(Some(state)) => {
                    batch.put(&key, state).map_err(store)?;
                }
                Some(None) => {
                    batch.delete(&key);
                }
                None => {}
            }
            entries
                .write(&mut batch, matches!(change, Some(None)))
                .map_err(store)?;
            caused
        } else {
            Vec::new()
        };
        let (released, published) = shard
            .write_effects(&mut batch, caused, &id_key)
            .map_err(store)?;
        let durable = if batch.is_empty() {
            shard.keyspace.seen(&key)
        } else {
            shard.keyspace.apply(batch).map_err(store)?
        };
        if let (Some(relay), false) = (&shard.relay, published.is_empty()) {
            // In the order applied; delivered once durable.
            relay.inbox().push(published);
        }
        rcx.reply_when_durable(durable);
        for effect in released {
            rcx.when_durable(effect);
        }
        outcome
    }
}

impl<E: Entity> Service for EntityService<E> {
    const NAME: &'static str = E::NAME;
    type Request = EntityRequest;
    type Response = EntityResponse;
    /// A shard's state is its keyspace: entities are read from it per command (sled caches
    /// what is hot).
    type State = Shard;

    async fn init(&self, member: &MemberInfo) -> Result<Shard, ServiceError> {
        if !member.sharded {
            return Err(ServiceError(format!(
                "entity service {} must be configured with shards",
                E::NAME
            )));
        }
        let keyspace = member.keyspace().await?;
        Shard::open::<E>(keyspace, member.outbound.clone()).map_err(|e| ServiceError(e.to_string()))
    }

    async fn handle(
        &self,
        shard: &mut Shard,
        request: EntityRequest,
        cx: &RequestContext<'_>,
    ) -> EntityResponse {
        self.apply(shard, &request, cx)
    }

    fn kind(request: &EntityRequest) -> &str {
        &request.command
    }
}

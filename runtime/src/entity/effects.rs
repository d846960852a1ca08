//! What a command causes besides changing its entity's state: a tell to another entity or
//! service, an event published into the shard's outbox, a message to itself after a delay.
//!
//! A handler asks for these through its [`Context`]; nothing leaves while it runs. The shard
//! writes the state change, the outbox records and the durable timers of one command as one
//! atomic batch, and the tells and timers are released only once that batch is durable (the
//! same moment the reply leaves). A command that fails with a domain error causes nothing.
//!
//! What each promises:
//! - **tell**: at most once, after the batch is durable (a crash between the flush and the
//!   send loses it). For a message that must arrive, publish an event (issue 9's event bus
//!   delivers the outbox at least once) or schedule a durable timer that checks.
//! - **publish**: the event is an outbox record `o/<seq>` in the shard's keyspace, written in
//!   the same batch as the state change: it exists if and only if the change does.
//! - **schedule**: a command to this entity after a delay, from memory: lost if the node stops
//!   first (a shard that restarts on the same node still gets it).
//! - **schedule_durable**: the same, kept as a timer record `t/<due><seq>` in the same batch;
//!   the shard arms every timer record when it starts, and the command it fires deletes the
//!   record in its own batch. So it fires at least once, after a crash too (a fire whose batch
//!   was not durable before a crash fires again); a fire whose record is already gone does
//!   nothing. It answers a [`TimerId`]: a later command of the entity that no longer needs it
//!   (a watchdog whose answer came) deletes it with [`Context::cancel_timer`] in its own
//!   batch, so it neither fires nor costs a write when it would have.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::time::Duration;

use super::service::EntityRequest;
use super::{Command, Context, Entity, EntityId};
use crate::service::{Outbound, Service, To, encode};

/// The keyspace prefix of outbox records.
pub(crate) const OUTBOX_PREFIX: &[u8] = b"o/";
/// The keyspace prefix of durable timers.
pub(crate) const TIMER_PREFIX: &[u8] = b"t/";

/// An event published by a command, as kept in its shard's outbox until delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// The event's unique id (a UUID v7).
    pub event: [u8; 16],
    /// The topic (`order.created`), validated when published.
    pub topic: String,
    /// The entity type that published it.
    pub entity: String,
    /// The publishing entity's id, encoded ([`EntityId::key`]).
    pub key: Vec<u8>,
    /// The event, encoded.
    pub payload: Vec<u8>,
    /// When it was published, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// A re-drive from the dead letters, for this subscription only.
    pub only: Option<String>,
    /// The trace context of the command that published it, so that its deliveries join that
    /// trace, also when the record is read back after a restart.
    pub trace: Option<crate::telemetry::TraceContext>,
}

/// A durable timer as kept in its shard's keyspace: the command to fire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TimerRecord {
    /// When it is due, in milliseconds since the Unix epoch.
    pub(crate) due_ms: u64,
    /// The command, for this entity.
    pub(crate) request: EntityRequest,
    /// The trace context of the command that set it: armed again after a restart, it still
    /// fires in that trace.
    pub(crate) trace: Option<crate::telemetry::TraceContext>,
}

/// A durable timer of an entity, to cancel it ([`Context::cancel_timer`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimerId(Vec<u8>);

/// One thing a handler asked for.
pub(crate) enum Caused {
    /// An encoded request for `service`'s member `to`.
    Tell {
        service: &'static str,
        to: To,
        request: Vec<u8>,
    },
    /// An event for the outbox.
    Publish { topic: String, payload: Vec<u8> },
    /// A command to this entity at `due_ms`, kept on disk under `key` if durable.
    Timer {
        due_ms: u64,
        request: EntityRequest,
        key: Option<Vec<u8>>,
    },
}

/// Milliseconds since the Unix epoch now (0 if the clock is before it).
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The key of outbox record `seq` of the entity whose id key is `id`: an entity's events are
/// together, in publishing order. (Keys by number alone would put every event of a shard on
/// the same last page of the tree, which sled rewrites on every flush: six times slower.)
pub(crate) fn outbox_key(id: &[u8], seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(OUTBOX_PREFIX.len() + 2 + id.len() + 8);
    key.extend_from_slice(OUTBOX_PREFIX);
    key.extend_from_slice(&u16::try_from(id.len()).unwrap_or(u16::MAX).to_be_bytes());
    key.extend_from_slice(id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The key of a durable timer: in order of when it is due.
pub(crate) fn timer_key(due_ms: u64, seq: u64) -> Vec<u8> {
    let mut key = TIMER_PREFIX.to_vec();
    key.extend_from_slice(&due_ms.to_be_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// When a timer `after` from now is due, in milliseconds since the Unix epoch.
fn due(after: Duration) -> u64 {
    now_ms().saturating_add(u64::try_from(after.as_millis()).unwrap_or(u64::MAX))
}

/// The sequence number in an outbox key.
pub(crate) fn outbox_seq(key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(OUTBOX_PREFIX)?;
    let at = rest.len().checked_sub(8)?;
    Some(u64::from_be_bytes(rest[at..].try_into().ok()?))
}

impl<E: Entity> Context<'_, E> {
    fn cause(&mut self, caused: Result<Caused, crate::CallError>) {
        match caused {
            Ok(caused) => self.caused.push(caused),
            // The command fails as malformed, and nothing it did is written.
            Err(e) => self.broken = Some(e.to_string()),
        }
    }

    /// Sends `command` to entity `id` of type `T` once this command's batch is durable (at
    /// most once: see the module docs).
    pub fn tell<T: Entity, C: Command<T>>(&mut self, id: T::Id, command: C) {
        let request = EntityRequest::new::<T, C>(&id, &command, None).and_then(|r| encode(&r));
        self.cause(request.map(|request| Caused::Tell {
            service: T::NAME,
            to: To::Shard(id.key()),
            request,
        }));
    }

    /// Sends `request` to any member of the stateless service `S` once this command's batch
    /// is durable (at most once).
    pub fn tell_service<S: Service>(&mut self, request: &S::Request) {
        self.cause(encode(request).map(|request| Caused::Tell {
            service: S::NAME,
            to: To::Any,
            request,
        }));
    }

    /// Publishes `event` on `topic`: written to the shard's outbox in the same batch as this
    /// command's state change.
    pub fn publish<V: Serialize>(&mut self, topic: &str, event: &V) {
        let caused = crate::events::Topic::parse(topic)
            .map_err(|e| crate::CallError::BadMessage(format!("topic {topic:?}: {e}")))
            .and_then(|topic| {
                let payload = encode(event)?;
                Ok(Caused::Publish {
                    topic: topic.as_str().to_string(),
                    payload,
                })
            });
        self.cause(caused);
    }

    /// The event this command is the delivery of, if it is one (see [`crate::events`]): the
    /// runtime already makes sure it is applied once.
    pub fn delivery(&self) -> Option<&crate::events::Delivery> {
        self.delivery
    }

    /// Sends `command` to this entity after `after`, from memory (lost if the node stops
    /// first).
    pub fn schedule<C: Command<E>>(&mut self, after: Duration, command: C) {
        self.timer(due(after), &command, None);
    }

    /// Sends `command` to this entity after `after`, surviving crashes and restarts (see the
    /// module docs: at least once), unless a later command cancels it with the id answered.
    pub fn schedule_durable<C: Command<E>>(&mut self, after: Duration, command: C) -> TimerId {
        let due_ms = due(after);
        let key = timer_key(due_ms, self.next_timer);
        self.next_timer += 1;
        self.timer(due_ms, &command, Some(key.clone()));
        TimerId(key)
    }

    /// Cancels durable timer `timer` of this entity with this command's batch (nothing if it
    /// has fired already).
    pub fn cancel_timer(&mut self, timer: &TimerId) {
        if timer.0.starts_with(TIMER_PREFIX) {
            self.cancelled.push(timer.0.clone());
        }
    }

    fn timer<C: Command<E>>(&mut self, due_ms: u64, command: &C, key: Option<Vec<u8>>) {
        let request = EntityRequest::new::<E, C>(self.id, command, None);
        self.cause(request.map(|request| Caused::Timer {
            due_ms,
            request,
            key,
        }));
    }

    /// The durable timers it cancels, and the number the shard's next timer gets.
    pub(crate) fn take_timers(&mut self) -> (Vec<Vec<u8>>, u64) {
        (std::mem::take(&mut self.cancelled), self.next_timer)
    }

    /// Why the effects cannot be written, if one did not encode.
    pub(crate) fn take_caused(&mut self) -> Result<Vec<Caused>, String> {
        match self.broken.take() {
            Some(why) => Err(why),
            None => Ok(std::mem::take(&mut self.caused)),
        }
    }
}

/// Fires `request` (for entity `E`, whose id key is `key`) at `due_ms` through `outbound`. A
/// durable timer whose post fails (its shard restarting, its node unreachable) tries again
/// every second for a minute; it also fires when the shard next starts.
pub(crate) fn arm<E: Entity>(
    outbound: &Outbound,
    armed: &Arc<Armed>,
    key: Vec<u8>,
    due_ms: u64,
    request: EntityRequest,
) {
    let outbound = outbound.clone();
    let request_timer = request.timer.clone();
    // Under the trace current when it is armed (the command's that set it), if any.
    let task = crate::telemetry::carried(async move {
        let wait = Duration::from_millis(due_ms.saturating_sub(now_ms()));
        tokio::time::sleep(wait).await;
        let durable = request.timer.is_some();
        let Ok(bytes) = encode(&request) else {
            return;
        };
        for attempt in 0..60 {
            match outbound
                .post(E::NAME, To::Shard(key.clone()), bytes.clone(), E::TIMEOUT)
                .await
            {
                Ok(()) => return,
                Err(e) if durable && attempt < 59 => {
                    tracing::debug!(entity = E::NAME, error = %e, attempt, "a timer could not fire yet");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => {
                    tracing::warn!(entity = E::NAME, error = %e, durable, "a timer could not fire");
                    return;
                }
            }
        }
    });
    match request_timer {
        // Durable: cancellable by its record's key.
        Some(record) => armed.arm(record, task),
        None => {
            tokio::spawn(task);
        }
    }
}

mod armed;
pub(crate) use armed::Armed;

#[cfg(test)]
mod tests;

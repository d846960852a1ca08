//! Entities as subscribers: how an event becomes a command to the entity it concerns, and how
//! the entity's shard applies each delivery once.

use std::sync::Arc;

use super::relay::{applied_key, redriven_key};
use super::service::{EntityRequest, EntityResponse, Failure};
use super::{Command, Entity, EntityId};
use crate::events::{Deliverer, Delivery, Event, Route, Verdict};
use crate::service::{Service, decode, encode};
use crate::store::{Keyspace, StoreError, WriteBatch};

/// Maps an event to the entity it concerns and the command it becomes (None: skip it).
pub type ToCommand<E, C> = fn(&Event) -> Option<(<E as Entity>::Id, C)>;

/// The deliverer of a subscription whose subscriber is entity type `E`, through command `C`.
pub(crate) fn entity_deliverer<E: Entity, C: Command<E>>(to: ToCommand<E, C>) -> Deliverer {
    Deliverer {
        service: E::NAME,
        build: Arc::new(move |event: &Event, delivery: &Delivery| {
            let (id, command) = to(event)?;
            let mut request = EntityRequest::new::<E, C>(&id, &command, None).ok()?;
            request.event = Some(delivery.clone());
            Some((Route::Shard(id.key()), encode(&request).ok()?))
        }),
        judge: judge_entity,
    }
}

/// The deliverer of a subscription whose subscriber is the stateless service `S`: any member
/// gets the request `to` makes (competing consumers); any answer acknowledges it.
pub(crate) fn service_deliverer<S: Service>(to: fn(&Event) -> Option<S::Request>) -> Deliverer {
    Deliverer {
        service: S::NAME,
        build: Arc::new(move |event: &Event, _delivery: &Delivery| {
            Some((Route::Any, encode(&to(event)?).ok()?))
        }),
        judge: |_| Verdict::Ack,
    }
}

/// What an entity shard's answer to a delivery means.
fn judge_entity(bytes: &[u8]) -> Verdict {
    match decode::<EntityResponse>(bytes) {
        Ok(Ok(_)) => Verdict::Ack,
        Ok(Err(Failure::Domain(_) | Failure::UnknownCommand(_) | Failure::Malformed(_))) => {
            Verdict::Rejected(refusal(bytes))
        }
        Ok(Err(Failure::Store(why))) => Verdict::Retry(why),
        Err(e) => Verdict::Rejected(e.to_string()),
    }
}

/// A refusal in words, for the dead letters.
fn refusal(bytes: &[u8]) -> String {
    match decode::<EntityResponse>(bytes) {
        Ok(Err(Failure::Domain(_))) => "the subscriber refused the event".into(),
        Ok(Err(other)) => other.to_string(),
        Ok(Ok(_)) => "accepted".into(),
        Err(e) => e.to_string(),
    }
}

/// Whether `delivery` was applied before, and if not, what the command's batch must write to
/// remember it was.
pub(crate) enum Seen {
    /// Applied before: acknowledge without applying again.
    Before,
    /// New: write this mark with the command's change.
    New { key: Vec<u8>, mark: u64 },
}

/// Looks up `delivery`'s mark in the subscriber's keyspace.
pub(crate) fn seen(keyspace: &Keyspace, delivery: &Delivery) -> Result<Seen, StoreError> {
    if delivery.redrive {
        let key = redriven_key(delivery);
        return Ok(match keyspace.get::<u64>(&key)? {
            Some(_) => Seen::Before,
            None => Seen::New {
                key,
                mark: delivery.seq,
            },
        });
    }
    let key = applied_key(delivery);
    Ok(match keyspace.get::<u64>(&key)? {
        Some(applied) if applied >= delivery.seq => Seen::Before,
        _ => Seen::New {
            key,
            mark: delivery.seq,
        },
    })
}

impl Seen {
    /// Adds the mark to the command's batch.
    pub(crate) fn write(&self, batch: &mut WriteBatch) -> Result<(), StoreError> {
        if let Self::New { key, mark } = self {
            batch.put(key, mark)?;
        }
        Ok(())
    }
}

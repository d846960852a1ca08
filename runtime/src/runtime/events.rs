//! Declaring the subscriptions of the event bus ([`crate::events`]).

use std::sync::Arc;

use tokio::time::Duration;

use super::Runtime;
use crate::entity::{
    Command, DeadLetter, Entity, EntityResponse, Failure, ToCommand, admin, entity_deliverer,
    service_deliverer,
};
use crate::events::{Bus, Event, Pattern, Subscription};
use crate::service::{CallError, Service, To, decode, encode};
use crate::{Result, RuntimeError};

/// How long an operator's request to one shard may take.
pub(super) const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

impl Runtime {
    /// The event bus of this node: its subscriptions.
    pub fn bus(&self) -> &Arc<Bus> {
        &self.core.bus
    }

    /// Declares subscription `name`: every event whose topic matches `pattern` becomes command
    /// `C` to the entity of type `E` that `to` names (`None`: this event is skipped), applied
    /// once, in order per publishing shard and key. Declare subscriptions before hosting the
    /// services that publish (every node declares the same ones: they are in its code).
    pub fn subscribe<E: Entity, C: Command<E>>(
        &self,
        name: &str,
        pattern: &str,
        to: ToCommand<E, C>,
    ) -> Result<()> {
        self.declare(name, pattern, E::NAME, entity_deliverer::<E, C>(to))
    }

    /// Declares subscription `name`: every event whose topic matches `pattern` becomes the
    /// request `to` makes, to any one member of the stateless service `S` (competing
    /// consumers), at least once.
    pub fn subscribe_service<S: Service>(
        &self,
        name: &str,
        pattern: &str,
        to: fn(&Event) -> Option<S::Request>,
    ) -> Result<()> {
        self.declare(name, pattern, S::NAME, service_deliverer::<S>(to))
    }

    /// The dead letters of every shard of the entity service `service`, by shard (at most
    /// 1,000 per shard).
    pub async fn dead_letters(
        &self,
        service: &str,
    ) -> std::result::Result<Vec<(u32, DeadLetter)>, CallError> {
        let shards = self.shard_map(service).len() as u32;
        if shards == 0 {
            return Err(CallError::UnknownService(service.to_string()));
        }
        let mut all = Vec::new();
        for shard in 0..shards {
            let request = admin::request(admin::DEAD_LETTERS, Vec::new());
            let answer = self.ask_shard(service, shard, &request).await?;
            let letters: Vec<DeadLetter> = decode(&answer)?;
            all.extend(letters.into_iter().map(|l| (shard, l)));
        }
        Ok(all)
    }

    /// Sends dead letter `seq` of `subscription` in shard `shard` of `service` back to its
    /// subscription (applied there once, by its event id). Returns whether it was there.
    pub async fn redrive(
        &self,
        service: &str,
        shard: u32,
        subscription: &str,
        seq: u64,
    ) -> std::result::Result<bool, CallError> {
        let payload = encode(&admin::Redrive {
            subscription: subscription.to_string(),
            seq,
        })?;
        let request = admin::request(admin::REDRIVE, payload);
        decode(&self.ask_shard(service, shard, &request).await?)
    }

    pub(super) async fn ask_shard(
        &self,
        service: &str,
        shard: u32,
        request: &crate::entity::EntityRequest,
    ) -> std::result::Result<Vec<u8>, CallError> {
        if let Some(table) = self.core.placements.table(service) {
            // Right after a start, the nodes may still be agreeing where the shards are.
            let _ = table
                .route_by(&[], tokio::time::Instant::now() + ADMIN_TIMEOUT)
                .await;
        }
        let bytes = self
            .core
            .outbound
            .call(service, To::Slot(shard), encode(request)?, ADMIN_TIMEOUT)
            .await?;
        match decode::<EntityResponse>(&bytes)? {
            Ok(answer) => Ok(answer),
            Err(Failure::Store(e)) => Err(CallError::Placement(format!(
                "shard {shard} of {service}: {e}"
            ))),
            Err(other) => Err(CallError::BadMessage(other.to_string())),
        }
    }

    fn declare(
        &self,
        name: &str,
        pattern: &str,
        service: &str,
        deliverer: crate::events::Deliverer,
    ) -> Result<()> {
        let invalid = |e: &dyn std::fmt::Display| {
            RuntimeError::InvalidConfig(format!("subscription {name}: {e}"))
        };
        let pattern = Pattern::parse(pattern).map_err(|e| invalid(&e))?;
        self.core
            .bus
            .declare(Subscription::new(name, pattern, service), deliverer)
            .map_err(|e| invalid(&e))
    }
}

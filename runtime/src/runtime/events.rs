//! Declaring the subscriptions of the event bus ([`crate::events`]).

use std::sync::Arc;

use super::Runtime;
use crate::entity::{Command, Entity, ToCommand, entity_deliverer, service_deliverer};
use crate::events::{Bus, Event, Pattern, Subscription};
use crate::service::Service;
use crate::{Result, RuntimeError};

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

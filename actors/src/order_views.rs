//! `order-views`: the orders of each user, newest first: the query side (CQRS) of
//! [`crate::orders`], one entity per user id, fed by the order events.
//!
//! The node subscribes it to `order.*` with [`from_order_event`], which turns each event
//! into an [`Apply`] for the order's user. The runtime delivers the events of one order in
//! order and applies each delivery once; the view is correct even without that: applying an
//! event twice changes nothing, and a status only moves forward (pending, then confirmed or
//! cancelled; the first final status stays), so an `order.created` that arrives after
//! `order.confirmed` does not take the order back to pending.
//!
//! Bound: a view keeps the newest [`MAX_ORDERS`] orders of its user (by placing time); older
//! ones drop out of the list (the orders themselves stay).

use serde::{Deserialize, Serialize};
use troupe_runtime::entity::{Command, Commands, Context, DomainError, DomainKind, Entity};
use troupe_runtime::events::Event;

use crate::ids::Id;
use crate::orders::{self, OrderEvent, OrderStatus};

/// The most orders a user's view keeps.
pub const MAX_ORDERS: usize = 1_000;
/// The subscription that feeds the views (topic pattern [`PATTERN`]).
pub const SUBSCRIPTION: &str = "order-views";
/// The topics the views follow.
pub const PATTERN: &str = "order.*";

/// The read model entity, by user id.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderViews;

/// One order in a user's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderSummary {
    /// The order.
    pub id: Id,
    /// Its status as last heard.
    pub status: OrderStatus,
    /// Its total in cents.
    pub total_cents: u64,
    /// When it was placed, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

/// A user's orders, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// Newest first (by placing time, then id).
    pub orders: Vec<OrderSummary>,
}

/// What the read model refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ViewError {
    /// The limit is out of range (400).
    #[error("limit: 1 to {MAX_ORDERS}, not {0}")]
    BadLimit(usize),
}

impl DomainError for ViewError {
    fn kind(&self) -> DomainKind {
        DomainKind::InvalidInput
    }
}

impl Entity for OrderViews {
    const NAME: &'static str = "order-views";
    type Id = Id;
    type State = View;
    type Error = ViewError;

    fn commands(commands: &mut Commands<Self>) {
        commands.add::<Apply>().add::<List>();
    }
}

/// How far along a status is: it never moves back.
fn rank(status: OrderStatus) -> u8 {
    u8::from(status.is_final())
}

/// One order event, delivered to its user's view (idempotent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Apply(pub OrderEvent);

impl Command<OrderViews> for Apply {
    const NAME: &'static str = "apply";
    const IDEMPOTENT: bool = true;
    type Reply = ();

    fn handle(self, cx: &mut Context<'_, OrderViews>) -> Result<(), ViewError> {
        let event = self.0;
        let view = cx.state();
        let known = view.and_then(|v| v.orders.iter().position(|o| o.id == event.order_id));
        if let (Some(view), Some(at)) = (view, known)
            && rank(event.status) <= rank(view.orders[at].status)
        {
            // Heard already, or older than what was heard: nothing changes.
            return Ok(());
        }
        let mut view = cx.state().cloned().unwrap_or_default();
        match known {
            Some(at) => view.orders[at].status = event.status,
            None => {
                view.orders.push(OrderSummary {
                    id: event.order_id,
                    status: event.status,
                    total_cents: event.total_cents,
                    created_at_ms: event.created_at_ms,
                });
                view.orders
                    .sort_by_key(|o| std::cmp::Reverse((o.created_at_ms, o.id.0)));
                view.orders.truncate(MAX_ORDERS);
            }
        }
        cx.set(view);
        Ok(())
    }
}

/// The user's newest `limit` orders (1 to [`MAX_ORDERS`]), newest first; none for a user
/// who has no orders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct List {
    /// How many at most.
    pub limit: usize,
}

impl Command<OrderViews> for List {
    const NAME: &'static str = "list";
    const IDEMPOTENT: bool = true;
    type Reply = Vec<OrderSummary>;

    fn handle(self, cx: &mut Context<'_, OrderViews>) -> Result<Vec<OrderSummary>, ViewError> {
        if self.limit == 0 || self.limit > MAX_ORDERS {
            return Err(ViewError::BadLimit(self.limit));
        }
        Ok(cx
            .state()
            .map(|v| v.orders.iter().take(self.limit).cloned().collect())
            .unwrap_or_default())
    }
}

/// The subscription's mapping: each order event to its user's view (other topics, and
/// payloads that do not decode, are skipped).
pub fn from_order_event(event: &Event) -> Option<(Id, Apply)> {
    let topic = event.topic.as_str();
    if ![orders::CREATED, orders::CONFIRMED, orders::CANCELLED].contains(&topic) {
        return None;
    }
    let order: OrderEvent = event.decode().ok()?;
    Some((order.user_id, Apply(order)))
}

/// Helpers shared with the notifications' tests.
#[cfg(test)]
pub(crate) mod tests;

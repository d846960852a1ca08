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
//!
//! Each order's summary is an entry of the view (`troupe_runtime::entity::entries`), named by
//! its placing time and id so that the entries' order is the list's, with a second entry by
//! order id to find it: an event reads and writes its own order's entries, never the list.

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

/// A user's view: how many orders it lists (the summaries are its entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// How many orders it lists.
    pub count: u64,
}

/// The prefix of the summaries' entry names, in list order (oldest first).
const SUMMARIES: &[u8] = b"o/";
/// The prefix of the entry names that give an order's placing time by its id.
const PLACED: &[u8] = b"i/";

/// The entry name of the summary of order `id` placed at `created_at_ms`.
fn summary_name(created_at_ms: u64, id: Id) -> Vec<u8> {
    let mut name = SUMMARIES.to_vec();
    name.extend_from_slice(&created_at_ms.to_be_bytes());
    name.extend_from_slice(id.0.as_bytes());
    name
}

/// The entry name of the placing time of order `id`.
fn placed_name(id: Id) -> Vec<u8> {
    let mut name = PLACED.to_vec();
    name.extend_from_slice(id.0.as_bytes());
    name
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
        let known = cx
            .entry::<u64>(&placed_name(event.order_id))
            .map(|at| summary_name(at, event.order_id));
        if let Some(name) = known {
            let Some(mut summary) = cx.entry::<OrderSummary>(&name) else {
                return Ok(());
            };
            if rank(event.status) <= rank(summary.status) {
                // Heard already, or older than what was heard: nothing changes.
                return Ok(());
            }
            summary.status = event.status;
            cx.put_entry(&name, &summary);
            return Ok(());
        }
        let summary = OrderSummary {
            id: event.order_id,
            status: event.status,
            total_cents: event.total_cents,
            created_at_ms: event.created_at_ms,
        };
        cx.put_entry(&summary_name(summary.created_at_ms, summary.id), &summary);
        cx.put_entry(&placed_name(summary.id), &summary.created_at_ms);
        let mut view = cx.state().cloned().unwrap_or_default();
        view.count += 1;
        if view.count > MAX_ORDERS as u64 {
            // The oldest drops out (perhaps the one just heard of, if it is that old).
            for (name, oldest) in cx.entries::<OrderSummary>(SUMMARIES, None, 1) {
                cx.delete_entry(&name);
                cx.delete_entry(&placed_name(oldest.id));
                view.count -= 1;
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
            .entries_rev::<OrderSummary>(SUMMARIES, None, self.limit)
            .into_iter()
            .map(|(_, summary)| summary)
            .collect())
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

//! `notifications`: what each user is told about their orders, one entity per user id, fed
//! by `order.confirmed` and `order.cancelled`.
//!
//! The node subscribes it to `order.*` with [`from_order_event`] (which skips
//! `order.created`). Exactly one notification per order and kind: the runtime applies each
//! delivery once, and the inbox itself remembers which (order, kind) it has told, so a
//! redelivered or repeated event adds nothing. A notification's time is the event's, so
//! the same event always makes the same notification (except for its fresh id).
//!
//! Bound: an inbox keeps the newest [`MAX_NOTIFICATIONS`] notifications and remembers the
//! (order, kind) pairs of the newest [`MAX_REMEMBERED`], so that an event redelivered long
//! after its notification dropped out of the list still adds nothing.

use serde::{Deserialize, Serialize};
use troupe_runtime::entity::{Command, Commands, Context, DomainError, DomainKind, Entity};
use troupe_runtime::events::Event;

use crate::ids::Id;
use crate::orders::{self, OrderEvent, OrderStatus};
use crate::recent::Recent;

/// The most notifications an inbox lists.
pub const MAX_NOTIFICATIONS: usize = 1_000;
/// The most (order, kind) pairs an inbox remembers having told.
pub const MAX_REMEMBERED: usize = 10_000;
/// The subscription that feeds the inboxes (topic pattern [`PATTERN`]).
pub const SUBSCRIPTION: &str = "notifications";
/// The topics the inboxes follow (`order.created` is skipped by the mapping).
pub const PATTERN: &str = "order.*";

/// The notifications entity, by user id.
#[derive(Debug, Clone, Copy, Default)]
pub struct Notifications;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotificationKind {
    /// The order was confirmed.
    OrderConfirmed,
    /// The order was cancelled.
    OrderCancelled,
}

impl NotificationKind {
    /// Its name in the API (`order_confirmed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderConfirmed => "order_confirmed",
            Self::OrderCancelled => "order_cancelled",
        }
    }
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Its id.
    pub id: Id,
    /// What it is about.
    pub kind: NotificationKind,
    /// The order.
    pub order_id: Id,
    /// What the user reads.
    pub message: String,
    /// When it happened (the event's time), in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

/// A user's inbox: its counters (the notifications and the pairs told are its entries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbox {
    /// The number of the oldest notification listed.
    pub floor: u64,
    /// The number the next notification gets.
    pub next: u64,
    /// The (order, kind) pairs told.
    pub told: Recent,
}

/// The prefix of the notifications' entry names, numbered in the order they were told.
const LISTED: &[u8] = b"m/";
/// The tag of the pairs told among the inbox's entries.
const TOLD: u8 = b't';

/// The entry name of notification number `seq`.
fn listed_name(seq: u64) -> Vec<u8> {
    [LISTED, &seq.to_be_bytes()].concat()
}

/// What notifications refuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum NotificationError {
    /// The limit is out of range (400).
    #[error("limit: 1 to {MAX_NOTIFICATIONS}, not {0}")]
    BadLimit(usize),
}

impl DomainError for NotificationError {
    fn kind(&self) -> DomainKind {
        DomainKind::InvalidInput
    }
}

impl Entity for Notifications {
    const NAME: &'static str = "notifications";
    type Id = Id;
    type State = Inbox;
    type Error = NotificationError;

    fn commands(commands: &mut Commands<Self>) {
        commands.add::<Apply>().add::<List>();
    }
}

fn dollars(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The notification an order event makes, if it makes one.
fn notification_of(event: &OrderEvent) -> Option<Notification> {
    let (kind, message) = match event.status {
        OrderStatus::Pending => return None,
        OrderStatus::Confirmed => (
            NotificationKind::OrderConfirmed,
            format!(
                "order {} is confirmed: {} charged",
                event.order_id,
                dollars(event.total_cents)
            ),
        ),
        OrderStatus::Cancelled { reason } => (
            NotificationKind::OrderCancelled,
            format!("order {} is cancelled: {}", event.order_id, reason.as_str()),
        ),
    };
    Some(Notification {
        id: Id::new(),
        kind,
        order_id: event.order_id,
        message,
        created_at_ms: event.at_ms,
    })
}

/// One order event, delivered to its user's inbox: adds its notification unless the inbox
/// has it already. Answers whether it added one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Apply(pub OrderEvent);

impl Command<Notifications> for Apply {
    const NAME: &'static str = "apply";
    const IDEMPOTENT: bool = true;
    type Reply = bool;

    fn handle(self, cx: &mut Context<'_, Notifications>) -> Result<bool, NotificationError> {
        let Some(notification) = notification_of(&self.0) else {
            return Ok(false);
        };
        let pair = format!("{}/{}", notification.order_id, notification.kind.as_str());
        if Recent::get::<()>(cx, TOLD, &pair).is_some() {
            return Ok(false);
        }
        let mut inbox = cx.state().cloned().unwrap_or_default();
        inbox
            .told
            .remember(cx, TOLD, &pair, (), MAX_REMEMBERED as u64);
        cx.put_entry(&listed_name(inbox.next), &notification);
        inbox.next += 1;
        while inbox.next - inbox.floor > MAX_NOTIFICATIONS as u64 {
            cx.delete_entry(&listed_name(inbox.floor));
            inbox.floor += 1;
        }
        cx.set(inbox);
        Ok(true)
    }
}

/// The user's newest `limit` notifications (1 to [`MAX_NOTIFICATIONS`]), newest first; none
/// for a user who has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct List {
    /// How many at most.
    pub limit: usize,
}

impl Command<Notifications> for List {
    const NAME: &'static str = "list";
    const IDEMPOTENT: bool = true;
    type Reply = Vec<Notification>;

    fn handle(
        self,
        cx: &mut Context<'_, Notifications>,
    ) -> Result<Vec<Notification>, NotificationError> {
        if self.limit == 0 || self.limit > MAX_NOTIFICATIONS {
            return Err(NotificationError::BadLimit(self.limit));
        }
        Ok(cx
            .entries_rev::<Notification>(LISTED, None, self.limit)
            .into_iter()
            .map(|(_, notification)| notification)
            .collect())
    }
}

/// The subscription's mapping: each `order.confirmed` and `order.cancelled` to its user's
/// inbox (other topics, and payloads that do not decode, are skipped).
pub fn from_order_event(event: &Event) -> Option<(Id, Apply)> {
    let topic = event.topic.as_str();
    if topic != orders::CONFIRMED && topic != orders::CANCELLED {
        return None;
    }
    let order: OrderEvent = event.decode().ok()?;
    Some((order.user_id, Apply(order)))
}

#[cfg(test)]
mod tests;

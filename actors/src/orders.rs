//! `orders`: the order aggregate and the order saga that carries it out, one saga instance per
//! order id (the saga id is the order id).
//!
//! Placing an order ([`Place`], through [`troupe_runtime::saga::Start`]) records it `pending`
//! and starts its saga in one commit, publishing [`CREATED`] in the same batch. The saga then
//! reserves each item's stock at its product (in product id order), charges the wallet the
//! total, and commits the reservations; the order is `confirmed` when every step is done
//! ([`CONFIRMED`]). Out of stock or a declined payment undoes what was done (releases,
//! refund) and cancels the order with that reason ([`CANCELLED`]); so does a user's cancel
//! ([`troupe_runtime::saga::Abort`]) while the order can still be undone (before the charge
//! is committed). Every action and compensation carries the key `<order id>/<step>`, so that a
//! resent step has no second effect. See [`troupe_runtime::saga`] for retries, deadlines and
//! recovery.
//!
//! Idempotency: the edge derives the order id from the user and the `Idempotency-Key` (or
//! makes a fresh one), and passes a fingerprint of the request body. Placing an existing
//! order again with the same user, items and fingerprint answers it as it is now (with
//! `new: false`, so nothing is started twice); anything else under that id is a conflict.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use troupe_runtime::entity::{DomainError, DomainKind};
use troupe_runtime::saga::{Phase, SagaEntity, SagaState};

use crate::ids::Id;

/// Published when an order is placed.
pub const CREATED: &str = "order.created";
/// Published when an order is confirmed.
pub const CONFIRMED: &str = "order.confirmed";
/// Published when an order is cancelled.
pub const CANCELLED: &str = "order.cancelled";

/// The most items in one order.
pub const MAX_ITEMS: usize = 20;
/// The most units of one item.
pub const MAX_QUANTITY: u64 = 1_000;
/// The longest idempotency key or fingerprint, in bytes.
pub const MAX_KEY_BYTES: usize = 200;

/// The order saga.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderSaga;

/// The orders: the instances of the order saga, by order id (`[services.orders]`).
pub type Order = SagaEntity<OrderSaga>;

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// The product.
    pub product_id: Id,
    /// Units, 1 to [`MAX_QUANTITY`].
    pub quantity: u64,
    /// The product's price per unit when the order was placed, in cents (> 0).
    pub price_cents: u64,
}

/// Why an order was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum CancelReason {
    /// A product had not enough stock.
    OutOfStock,
    /// The wallet could not pay.
    PaymentDeclined,
    /// The user cancelled it while it was pending.
    CancelledByUser,
    /// A service it needed stayed unavailable past the step's deadline.
    Unavailable,
    /// An operator forced its compensation.
    CancelledByOperator,
}

impl CancelReason {
    /// Its name in the API (`out_of_stock`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutOfStock => "out_of_stock",
            Self::PaymentDeclined => "payment_declined",
            Self::CancelledByUser => "cancelled_by_user",
            Self::Unavailable => "unavailable",
            Self::CancelledByOperator => "cancelled_by_operator",
        }
    }

    /// The reason of a saga that compensated because of `why`.
    pub fn of_saga(why: &str) -> Self {
        match why {
            "out_of_stock" => Self::OutOfStock,
            "payment_declined" => Self::PaymentDeclined,
            "cancelled_by_user" => Self::CancelledByUser,
            w if w.starts_with("deadline") => Self::Unavailable,
            _ => Self::CancelledByOperator,
        }
    }
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OrderStatus {
    /// Placed; the saga is carrying it out.
    Pending,
    /// Stock taken and paid.
    Confirmed,
    /// Given up, stock and wallet as before.
    Cancelled {
        /// Why.
        reason: CancelReason,
    },
}

impl OrderStatus {
    /// Its name in the API (`pending`, `confirmed`, `cancelled`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Cancelled { .. } => "cancelled",
        }
    }

    /// The reason, for a cancelled order.
    pub fn reason(self) -> Option<CancelReason> {
        match self {
            Self::Cancelled { reason } => Some(reason),
            _ => None,
        }
    }

    /// Whether it is final (confirmed or cancelled).
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Pending)
    }
}

/// An order as kept and as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderState {
    /// Its id.
    pub id: Id,
    /// Who placed it.
    pub user_id: Id,
    /// Its lines.
    pub items: Vec<OrderItem>,
    /// The sum of quantity x price over the items, in cents.
    pub total_cents: u64,
    /// Where it stands.
    pub status: OrderStatus,
    /// When it was placed, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// When its status last changed.
    pub updated_at_ms: u64,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
    /// The edge's fingerprint of the request body.
    pub fingerprint: String,
}

/// What the saga carries for an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderData {
    /// Who placed it.
    pub user_id: Id,
    /// Its lines, in product id order (the order the saga reserves them in).
    pub items: Vec<OrderItem>,
    /// The sum of quantity x price over the items, in cents.
    pub total_cents: u64,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
    /// The edge's fingerprint of the request body.
    pub fingerprint: String,
}

impl OrderState {
    /// Order `id` as its saga instance stands.
    pub fn of(id: Id, saga: &SagaState<OrderData>) -> Self {
        let status = match &saga.phase {
            Phase::Running { .. } | Phase::Compensating { .. } => OrderStatus::Pending,
            Phase::Completed => OrderStatus::Confirmed,
            Phase::Compensated { reason } => OrderStatus::Cancelled {
                reason: CancelReason::of_saga(reason),
            },
        };
        let data = &saga.data;
        Self {
            id,
            user_id: data.user_id,
            items: data.items.clone(),
            total_cents: data.total_cents,
            status,
            created_at_ms: saga.created_at_ms,
            updated_at_ms: if status.is_final() {
                saga.updated_at_ms
            } else {
                saga.created_at_ms
            },
            idempotency_key: data.idempotency_key.clone(),
            fingerprint: data.fingerprint.clone(),
        }
    }
}

/// What every order event carries (all three topics).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvent {
    /// The order.
    pub order_id: Id,
    /// Its owner (the key of the read model and the notifications).
    pub user_id: Id,
    /// Its total in cents.
    pub total_cents: u64,
    /// Its status after the transition.
    pub status: OrderStatus,
    /// For a cancellation, why.
    pub reason: Option<CancelReason>,
    /// Its lines (for `order.created`; empty on the others).
    pub items: Vec<OrderItem>,
    /// When the order was placed.
    pub created_at_ms: u64,
    /// When the transition happened.
    pub at_ms: u64,
}

impl OrderEvent {
    fn of(order: &OrderState, with_items: bool) -> Self {
        Self {
            order_id: order.id,
            user_id: order.user_id,
            total_cents: order.total_cents,
            status: order.status,
            reason: order.status.reason(),
            items: if with_items {
                order.items.clone()
            } else {
                Vec::new()
            },
            created_at_ms: order.created_at_ms,
            at_ms: order.updated_at_ms,
        }
    }

    /// The topic an event with this status is published on.
    pub fn topic(&self) -> &'static str {
        match self.status {
            OrderStatus::Pending => CREATED,
            OrderStatus::Confirmed => CONFIRMED,
            OrderStatus::Cancelled { .. } => CANCELLED,
        }
    }
}

/// What orders refuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum OrderError {
    /// A field is malformed or out of range (400).
    #[error("{field}: {why}")]
    Invalid {
        /// The field (`items[2].quantity`).
        field: String,
        /// What is wrong with it.
        why: String,
    },
    /// Well-formed but impossible: a zero quantity or price (422).
    #[error("{field}: {why}")]
    Unprocessable {
        /// The field.
        field: String,
        /// What is wrong with it.
        why: String,
    },
    /// No such order (404).
    #[error("order {0} does not exist")]
    NotFound(Id),
    /// The order id is taken by another request: the idempotency key was reused with a
    /// different body (409).
    #[error("order {0} exists with a different request (idempotency key reused)")]
    KeyReused(Id),
    /// The order cannot do what was asked now (409): cancelling an order that is being
    /// confirmed, for one.
    #[error("order {order}: {why}")]
    Refused {
        /// The order.
        order: Id,
        /// Why.
        why: String,
    },
    /// The transition is not possible from where the order stands (409).
    #[error("order {order} is {from} and cannot become {to}")]
    Transition {
        /// The order.
        order: Id,
        /// Where it stands.
        from: String,
        /// Where it was asked to go.
        to: String,
    },
}

impl DomainError for OrderError {
    fn kind(&self) -> DomainKind {
        match self {
            Self::Invalid { .. } => DomainKind::InvalidInput,
            Self::Unprocessable { .. } => DomainKind::Unprocessable,
            Self::NotFound(_) => DomainKind::NotFound,
            Self::KeyReused(_) | Self::Transition { .. } | Self::Refused { .. } => {
                DomainKind::Conflict
            }
        }
    }
}

fn invalid(field: impl Into<String>, why: impl Into<String>) -> OrderError {
    OrderError::Invalid {
        field: field.into(),
        why: why.into(),
    }
}

fn unprocessable(field: impl Into<String>, why: impl Into<String>) -> OrderError {
    OrderError::Unprocessable {
        field: field.into(),
        why: why.into(),
    }
}

/// Place the order (see the module docs for placing it again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// Who places it.
    pub user_id: Id,
    /// 1 to [`MAX_ITEMS`] lines, each product once, with the prices the edge read.
    pub items: Vec<OrderItem>,
    /// The client's `Idempotency-Key`, if any (at most 200 bytes).
    pub idempotency_key: Option<String>,
    /// The edge's fingerprint of the request body (at most 200 bytes).
    pub fingerprint: String,
}

impl Place {
    /// Checks the items and answers the total.
    fn validate(&self) -> Result<u64, OrderError> {
        if self.items.is_empty() || self.items.len() > MAX_ITEMS {
            return Err(invalid("items", format!("1 to {MAX_ITEMS} items")));
        }
        if self.fingerprint.len() > MAX_KEY_BYTES {
            return Err(invalid(
                "fingerprint",
                format!("at most {MAX_KEY_BYTES} bytes"),
            ));
        }
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.len() > MAX_KEY_BYTES)
        {
            return Err(invalid(
                "idempotency_key",
                format!("1 to {MAX_KEY_BYTES} bytes"),
            ));
        }
        let mut seen = BTreeSet::new();
        let mut total: u64 = 0;
        for (n, item) in self.items.iter().enumerate() {
            if item.quantity == 0 {
                return Err(unprocessable(
                    format!("items[{n}].quantity"),
                    "must be more than 0",
                ));
            }
            if item.quantity > MAX_QUANTITY {
                return Err(invalid(
                    format!("items[{n}].quantity"),
                    format!("at most {MAX_QUANTITY}"),
                ));
            }
            if item.price_cents == 0 {
                return Err(unprocessable(
                    format!("items[{n}].price_cents"),
                    "must be more than 0",
                ));
            }
            if !seen.insert(item.product_id) {
                return Err(invalid(
                    format!("items[{n}].product_id"),
                    format!("product {} appears twice", item.product_id),
                ));
            }
            total = item
                .price_cents
                .checked_mul(item.quantity)
                .and_then(|line| total.checked_add(line))
                .ok_or_else(|| unprocessable("items", "the total is too large"))?;
        }
        Ok(total)
    }

    /// Whether `order` is this request placed before.
    fn placed(&self, order: &OrderData) -> bool {
        order.user_id == self.user_id
            && order.fingerprint == self.fingerprint
            && order.idempotency_key == self.idempotency_key
            && order.items.len() == self.items.len()
            && order
                .items
                .iter()
                .zip(&self.items)
                .all(|(a, b)| a.product_id == b.product_id && a.quantity == b.quantity)
    }
}

mod saga;
#[cfg(test)]
mod tests;

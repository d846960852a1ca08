//! The schemas of the order routes' bodies (`API.md`: Orders; the product list, a user's
//! orders and notifications): the handlers build their JSON from the entities' types with
//! `&'static str` names, which these mirror for the document (the black-box sweep in
//! `tests/openapi.rs` checks every answer against them).

#![allow(dead_code)] // schemas only: their fields are read by utoipa, never by code

use utoipa::ToSchema;

use super::super::api::products::ProductJson;

/// One page of products, ordered by id.
#[derive(ToSchema)]
pub(crate) struct ProductsPage {
    products: Vec<ProductJson>,
    /// The `after` of the next page; null on the last page.
    next_after: Option<String>,
}

/// One line of a new order.
#[derive(ToSchema)]
pub(crate) struct NewOrderItem {
    /// A product id (UUID). An unknown product is a 404: the order is not created.
    product_id: String,
    /// 1 to 1000 (0 or negative: 422).
    #[schema(minimum = 1, maximum = 1000)]
    quantity: i64,
}

/// A new order: 1 to 20 lines, each product at most once.
#[derive(ToSchema)]
pub(crate) struct NewOrder {
    #[schema(min_items = 1, max_items = 20)]
    items: Vec<NewOrderItem>,
}

/// One line of an order, at the price it was ordered at.
#[derive(ToSchema)]
pub(crate) struct OrderItem {
    product_id: String,
    quantity: u32,
    /// The unit price, in cents.
    price_cents: u64,
}

/// Where an order is.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub(crate) enum OrderStatus {
    /// Being carried out by the order saga.
    Pending,
    /// Stock reserved and wallet charged.
    Confirmed,
    /// Left stock and wallet as they were; see `reason`.
    Cancelled,
}

/// Why an order was cancelled.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub(crate) enum CancelReason {
    OutOfStock,
    PaymentDeclined,
    CancelledByUser,
    /// A service the order needed stayed unavailable past the saga step's deadline.
    Unavailable,
    /// An operator forced the saga's compensation.
    CancelledByOperator,
}

/// A step of a saga.
#[derive(ToSchema)]
pub(crate) struct SagaStep {
    /// `reserve:<product>`, `charge`, `commit:<product>`.
    name: String,
    /// `pending`, `running`, `done`, `failed`, `compensating` or `compensated`.
    status: String,
    /// How many times its action was sent.
    attempts: u32,
    /// How many times its compensation was sent.
    compensations: u32,
    /// The last failure it met.
    last_error: Option<String>,
    updated_at: String,
}

/// One entry of a saga's history.
#[derive(ToSchema)]
pub(crate) struct SagaTransition {
    at: String,
    from: String,
    to: String,
    note: String,
}

/// A saga: its state, steps and history.
#[derive(ToSchema)]
pub(crate) struct Saga {
    /// The saga id (the order id).
    id: String,
    /// `running`, `compensating`, `completed` or `compensated`.
    state: String,
    /// Why it compensated, once it did.
    reason: Option<String>,
    steps: Vec<SagaStep>,
    history: Vec<SagaTransition>,
    created_at: String,
    updated_at: String,
}

/// An order.
#[derive(ToSchema)]
pub(crate) struct Order {
    id: String,
    /// Its owner.
    user_id: String,
    status: OrderStatus,
    /// Null unless cancelled.
    reason: Option<CancelReason>,
    total_cents: u64,
    items: Vec<OrderItem>,
    created_at: String,
    updated_at: String,
}

/// An order as a user's list shows it.
#[derive(ToSchema)]
pub(crate) struct OrderSummary {
    id: String,
    status: OrderStatus,
    /// Null unless cancelled.
    reason: Option<CancelReason>,
    total_cents: u64,
    created_at: String,
}

/// A user's orders, newest first (the read model: eventually consistent with the orders).
#[derive(ToSchema)]
pub(crate) struct UserOrders {
    orders: Vec<OrderSummary>,
}

/// What a notification tells.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub(crate) enum NotificationKind {
    OrderConfirmed,
    OrderCancelled,
}

/// One notification: exactly one per order that was confirmed or cancelled.
#[derive(ToSchema)]
pub(crate) struct Notification {
    id: String,
    kind: NotificationKind,
    order_id: String,
    message: String,
    created_at: String,
}

/// A user's notifications, newest first.
#[derive(ToSchema)]
pub(crate) struct UserNotifications {
    notifications: Vec<Notification>,
}

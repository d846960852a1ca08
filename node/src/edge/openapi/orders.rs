//! The documentation of the order routes (`API.md`: Orders; product listing, a user's orders
//! and notifications), written before their handlers: each operation below is a
//! `#[utoipa::path]` on a stub, with the schemas of its bodies.
//!
//! To serve one, register its handler under the documented path and methods with
//! [`documented`], e.g. `.routes(documented::<__path_create_order, _, _>(orders::create))`;
//! the handler itself needs no change. (Or move the attribute onto the handler, derive
//! `ToSchema` on its own types, and use `routes!`.) Until a route is registered, its operation
//! stays out of the document, since the document shows only what the edge serves (the tests
//! check these operations as a document of their own).

#![allow(dead_code)] // stubs: only their generated `__path_*` types are used

use axum::handler::Handler;
use axum::routing::MethodRouter;
use utoipa::ToSchema;
use utoipa::openapi::path::Paths;
use utoipa_axum::PathItemExt;
use utoipa_axum::router::UtoipaMethodRouter;

use super::super::AppState;
use super::super::api::products::ProductJson;

/// Registers `handler` under the path and methods that the operation `D` documents, gathering
/// the schemas it names: what `utoipa_axum::routes!` does for a handler that carries its own
/// `#[utoipa::path]`.
pub(crate) fn documented<D, H, T>(handler: H) -> UtoipaMethodRouter<AppState>
where
    D: utoipa::Path + utoipa::__dev::SchemaReferences,
    H: Handler<T, AppState>,
    T: 'static,
{
    let mut schemas = Vec::new();
    D::schemas(&mut schemas);
    let methods = D::methods();
    let router = methods.iter().fold(MethodRouter::new(), |router, method| {
        router.on(method.to_method_filter(), handler.clone())
    });
    let mut paths = Paths::new();
    paths.add_path_operation(D::path(), methods, D::operation());
    (schemas, paths, router)
}

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
}

/// An order just accepted: the saga carries it out from here.
#[derive(ToSchema)]
pub(crate) struct OrderAccepted {
    id: String,
    /// Always `pending`.
    status: OrderStatus,
    total_cents: u64,
    items: Vec<OrderItem>,
    created_at: String,
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

/// `GET /api/v1/products`.
#[utoipa::path(get, path = "/api/v1/products", tag = "products", security(("bearer" = [])),
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200,
            description = "Products per page, 1 to 200 (default 50)"),
        ("after" = Option<String>, Query,
            description = "A product id: the page starts after it (exclusive)")),
    responses(
        (status = 200, description = "Products ordered by id", body = ProductsPage),
        (status = 400, description = "`limit` out of range, or `after` not a UUID")))]
pub(crate) async fn list_products() {}

/// `POST /api/v1/orders`.
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1 to 200 visible ASCII characters. The same key from the same user with \
            the same body answers the same order and starts nothing new; with another body, 409")),
    request_body = NewOrder,
    responses(
        (status = 202, description = "Accepted: the order is pending and the order saga \
            carries it out", body = OrderAccepted),
        (status = 400, description = "A field is missing or wrong (named), more than 20 items, \
            a product twice, or a bad `Idempotency-Key`"),
        (status = 404, description = "A product does not exist: the order is not created"),
        (status = 409, description = "The `Idempotency-Key` was used with another body"),
        (status = 422, description = "A quantity of 0 or less, or over 1000"),
        (status = 504, description = "No answer in time: the order may or may not exist; \
            repeat with the same `Idempotency-Key`")))]
pub(crate) async fn create_order() {}

/// `GET /api/v1/orders/{id}`.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, description = "The order id (UUID)")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 400, description = "`id` is not a UUID"),
        (status = 403, description = "Another user's order"),
        (status = 404, description = "No such order")))]
pub(crate) async fn get_order() {}

/// `POST /api/v1/orders/{id}/cancel`.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The order id (UUID)")),
    responses(
        (status = 200, description = "The order, cancelled (`cancelled_by_user`); a cancelled \
            order is answered unchanged", body = Order),
        (status = 400, description = "`id` is not a UUID"),
        (status = 403, description = "Another user's order"),
        (status = 404, description = "No such order"),
        (status = 409, description = "The order is already confirmed"),
        (status = 504, description = "No answer in time: read the order before repeating")))]
pub(crate) async fn cancel_order() {}

/// `GET /api/v1/users/{id}/orders`.
#[utoipa::path(get, path = "/api/v1/users/{id}/orders", tag = "orders",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The user id (UUID)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000,
            description = "At most this many, 1 to 1000 (default 100)")),
    responses(
        (status = 200, description = "The user's orders, newest first", body = UserOrders),
        (status = 400, description = "`id` is not a UUID, or `limit` out of range"),
        (status = 403, description = "Another user's orders")))]
pub(crate) async fn user_orders() {}

/// `GET /api/v1/users/{id}/notifications`.
#[utoipa::path(get, path = "/api/v1/users/{id}/notifications", tag = "orders",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The user id (UUID)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000,
            description = "At most this many, 1 to 1000 (default 100)")),
    responses(
        (status = 200, description = "The user's notifications, newest first",
            body = UserNotifications),
        (status = 400, description = "`id` is not a UUID, or `limit` out of range"),
        (status = 403, description = "Another user's notifications")))]
pub(crate) async fn user_notifications() {}

//! The lists of `API.md`: all products (paged), a user's orders (the read model) and a user's
//! notifications. Query parameters are checked like bodies: a bad or unknown one is a 400
//! naming it.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::time::Duration;
use troupe_actors::ids::Id;
use troupe_actors::inventory::{Product, ProductView};
use troupe_actors::notifications::{self, Notifications};
use troupe_actors::order_views::{self, OrderViews};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::super::AppState;
use super::super::error::ApiError;
use super::super::guard::Caller;
use super::super::openapi::orders as doc;
use super::products::ProductJson;
use super::read_failed;
use super::time::rfc3339;
use super::users::owned;

/// How long each call of a request may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Products per page when the client does not say.
const PRODUCTS_DEFAULT: usize = 50;
/// The most products per page.
const PRODUCTS_MAX: usize = 200;
/// Orders or notifications listed when the client does not say.
const FEED_DEFAULT: usize = 100;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(products))
        .routes(routes!(user_orders))
        .routes(routes!(user_notifications))
}

/// `axum::extract::Query`, with errors in the edge's shape.
pub(crate) struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => {
                let text = rejection.body_text();
                let detail = text.split_once(": ").map_or(text.as_str(), |(_, r)| r);
                Err(ApiError::InvalidRequest(format!("query: {detail}")))
            }
        }
    }
}

/// A `limit` from the query: 1 to `max`, `default` when absent.
fn limit(asked: Option<i64>, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(asked) = asked else {
        return Ok(default);
    };
    usize::try_from(asked)
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| ApiError::InvalidRequest(format!("limit: 1 to {max}, got {asked}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProductPage {
    limit: Option<i64>,
    after: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct ProductList {
    products: Vec<ProductJson>,
    /// The `after` of the next page; null on the last page.
    next_after: Option<String>,
}

/// `GET /api/v1/products?limit=&after=`: every product in id order, a page at a time.
#[utoipa::path(get, path = "/api/v1/products", tag = "products", security(("bearer" = [])),
    params(
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200,
            description = "Products per page, 1 to 200 (default 50)"),
        ("after" = Option<String>, Query,
            description = "A product id: the page starts after it (exclusive)")),
    responses(
        (status = 200, description = "Products ordered by id", body = doc::ProductsPage),
        (status = 400, description = "`limit` out of range, or `after` not a UUID")))]
async fn products(
    State(state): State<AppState>,
    _caller: Caller,
    Query(page): Query<ProductPage>,
) -> Result<axum::Json<ProductList>, ApiError> {
    let limit = limit(page.limit, PRODUCTS_DEFAULT, PRODUCTS_MAX)?;
    let after: Option<Id> = page
        .after
        .as_deref()
        .map(|a| {
            a.parse()
                .map_err(|_| ApiError::InvalidRequest(format!("after: {a:?} is not a UUID")))
        })
        .transpose()?;
    let page = state
        .runtime()
        .list_page::<Product>(after.as_ref(), limit)
        .await
        .map_err(ApiError::from_idempotent)?;
    if let Some((_, e)) = page.unavailable.into_iter().next() {
        // A page with a shard missing would skip its products silently.
        return Err(ApiError::from_idempotent(e));
    }
    let listed = page.entries;
    let next_after = page
        .more
        .then(|| listed.last().map(|(id, _)| id.to_string()))
        .flatten();
    Ok(axum::Json(ProductList {
        products: listed
            .iter()
            .map(|(id, p)| ProductView::of(*id, p).into())
            .collect(),
        next_after,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeedPage {
    limit: Option<i64>,
}

#[derive(Serialize)]
pub(crate) struct OrderLine {
    id: String,
    status: &'static str,
    reason: Option<&'static str>,
    total_cents: u64,
    created_at: String,
}

#[derive(Serialize)]
pub(crate) struct OrderList {
    orders: Vec<OrderLine>,
}

/// `GET /api/v1/users/{id}/orders`: the read model, newest first.
#[utoipa::path(get, path = "/api/v1/users/{id}/orders", tag = "orders",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The user id (UUID)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000,
            description = "At most this many, 1 to 1000 (default 100)")),
    responses(
        (status = 200, description = "The user's orders, newest first", body = doc::UserOrders),
        (status = 400, description = "`id` is not a UUID, or `limit` out of range"),
        (status = 403, description = "Another user's orders")))]
async fn user_orders(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(page): Query<FeedPage>,
) -> Result<axum::Json<OrderList>, ApiError> {
    let id = owned(&caller, &id)?;
    let limit = limit(page.limit, FEED_DEFAULT, order_views::MAX_ORDERS)?;
    let orders = state
        .runtime()
        .entity::<OrderViews>(id)
        .with_timeout(TIMEOUT)
        .ask(order_views::List { limit })
        .await
        .map_err(read_failed)?;
    Ok(axum::Json(OrderList {
        orders: orders
            .into_iter()
            .map(|o| OrderLine {
                id: o.id.to_string(),
                status: o.status.as_str(),
                reason: o.status.reason().map(|r| r.as_str()),
                total_cents: o.total_cents,
                created_at: rfc3339(o.created_at_ms),
            })
            .collect(),
    }))
}

#[derive(Serialize)]
pub(crate) struct NotificationJson {
    id: String,
    kind: &'static str,
    order_id: String,
    message: String,
    created_at: String,
}

#[derive(Serialize)]
pub(crate) struct NotificationList {
    notifications: Vec<NotificationJson>,
}

/// `GET /api/v1/users/{id}/notifications`: newest first.
#[utoipa::path(get, path = "/api/v1/users/{id}/notifications", tag = "orders",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The user id (UUID)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000,
            description = "At most this many, 1 to 1000 (default 100)")),
    responses(
        (status = 200, description = "The user's notifications, newest first",
            body = doc::UserNotifications),
        (status = 400, description = "`id` is not a UUID, or `limit` out of range"),
        (status = 403, description = "Another user's notifications")))]
async fn user_notifications(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(page): Query<FeedPage>,
) -> Result<axum::Json<NotificationList>, ApiError> {
    let id = owned(&caller, &id)?;
    let limit = limit(page.limit, FEED_DEFAULT, notifications::MAX_NOTIFICATIONS)?;
    let listed = state
        .runtime()
        .entity::<Notifications>(id)
        .with_timeout(TIMEOUT)
        .ask(notifications::List { limit })
        .await
        .map_err(read_failed)?;
    Ok(axum::Json(NotificationList {
        notifications: listed
            .into_iter()
            .map(|n| NotificationJson {
                id: n.id.to_string(),
                kind: n.kind.as_str(),
                order_id: n.order_id.to_string(),
                message: n.message,
                created_at: rfc3339(n.created_at_ms),
            })
            .collect(),
    }))
}

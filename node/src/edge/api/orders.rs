//! Orders (`API.md`: Orders): place, read, cancel, and the order's saga. Placing starts the
//! order saga (`troupe_actors::orders`), which carries the order to `confirmed` or
//! `cancelled`; a cancel aborts it and waits (a few seconds at most) for its compensation.
//!
//! Idempotency: with an `Idempotency-Key`, the order id is derived from the caller and the key
//! (UUID v5), and the order remembers a fingerprint of the body. The same key and body from
//! the same user answers the same order and starts nothing new; the same key with another body
//! is a 409. Without a key every request places a new order.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio::time::Duration;
use troupe_actors::ids::Id;
use troupe_actors::inventory::{self, Product};
use troupe_actors::orders::{self, CancelReason, Order, OrderItem, OrderState, Place};
use troupe_runtime::saga::{Abort, Get, SagaState, Start, Started};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::super::AppState;
use super::super::error::ApiError;
use super::super::extract::Json;
use super::super::guard::Caller;
use super::super::openapi::orders as doc;
use super::time::rfc3339;
use super::{read_failed, write_failed};

/// How long each call of a request may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long a cancel waits for the order's compensation before answering it as it stands.
const CANCEL_WAIT: Duration = Duration::from_secs(5);
/// The header that makes placing an order idempotent.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The namespace of order ids derived from (user, idempotency key).
const ORDER_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6f72_6465_7273_4000_8000_7472_6f75_7065);

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(place))
        .routes(routes!(read))
        .routes(routes!(cancel))
        .routes(routes!(saga))
}

/// One line as the client asks for it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewItem {
    product_id: String,
    quantity: i64,
}

/// `POST /api/v1/orders`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewOrder {
    items: Vec<NewItem>,
}

/// One line of an order as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct ItemJson {
    product_id: String,
    quantity: u64,
    price_cents: u64,
}

/// An order as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct OrderJson {
    id: String,
    user_id: String,
    status: &'static str,
    reason: Option<&'static str>,
    total_cents: u64,
    items: Vec<ItemJson>,
    created_at: String,
    updated_at: String,
}

impl From<OrderState> for OrderJson {
    fn from(o: OrderState) -> Self {
        Self {
            id: o.id.to_string(),
            user_id: o.user_id.to_string(),
            status: o.status.as_str(),
            reason: o.status.reason().map(CancelReason::as_str),
            total_cents: o.total_cents,
            items: o
                .items
                .into_iter()
                .map(|i| ItemJson {
                    product_id: i.product_id.to_string(),
                    quantity: i.quantity,
                    price_cents: i.price_cents,
                })
                .collect(),
            created_at: rfc3339(o.created_at_ms),
            updated_at: rfc3339(o.updated_at_ms),
        }
    }
}

/// The lines of a request, checked: 1 to 20, each product once, quantities 1 to 1000.
fn lines(request: &NewOrder) -> Result<Vec<(Id, u64)>, ApiError> {
    if request.items.is_empty() || request.items.len() > orders::MAX_ITEMS {
        return Err(ApiError::InvalidRequest(format!(
            "items: 1 to {} items, got {}",
            orders::MAX_ITEMS,
            request.items.len()
        )));
    }
    let mut lines: Vec<(Id, u64)> = Vec::with_capacity(request.items.len());
    for (n, item) in request.items.iter().enumerate() {
        let product_id: Id = item.product_id.parse().map_err(|_| {
            ApiError::InvalidRequest(format!(
                "items[{n}].product_id: {:?} is not a UUID",
                item.product_id
            ))
        })?;
        if item.quantity <= 0 {
            return Err(ApiError::Unprocessable(format!(
                "items[{n}].quantity: must be greater than 0, got {}",
                item.quantity
            )));
        }
        let quantity = item.quantity.unsigned_abs();
        if quantity > orders::MAX_QUANTITY {
            return Err(ApiError::InvalidRequest(format!(
                "items[{n}].quantity: at most {}, got {quantity}",
                orders::MAX_QUANTITY
            )));
        }
        if lines.iter().any(|(p, _)| *p == product_id) {
            return Err(ApiError::InvalidRequest(format!(
                "items[{n}].product_id: product {product_id} appears twice"
            )));
        }
        lines.push((product_id, quantity));
    }
    Ok(lines)
}

/// The `Idempotency-Key` header, if sent: 1 to 200 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::InvalidRequest(format!(
            "Idempotency-Key: 1 to {} visible ASCII characters",
            orders::MAX_KEY_BYTES
        ))
    };
    let key = value.to_str().map_err(|_| bad())?;
    if key.is_empty()
        || key.len() > orders::MAX_KEY_BYTES
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(bad());
    }
    Ok(Some(key.to_string()))
}

/// What makes two requests the same order: their lines, in order.
fn fingerprint(lines: &[(Id, u64)]) -> String {
    let text: String = lines.iter().map(|(p, q)| format!("{p}x{q};")).collect();
    uuid::Uuid::new_v5(&ORDER_NAMESPACE, text.as_bytes()).to_string()
}

/// The id of the order `user` places under `key`.
fn order_id(user: Id, key: &str) -> Id {
    let mut name = user.0.as_bytes().to_vec();
    name.extend_from_slice(key.as_bytes());
    Id(uuid::Uuid::new_v5(&ORDER_NAMESPACE, &name))
}

/// Each line with its product's price now; 404 for a product that does not exist.
async fn priced(state: &AppState, lines: &[(Id, u64)]) -> Result<Vec<OrderItem>, ApiError> {
    let mut asks = JoinSet::new();
    for (n, (product_id, _)) in lines.iter().enumerate() {
        let product = state
            .runtime()
            .entity::<Product>(*product_id)
            .with_timeout(TIMEOUT);
        // Carried: each read joins the request's trace.
        asks.spawn(troupe_runtime::telemetry::carried(async move {
            (n, product.ask(inventory::Get).await)
        }));
    }
    let mut prices = vec![0; lines.len()];
    while let Some(joined) = asks.join_next().await {
        let (n, answer) =
            joined.map_err(|e| ApiError::Internal(format!("reading a product failed: {e}")))?;
        prices[n] = answer.map_err(read_failed)?.price_cents;
    }
    Ok(lines
        .iter()
        .zip(prices)
        .map(|((product_id, quantity), price_cents)| OrderItem {
            product_id: *product_id,
            quantity: *quantity,
            price_cents,
        })
        .collect())
}

/// `POST /api/v1/orders`: the order, placed `pending` (202).
#[utoipa::path(post, path = "/api/v1/orders", tag = "orders", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1 to 200 visible ASCII characters. The same key from the same user with \
            the same body answers the same order and starts nothing new; with another body, 409")),
    request_body = doc::NewOrder,
    responses(
        (status = 202, description = "Accepted: the order is pending and the order saga \
            carries it out", body = doc::Order),
        (status = 400, description = "A field is missing or wrong (named), no item or more \
            than 20, a product twice, a quantity over 1000, or a bad `Idempotency-Key`"),
        (status = 404, description = "A product does not exist: the order is not created"),
        (status = 409, description = "The `Idempotency-Key` was used with another body"),
        (status = 422, description = "A quantity of 0 or less"),
        (status = 504, description = "No answer in time: the order may or may not exist; \
            repeat with the same `Idempotency-Key`")))]
async fn place(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Json(request): Json<NewOrder>,
) -> Result<(StatusCode, axum::Json<OrderJson>), ApiError> {
    let user_id = caller.user_id()?;
    let key = idempotency_key(&headers)?;
    let lines = lines(&request)?;
    let id = match &key {
        Some(key) => order_id(user_id, key),
        None => Id::new(),
    };
    let fingerprint = fingerprint(&lines);
    let items = priced(&state, &lines).await?;
    let Started { state: saga, new } = state
        .runtime()
        .entity::<Order>(id)
        .with_timeout(TIMEOUT)
        .ask(Start(Place {
            user_id,
            items,
            idempotency_key: key,
            fingerprint,
        }))
        .await
        .map_err(write_failed)?;
    let order = OrderState::of(id, &saga);
    tracing::info!(order = %order.id, user = %user_id, new, total_cents = order.total_cents, "order placed");
    Ok((StatusCode::ACCEPTED, axum::Json(order.into())))
}

/// The saga of order `id`, which must be the caller's (or the caller an admin).
pub(crate) async fn owned_saga(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(Id, SagaState<orders::OrderData>), ApiError> {
    let id: Id = id
        .parse()
        .map_err(|_| ApiError::InvalidRequest(format!("id: {id:?} is not a UUID")))?;
    let saga = saga_of(state, id).await?;
    if !caller.may_act_for(&saga.data.user_id.to_string()) {
        return Err(ApiError::Forbidden(format!("order {id} is not yours")));
    }
    Ok((id, saga))
}

/// The saga of order `id` as it stands.
async fn saga_of(state: &AppState, id: Id) -> Result<SagaState<orders::OrderData>, ApiError> {
    state
        .runtime()
        .entity::<Order>(id)
        .with_timeout(TIMEOUT)
        .ask(Get)
        .await
        .map_err(read_failed)
}

/// Order `id`, which must be the caller's (or the caller an admin).
async fn owned_order(state: &AppState, caller: &Caller, id: &str) -> Result<OrderState, ApiError> {
    let (id, saga) = owned_saga(state, caller, id).await?;
    Ok(OrderState::of(id, &saga))
}

/// `GET /api/v1/orders/{id}`.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, description = "The order id (UUID)")),
    responses(
        (status = 200, description = "The order", body = doc::Order),
        (status = 400, description = "`id` is not a UUID"),
        (status = 403, description = "Another user's order"),
        (status = 404, description = "No such order")))]
async fn read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<OrderJson>, ApiError> {
    Ok(axum::Json(owned_order(&state, &caller, &id).await?.into()))
}

/// `POST /api/v1/orders/{id}/cancel`: a pending order cancelled by its user; a cancelled one
/// as it is; a confirmed one is a 409.
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", tag = "orders",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The order id (UUID)")),
    responses(
        (status = 200, description = "The order once its saga has undone what was done \
            (`cancelled`, `cancelled_by_user`; still `pending` if that took over 5 s); a \
            cancelled order is answered unchanged", body = doc::Order),
        (status = 400, description = "`id` is not a UUID"),
        (status = 403, description = "Another user's order"),
        (status = 404, description = "No such order"),
        (status = 409, description = "The order is confirmed, or is being confirmed (its \
            payment is taken): it can no longer be cancelled"),
        (status = 504, description = "No answer in time: read the order before repeating")))]
async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<OrderJson>, ApiError> {
    let (id, _) = owned_saga(&state, &caller, &id).await?;
    let saga = state
        .runtime()
        .entity::<Order>(id)
        .with_timeout(TIMEOUT)
        .ask(Abort {
            reason: CancelReason::CancelledByUser.as_str().to_string(),
        })
        .await
        .map_err(write_failed)?;
    // The saga undoes what was done: answered once it has (or as it stands after a while).
    let mut order = OrderState::of(id, &saga);
    let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
    let mut pause = Duration::from_millis(5);
    while !order.status.is_final() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
        order = OrderState::of(id, &saga_of(&state, id).await?);
    }
    tracing::info!(order = %id, status = order.status.as_str(), "order cancel asked");
    Ok(axum::Json(order.into()))
}

/// One step of a saga as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct SagaStepJson {
    name: String,
    status: &'static str,
    attempts: u32,
    compensations: u32,
    last_error: Option<String>,
    updated_at: String,
}

/// One history entry of a saga as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct TransitionJson {
    at: String,
    from: String,
    to: String,
    note: String,
}

/// A saga as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct SagaJson {
    id: String,
    state: &'static str,
    reason: Option<String>,
    steps: Vec<SagaStepJson>,
    history: Vec<TransitionJson>,
    created_at: String,
    updated_at: String,
}

impl SagaJson {
    /// Why it compensates or compensated, if it does.
    pub(crate) fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// Saga `id` as the API shows it.
    pub(crate) fn of<D>(id: Id, saga: &SagaState<D>) -> Self {
        Self {
            id: id.to_string(),
            state: saga.phase.as_str(),
            reason: match &saga.phase {
                troupe_runtime::saga::Phase::Compensating { reason, .. }
                | troupe_runtime::saga::Phase::Compensated { reason } => Some(reason.clone()),
                _ => None,
            },
            steps: saga
                .steps
                .iter()
                .map(|s| SagaStepJson {
                    name: s.spec.name.clone(),
                    status: s.status.as_str(),
                    attempts: s.attempts,
                    compensations: s.compensations,
                    last_error: s.last_error.clone(),
                    updated_at: rfc3339(s.updated_at_ms),
                })
                .collect(),
            history: saga
                .history
                .iter()
                .map(|t| TransitionJson {
                    at: rfc3339(t.at_ms),
                    from: t.from.clone(),
                    to: t.to.clone(),
                    note: t.note.clone(),
                })
                .collect(),
            created_at: rfc3339(saga.created_at_ms),
            updated_at: rfc3339(saga.updated_at_ms),
        }
    }
}

/// `GET /api/v1/sagas/{id}`: the order's saga (the saga id is the order id).
#[utoipa::path(get, path = "/api/v1/sagas/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = String, Path, description = "The saga id: the order id (UUID)")),
    responses(
        (status = 200, description = "The saga: state, steps and history", body = doc::Saga),
        (status = 400, description = "`id` is not a UUID"),
        (status = 403, description = "Another user's order"),
        (status = 404, description = "No such saga")))]
async fn saga(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<SagaJson>, ApiError> {
    let (id, saga) = owned_saga(&state, &caller, &id).await?;
    Ok(axum::Json(SagaJson::of(id, &saga)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_order_id_is_the_users_and_keys_alone() {
        let (a, b) = (Id::new(), Id::new());
        assert_eq!(order_id(a, "k1"), order_id(a, "k1"));
        assert_ne!(order_id(a, "k1"), order_id(a, "k2"));
        assert_ne!(order_id(a, "k1"), order_id(b, "k1"));
    }

    #[test]
    fn a_fingerprint_tells_bodies_apart_by_product_and_quantity() {
        let (p, q) = (Id::new(), Id::new());
        assert_eq!(
            fingerprint(&[(p, 1), (q, 2)]),
            fingerprint(&[(p, 1), (q, 2)])
        );
        assert_ne!(fingerprint(&[(p, 1)]), fingerprint(&[(p, 2)]));
        assert_ne!(
            fingerprint(&[(p, 1), (q, 2)]),
            fingerprint(&[(q, 2), (p, 1)])
        );
    }

    #[test]
    fn keys_must_be_visible_ascii_of_1_to_200_bytes() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(IDEMPOTENCY_KEY, v.parse().unwrap());
            idempotency_key(&h)
        };
        assert_eq!(with("abc-123").unwrap(), Some("abc-123".into()));
        assert!(with("").is_err());
        assert!(with("has space").is_err());
        assert!(with(&"k".repeat(201)).is_err());
        assert!(with(&"k".repeat(200)).is_ok());
        assert_eq!(idempotency_key(&HeaderMap::new()).unwrap(), None);
    }
}

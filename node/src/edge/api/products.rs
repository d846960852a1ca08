//! Products and stock (`API.md`: Products and stock): create and restock for administrators,
//! read for anyone with a token. A sku is unique across the cluster through the sku index
//! (reserve, create, confirm; released if the creation is refused).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::time::Duration;
use troupe_actors::ids::Id;
use troupe_actors::inventory::{self, Create, Get, Product, ProductView, Restock, Skus};
use troupe_runtime::entity::AskError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::super::AppState;
use super::super::error::ApiError;
use super::super::extract::Json;
use super::super::guard::Caller;
use super::{domain, read_failed, write_failed};

/// How long each call of a request may take.
const TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(read))
        .routes(routes!(restock))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ProductJson {
    id: String,
    sku: String,
    name: String,
    price_cents: u64,
    stock: u64,
}

impl From<ProductView> for ProductJson {
    fn from(p: ProductView) -> Self {
        Self {
            id: p.id.to_string(),
            sku: p.sku,
            name: p.name,
            price_cents: p.price_cents,
            stock: p.stock,
        }
    }
}

/// A count from the client: negative or zero where it must be positive is impossible (422).
fn positive(field: &str, n: i64) -> Result<u64, ApiError> {
    u64::try_from(n)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::Unprocessable(format!("{field}: must be greater than 0, got {n}")))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewProduct {
    sku: String,
    name: String,
    price_cents: i64,
    stock: i64,
}

/// `POST /api/v1/products` (admin).
#[utoipa::path(post, path = "/api/v1/products", tag = "products", security(("bearer" = [])),
    request_body = NewProduct,
    responses(
        (status = 201, description = "Created", body = ProductJson),
        (status = 400, description = "A field is missing or wrong; the sku is not a valid sku"),
        (status = 403, description = "Not an admin"),
        (status = 409, description = "The sku is taken"),
        (status = 422, description = "`price_cents` is 0 or negative, or `stock` negative"),
        (status = 504, description = "No answer in time: the product may or may not exist")))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<NewProduct>, ApiError>,
) -> Result<(StatusCode, axum::Json<ProductJson>), ApiError> {
    // Who may comes before what they sent: a user's body is not looked at.
    caller.require_admin("creating products")?;
    let Json(request) = body?;
    inventory::validate_sku(&request.sku).map_err(|e| domain(&e))?;
    let name = inventory::normalize_name(&request.name).map_err(|e| domain(&e))?;
    let price_cents = positive("price_cents", request.price_cents)?;
    inventory::validate_price(price_cents).map_err(|e| domain(&e))?;
    let stock = u64::try_from(request.stock).map_err(|_| {
        ApiError::Unprocessable(format!("stock: must be 0 or more, got {}", request.stock))
    })?;
    let runtime = state.runtime();
    let id = Id::new();
    let sku = runtime
        .entity::<Skus>(request.sku.clone())
        .with_timeout(TIMEOUT);
    sku.ask(inventory::ReserveSku { product_id: id })
        .await
        .map_err(write_failed)?;
    let created = runtime
        .entity::<Product>(id)
        .with_timeout(TIMEOUT)
        .ask(Create {
            sku: request.sku,
            name,
            price_cents,
            stock,
        })
        .await;
    match created {
        Ok(product) => {
            sku.ask(inventory::Confirm { product_id: id })
                .await
                .map_err(write_failed)?;
            Ok((StatusCode::CREATED, axum::Json(product.into())))
        }
        Err(e) => {
            // Refused, or not sent: nothing was created, so the sku goes back. (An unknown
            // outcome keeps it reserved: an unconfirmed sku is taken over after a minute.)
            if matches!(&e, AskError::Domain(_))
                || matches!(&e, AskError::Call(c) if c.not_applied())
            {
                let _ = sku.ask(inventory::ReleaseSku { product_id: id }).await;
            }
            Err(write_failed(e))
        }
    }
}

fn product_id(id: &str) -> Result<Id, ApiError> {
    id.parse()
        .map_err(|_| ApiError::InvalidRequest(format!("id: {id:?} is not a UUID")))
}

/// `GET /api/v1/products/{id}`.
#[utoipa::path(get, path = "/api/v1/products/{id}", tag = "products", security(("bearer" = [])),
    params(("id" = String, Path, description = "The product id (UUID)")),
    responses(
        (status = 200, description = "The product", body = ProductJson),
        (status = 400, description = "`id` is not a UUID"),
        (status = 404, description = "No such product")))]
async fn read(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<ProductJson>, ApiError> {
    let product = state
        .runtime()
        .entity::<Product>(product_id(&id)?)
        .with_timeout(TIMEOUT)
        .ask(Get)
        .await
        .map_err(read_failed)?;
    Ok(axum::Json(product.into()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestockRequest {
    quantity: i64,
}

/// `POST /api/v1/products/{id}/restock` (admin).
#[utoipa::path(post, path = "/api/v1/products/{id}/restock", tag = "products",
    security(("bearer" = [])), request_body = RestockRequest,
    params(("id" = String, Path, description = "The product id (UUID)")),
    responses(
        (status = 200, description = "The product after the restock", body = ProductJson),
        (status = 400, description = "`id` is not a UUID"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "No such product"),
        (status = 422, description = "`quantity` is 0 or negative"),
        (status = 504, description = "No answer in time: the restock may or may not be made")))]
async fn restock(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<RestockRequest>, ApiError>,
) -> Result<axum::Json<ProductJson>, ApiError> {
    caller.require_admin("restocking")?;
    let Json(request) = body?;
    let id = product_id(&id)?;
    let quantity = positive("quantity", request.quantity)?;
    let product = state
        .runtime()
        .entity::<Product>(id)
        .with_timeout(TIMEOUT)
        .ask(Restock { quantity })
        .await
        .map_err(write_failed)?;
    Ok(axum::Json(product.into()))
}

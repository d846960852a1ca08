//! `PUT /admin/kv/{key}` and `GET /admin/kv/{key}` (`API.md`): the built-in `kv` service.
//!
//! A key is 1 to 256 bytes; a value is any JSON document up to 64 KiB as sent (it is stored as
//! sent, so a value under the limit stays under it). A `PUT` answers only once
//! the value is durable on the disk of the node that owns the key's shard; a `GET` shows only
//! durable values. While that node is down both answer 503 with `Retry-After`, at once. A `PUT`
//! that reached the shard but got no answer in time (the node froze, the connection dropped)
//! answers 504 `outcome_unknown`: the value may or may not have been stored.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use serde::Serialize;
use serde_json::Value;
use tokio::time::Duration;
use troupe_runtime::entity::AskError;
use troupe_runtime::kv::{Get, Kv, KvError, MAX_KEY_BYTES, MAX_VALUE_BYTES, Put};

use super::AppState;
use super::error::ApiError;

/// How long a kv request may take before it fails as unavailable.
const KV_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Stored {
    key: String,
    version: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Found {
    key: String,
    /// The JSON value as it was put.
    value: Value,
    version: u64,
}

fn check_key(key: &str) -> Result<(), ApiError> {
    super::extract::key_within(key, MAX_KEY_BYTES)
}

/// `PUT /admin/kv/{key}`.
#[utoipa::path(put, path = "/admin/kv/{key}", tag = "admin", security(("bearer" = [])),
    params(("key" = String, Path, description = "1 to 256 bytes")),
    request_body(content = Value, description = "Any JSON value, up to 64 KiB as sent"),
    responses(
        (status = 200, description = "Stored: the value is durable on the disk of its shard's node", body = Stored),
        (status = 400, description = "The key is empty or over 256 bytes, or the body is not JSON"),
        (status = 413, description = "The value is over 64 KiB, or the body over the edge's limit"),
        (status = 504, description = "The write reached the shard but no answer came in time: it may or may not be stored")))]
pub(crate) async fn put(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Stored>, ApiError> {
    check_key(&key)?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType(
            "expected a body with Content-Type: application/json".into(),
        ));
    }
    if body.len() > MAX_VALUE_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "a value is at most {MAX_VALUE_BYTES} bytes"
        )));
    }
    // Checked, then stored as the client sent it: written again by serde_json, a value can
    // grow past the limit it was checked against (`1e9` becomes `1000000000.0`).
    serde_json::from_slice::<Value>(&body)
        .map_err(|e| ApiError::InvalidRequest(format!("malformed JSON: {e}")))?;
    let version = state
        .runtime()
        .entity::<Kv>(key.clone())
        .with_timeout(KV_TIMEOUT)
        .ask(Put {
            value: body.to_vec(),
        })
        .await
        .map_err(|e| match e {
            AskError::Domain(e) => refused(e),
            AskError::Call(e) => e.into(),
            AskError::Store(e) => ApiError::Unavailable(format!("the write was not stored: {e}")),
        })?;
    Ok(axum::Json(Stored { key, version }))
}

/// What kv refuses, as the client's error.
fn refused(e: KvError) -> ApiError {
    match e {
        KvError::BadKey => ApiError::InvalidRequest(e.to_string()),
        KvError::TooLarge => ApiError::PayloadTooLarge(e.to_string()),
    }
}

/// `GET /admin/kv/{key}`.
#[utoipa::path(get, path = "/admin/kv/{key}", tag = "admin", security(("bearer" = [])),
    params(("key" = String, Path, description = "1 to 256 bytes")),
    responses(
        (status = 200, description = "The durable value and its version", body = Found),
        (status = 400, description = "The key is empty or over 256 bytes"),
        (status = 404, description = "No value under this key")))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<axum::Json<Found>, ApiError> {
    check_key(&key)?;
    let found = state
        .runtime()
        .entity::<Kv>(key.clone())
        .with_timeout(KV_TIMEOUT)
        .ask(Get)
        .await
        .map_err(|e| match e {
            AskError::Domain(e) => refused(e),
            AskError::Call(e) => ApiError::from_idempotent(e),
            AskError::Store(e) => ApiError::Unavailable(format!("the read failed: {e}")),
        })?
        .ok_or_else(|| ApiError::NotFound(format!("key {key:?} does not exist")))?;
    let value = serde_json::from_slice(&found.value)
        .map_err(|e| ApiError::Internal(format!("stored value is not JSON: {e}")))?;
    Ok(axum::Json(Found {
        key,
        value,
        version: found.version,
    }))
}

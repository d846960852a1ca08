//! `GET /health/live` and `GET /health/ready`.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;

/// What the health routes answer.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // a schema only: the handlers build it with `json!`
pub(crate) struct Health {
    /// `live` or `ready`.
    status: String,
    /// This node's id.
    node: String,
}

/// 200 while the process runs.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "The process runs", body = Health)))]
pub(crate) async fn live(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"status": "live", "node": state.node_id()}))
}

/// 200 once this node has seen every configured node up since it started and the runtime has
/// nothing against it (a peer up without a link, a service that gave up here and is cooling
/// down, ...); 503 naming the reasons otherwise.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "This node has seen the cluster formed and serves", body = Health),
        (status = 503, description = "Not ready: the message names the reasons")))]
pub(crate) async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let view = state.cluster_view();
    let reasons = state.runtime().not_ready_reasons();
    if view.formed && reasons.is_empty() {
        return Ok(Json(json!({"status": "ready", "node": state.node_id()})));
    }
    if view.formed {
        return Err(ApiError::Unavailable(format!(
            "node {} is not ready: {}",
            state.node_id(),
            reasons.join("; ")
        )));
    }
    let waiting: Vec<_> = view
        .nodes
        .iter()
        .filter(|n| n.status != troupe_runtime::NodeStatus::Up)
        .map(|n| n.id.to_string())
        .collect();
    Err(ApiError::Unavailable(format!(
        "node {} has not seen the cluster formed yet (waiting for {})",
        state.node_id(),
        waiting.join(", ")
    )))
}

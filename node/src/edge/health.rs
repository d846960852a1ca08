//! `GET /health/live` and `GET /health/ready`.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;

/// 200 while the process runs.
pub(crate) async fn live(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"status": "live", "node": state.node_id()}))
}

/// 200 once this node has seen every configured node up since it started; 503 before.
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

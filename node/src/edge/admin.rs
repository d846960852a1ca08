//! `GET /admin/cluster`: the cluster as this node sees it (`API.md`).
//!
//! The admin routes are not authenticated yet: until the auth work lands, the edge listens on
//! 127.0.0.1 by default and warns when bound elsewhere ([`crate::serve`]).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use troupe_runtime::NodeStatus;

use super::AppState;

#[derive(Serialize)]
pub(crate) struct ClusterResponse {
    node: String,
    formed: bool,
    nodes: Vec<NodeResponse>,
    services: Vec<serde_json::Value>,
}

#[derive(Serialize)]
struct NodeResponse {
    id: String,
    status: NodeStatus,
    cluster_addr: String,
    http_addr: Option<String>,
    last_heard_ms: Option<u64>,
    /// Changes when the node's process restarts.
    incarnation: Option<String>,
}

pub(crate) async fn cluster(State(state): State<AppState>) -> Json<ClusterResponse> {
    let view = state.cluster_view();
    Json(ClusterResponse {
        node: view.node.to_string(),
        formed: view.formed,
        nodes: view
            .nodes
            .iter()
            .map(|n| NodeResponse {
                id: n.id.to_string(),
                status: n.status,
                cluster_addr: n.cluster_addr.to_string(),
                http_addr: state.http_addr_of(n.id.as_str()).map(|a| a.to_string()),
                last_heard_ms: n.last_heard_ms,
                incarnation: n.incarnation.map(|i| format!("{i:016x}")),
            })
            .collect(),
        services: Vec::new(),
    })
}

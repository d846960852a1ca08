//! `GET /admin/metrics/cluster`: every node's counters in brief and their sum, as one node
//! gathers them, for the dashboard's cluster-wide rates (its page may talk to its own node
//! only, so it cannot read the other nodes' `/metrics`).
//!
//! The node answering reads its own counters and asks every other node for theirs through
//! the built-in `troupe.counters` service ([`counters`]): actor messages over the cluster's
//! links, all at once, each with a deadline of [`PEER_DEADLINE`]. A node the failure detector
//! holds down is not asked. A node that is down, does not answer in time or answers nonsense
//! is marked `unavailable` with the reason, and left out of the sum: the route answers within
//! about [`PEER_DEADLINE`] whatever the other nodes do, and never fails because one is down.
//!
//! The figures are totals since each node's process started; a rate is the difference of two
//! samples (the dashboard computes it, see `dashboard/lib.js`).

mod counters;

use axum::extract::State;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::{Duration, Instant};
use troupe_runtime::{CallOptions, NodeStatus};
use utoipa::ToSchema;

use counters::CountersRequest;
pub(crate) use counters::{Counters, NodeCounters};

use super::AppState;

/// How long a peer has to answer with its counters.
pub(crate) const PEER_DEADLINE: Duration = Duration::from_millis(1000);

/// The cluster's counters as one node gathered them.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ClusterMetricsResponse {
    /// The node that gathered them.
    node: String,
    /// How long each other node had to answer, in milliseconds.
    deadline_ms: u64,
    /// Every configured node, in configuration order.
    nodes: Vec<NodeMetrics>,
    /// The sum over the nodes that answered (`unavailable` ones are left out).
    total: NodeCounters,
    /// The nodes left out of `total`.
    unavailable: Vec<String>,
}

/// One node's counters, or why there are none.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct NodeMetrics {
    /// The node.
    node: String,
    /// Its status as the gathering node sees it.
    #[schema(value_type = super::openapi::NodeStatusSchema)]
    status: NodeStatus,
    /// Whether its counters are missing (down, no answer within the deadline, or an invalid
    /// answer): then `reason` says why.
    unavailable: bool,
    /// Why it is unavailable.
    reason: Option<String>,
    /// How long it took to answer, in milliseconds.
    elapsed_ms: Option<u64>,
    /// Its counters, when it answered.
    counters: Option<NodeCounters>,
}

/// What became of asking one node.
type Answer = Result<NodeCounters, String>;

/// Every node's counters (this node's read here, the others' asked for, all at once).
pub(crate) async fn gather(state: &AppState) -> ClusterMetricsResponse {
    let view = state.cluster_view();
    let me = view.node.clone();
    let router = state.runtime().router::<Counters>();
    let mut asked: JoinSet<(usize, Answer, Duration)> = JoinSet::new();
    let mut answers: Vec<Option<(Answer, Duration)>> = view.nodes.iter().map(|_| None).collect();
    for (i, peer) in view.nodes.iter().enumerate() {
        let started = Instant::now();
        if peer.id == me {
            let local = state.clone();
            asked.spawn(async move {
                let answer = tokio::task::spawn_blocking(move || counters::local(&local))
                    .await
                    .map_err(|e| format!("reading this node's counters failed: {e}"));
                (i, answer, started.elapsed())
            });
        } else if peer.status == NodeStatus::Down {
            answers[i] = Some((Err(format!("node {} is down", peer.id)), Duration::ZERO));
        } else {
            let router = router.clone();
            let options = CallOptions::timeout(PEER_DEADLINE)
                .idempotent()
                .on(peer.id.clone());
            let id = peer.id.clone();
            asked.spawn(async move {
                let answer = match router.call(CountersRequest::Now, options).await {
                    Ok(Some(counters)) => counters
                        .check()
                        .map(|()| counters)
                        .map_err(|e| format!("node {id} answered an invalid summary: {e}")),
                    Ok(None) => Err(format!("node {id} is shutting down")),
                    Err(e) => Err(format!("node {id} did not answer: {e}")),
                };
                (i, answer, started.elapsed())
            });
        }
    }
    // Every call has its deadline; this one bounds the whole, should a task outlive it.
    let all = async {
        while let Some(joined) = asked.join_next().await {
            if let Ok((i, answer, took)) = joined {
                answers[i] = Some((answer, took));
            }
        }
    };
    let _ = tokio::time::timeout(PEER_DEADLINE + Duration::from_millis(500), all).await;
    asked.abort_all();

    let mut total = NodeCounters::default();
    let mut unavailable = Vec::new();
    let nodes = view
        .nodes
        .iter()
        .zip(answers)
        .map(|(peer, answer)| {
            let (answer, took) = answer.unwrap_or_else(|| {
                (
                    Err(format!("node {} did not answer in time", peer.id)),
                    PEER_DEADLINE,
                )
            });
            let elapsed_ms = Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
            match answer {
                Ok(counters) => {
                    total.absorb(&counters);
                    NodeMetrics {
                        node: peer.id.to_string(),
                        status: peer.status,
                        unavailable: false,
                        reason: None,
                        elapsed_ms,
                        counters: Some(counters),
                    }
                }
                Err(reason) => {
                    tracing::debug!(node = %peer.id, %reason, "no counters from a node");
                    unavailable.push(peer.id.to_string());
                    NodeMetrics {
                        node: peer.id.to_string(),
                        status: peer.status,
                        unavailable: true,
                        reason: Some(reason),
                        elapsed_ms: None,
                        counters: None,
                    }
                }
            }
        })
        .collect();
    ClusterMetricsResponse {
        node: me.to_string(),
        deadline_ms: u64::try_from(PEER_DEADLINE.as_millis()).unwrap_or(u64::MAX),
        nodes,
        total,
        unavailable,
    }
}

/// `GET /admin/metrics/cluster`.
#[utoipa::path(get, path = "/admin/metrics/cluster", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "Every node's counters since its process started \
        (HTTP requests, by status class too; messages sent to and handled by each service's \
        members; member restarts; sagas started and finished) and their sum. This node asks \
        the others through the cluster, each with a deadline of `deadline_ms`: a node that is \
        down or does not answer in time is marked `unavailable` with the reason and left out \
        of `total`, and the answer still comes. Rates are differences of two samples; a \
        figure that went down means its node restarted.",
        body = ClusterMetricsResponse)))]
pub(crate) async fn cluster_metrics(
    State(state): State<AppState>,
) -> axum::Json<ClusterMetricsResponse> {
    axum::Json(gather(&state).await)
}

#[cfg(test)]
mod tests;

//! The operations routes under `/admin` (`API.md`): the cluster view, failure injection, the
//! throughput benchmark, and a single echo request for diagnostics.
//!
//! Chaos kills are rate-limited by the node whose members die
//! ([`troupe_runtime::runtime::KILLS_PER_SECOND`], 20 a second): beyond, 429 with
//! `Retry-After`. One benchmark runs at a time per node (a second gets 409), and its payload
//! times its senders is bounded ([`bench::MAX_BYTES_IN_FLIGHT`], 16 MiB): see
//! [`troupe_runtime::bench`] for why.
//!
//! These routes are not authenticated yet: until the auth work lands, the edge listens on
//! 127.0.0.1 by default and warns when bound elsewhere ([`crate::serve`]).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};
use troupe_runtime::bench::{self, BenchError, BenchMode, BenchReport, BenchService, BenchSpec};
use troupe_runtime::echo::{Echo, EchoError, EchoRequest};
use troupe_runtime::registry::NodeCount;
use troupe_runtime::runtime::KillError;
use troupe_runtime::{CallOptions, KilledMember, NodeId, NodeStatus};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::extract::Json;

#[derive(Serialize, ToSchema)]
pub(crate) struct ClusterResponse {
    node: String,
    formed: bool,
    nodes: Vec<NodeResponse>,
    services: Vec<ServiceResponse>,
    /// The event bus's subscriptions, as this node's code declares them.
    subscriptions: Vec<SubscriptionResponse>,
}

#[derive(Serialize, ToSchema)]
struct SubscriptionResponse {
    name: String,
    pattern: String,
    service: String,
}

#[derive(Serialize, ToSchema)]
struct NodeResponse {
    id: String,
    #[schema(value_type = super::openapi::NodeStatusSchema)]
    status: NodeStatus,
    cluster_addr: String,
    http_addr: Option<String>,
    last_heard_ms: Option<u64>,
    /// Changes when the node's process restarts.
    incarnation: Option<String>,
    /// Its store's size on disk, as it last said.
    store_bytes: Option<u64>,
}

#[derive(Serialize, ToSchema)]
struct ServiceResponse {
    name: String,
    #[schema(value_type = Vec<super::openapi::NodeCountSchema>)]
    members: Vec<NodeCount>,
    shards: Vec<ShardResponse>,
    /// For a sharded service: the placement this node agreed to, its pending moves (shards the
    /// configuration places on another node than the one holding their data) and refusals.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<super::openapi::PlacementSchema>)]
    placement: Option<troupe_runtime::shard::PlacementView>,
}

#[derive(Serialize, ToSchema)]
struct ShardResponse {
    shard: u32,
    node: String,
    /// `up` when its member is registered and its node up; else its node's status (or
    /// `starting` while the shard restarts on a live node).
    status: &'static str,
}

/// `GET /admin/cluster`.
#[utoipa::path(get, path = "/admin/cluster", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "The cluster as this node sees it", body = ClusterResponse)))]
pub(crate) async fn cluster(State(state): State<AppState>) -> axum::Json<ClusterResponse> {
    let view = state.cluster_view();
    let placements = state.runtime().placements();
    axum::Json(ClusterResponse {
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
                store_bytes: n.store_bytes,
            })
            .collect(),
        services: state
            .runtime()
            .services()
            .into_iter()
            .map(|s| ServiceResponse {
                shards: shards(&state, &s.name, &view),
                placement: placements
                    .iter()
                    .find(|(name, _)| *name == s.name)
                    .map(|(_, p)| p.clone()),
                name: s.name,
                members: s.members,
            })
            .collect(),
        subscriptions: state
            .runtime()
            .bus()
            .subscriptions()
            .into_iter()
            .map(|s| SubscriptionResponse {
                name: s.name().to_string(),
                pattern: s.pattern().as_str().to_string(),
                service: s.service().to_string(),
            })
            .collect(),
    })
}

fn shards(
    state: &AppState,
    service: &str,
    view: &troupe_runtime::ClusterView,
) -> Vec<ShardResponse> {
    let runtime = state.runtime();
    let map = runtime.shard_map(service);
    if map.is_empty() {
        return Vec::new();
    }
    let live = runtime.live_shards(service);
    map.iter()
        .enumerate()
        .map(|(shard, node)| {
            let node_status = view
                .peer(node.as_str())
                .map_or(NodeStatus::Down, |p| p.status);
            let status = match node_status {
                NodeStatus::Up if live.contains(&(node.clone(), shard as u32)) => "up",
                NodeStatus::Up => "starting",
                NodeStatus::Suspect => "suspect",
                NodeStatus::Down => "down",
            };
            ShardResponse {
                shard: shard as u32,
                node: node.to_string(),
                status,
            }
        })
        .collect()
}

/// A configured node id from a request field, or a 400 naming the field.
fn node_field(state: &AppState, field: &str, id: &str) -> Result<NodeId, ApiError> {
    state
        .runtime()
        .cluster()
        .settings()
        .nodes()
        .iter()
        .find(|n| n.id.as_str() == id)
        .map(|n| n.id.clone())
        .ok_or_else(|| {
            ApiError::InvalidRequest(format!("{field}: {id:?} is not a configured node"))
        })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KillRequest {
    service: String,
    node: Option<String>,
    shard: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct KillResponse {
    #[schema(value_type = Vec<super::openapi::KilledMemberSchema>)]
    killed: Vec<KilledMember>,
}

impl From<KillError> for ApiError {
    fn from(e: KillError) -> Self {
        match e {
            KillError::Call(e) => e.into(),
            e @ KillError::RateLimited { retry_after, .. } => ApiError::RateLimited {
                message: e.to_string(),
                retry_after,
            },
        }
    }
}

/// `POST /admin/chaos/kill`.
#[utoipa::path(post, path = "/admin/chaos/kill", tag = "admin", security(("bearer" = [])),
    request_body = KillRequest,
    responses(
        (status = 200, description = "Killed abruptly; the supervisor brings it back", body = KillResponse),
        (status = 400, description = "`node` is not a configured node, or `shard` is not a shard of the service (or lives elsewhere)"),
        (status = 404, description = "No such service, or no live member of it (on that node)"),
        (status = 429, description = "Over the kill rate of the node whose members die (20 a second)"),
        (status = 504, description = "No answer in time: the member may or may not have been killed")))]
pub(crate) async fn chaos_kill(
    State(state): State<AppState>,
    Json(request): Json<KillRequest>,
) -> Result<axum::Json<KillResponse>, ApiError> {
    let runtime = state.runtime();
    if !runtime.services().iter().any(|s| s.name == request.service) {
        return Err(ApiError::NotFound(format!(
            "service {:?} does not exist",
            request.service
        )));
    }
    let node = match &request.node {
        Some(id) => Some(node_field(&state, "node", id)?),
        None => None,
    };
    let killed = match request.shard {
        Some(shard) => {
            let map = runtime.shard_map(&request.service);
            if map.is_empty() {
                return Err(ApiError::InvalidRequest(format!(
                    "shard: service {} is not sharded",
                    request.service
                )));
            }
            let Some(owner) = map.get(shard as usize) else {
                return Err(ApiError::InvalidRequest(format!(
                    "shard: service {} has shards 0 to {}",
                    request.service,
                    map.len() - 1
                )));
            };
            if node.as_ref().is_some_and(|n| n != owner) {
                return Err(ApiError::InvalidRequest(format!(
                    "node: shard {shard} of {} lives on {owner}",
                    request.service
                )));
            }
            runtime.kill_shard(&request.service, shard).await?
        }
        None => {
            runtime
                .kill_member(&request.service, node.clone(), None)
                .await?
        }
    };
    if killed.is_empty() {
        let place = node.map(|n| format!(" on {n}")).unwrap_or_default();
        return Err(ApiError::NotFound(format!(
            "no live member of {}{place}",
            request.service
        )));
    }
    Ok(axum::Json(KillResponse { killed }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BenchRequest {
    target_node: String,
    #[schema(value_type = super::openapi::BenchModeSchema)]
    mode: BenchMode,
    payload_bytes: usize,
    duration_ms: u64,
    in_flight: usize,
    /// `echo` (default) or `kv`: durable puts to the target's kv shards.
    #[serde(default)]
    #[schema(value_type = Option<super::openapi::BenchServiceSchema>)]
    service: BenchService,
}

/// How long `/admin/bench` may take beyond the run itself (its barrier, slow starts).
pub(crate) const BENCH_SLACK: Duration = Duration::from_secs(60);

/// The longest a bench request may take.
pub(crate) fn bench_timeout() -> Duration {
    bench::MAX_DURATION + BENCH_SLACK
}

impl From<BenchError> for ApiError {
    fn from(e: BenchError) -> Self {
        match e {
            BenchError::Invalid(m) => ApiError::InvalidRequest(m),
            e @ BenchError::Busy(_) => ApiError::Conflict(e.to_string()),
            BenchError::Call(e) => e.into(),
            e @ BenchError::Failed(_) => ApiError::Unavailable(e.to_string()),
        }
    }
}

/// `POST /admin/bench`.
#[utoipa::path(post, path = "/admin/bench", tag = "admin", security(("bearer" = [])),
    request_body = BenchRequest,
    responses(
        (status = 200, description = "What the run measured", body = super::openapi::BenchReportSchema),
        (status = 400, description = "A field out of its bounds (named), or `target_node` not a configured node"),
        (status = 409, description = "A benchmark is already running on this node"),
        (status = 504, description = "No answer in time from the target")))]
pub(crate) async fn bench(
    State(state): State<AppState>,
    Json(request): Json<BenchRequest>,
) -> Result<axum::Json<BenchReport>, ApiError> {
    let target = node_field(&state, "target_node", &request.target_node)?;
    let spec = BenchSpec {
        target,
        mode: request.mode,
        payload_bytes: request.payload_bytes,
        duration: Duration::from_millis(request.duration_ms),
        in_flight: request.in_flight,
        service: request.service,
    };
    let report = bench::run(state.runtime(), spec).await?;
    Ok(axum::Json(report))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EchoBody {
    #[serde(default)]
    payload: String,
    node: Option<String>,
    #[serde(default)]
    delay_ms: u32,
    timeout_ms: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct EchoAnswer {
    payload: String,
    node: String,
    index: u32,
    handled: u64,
    elapsed_us: u64,
}

/// The longest `/admin/echo` may be asked to wait.
const MAX_ECHO_MS: u64 = 60_000;

/// `POST /admin/echo`: one echo request, for diagnostics.
#[utoipa::path(post, path = "/admin/echo", tag = "admin", security(("bearer" = [])),
    request_body = EchoBody,
    responses(
        (status = 200, description = "The echo, and which member answered", body = EchoAnswer),
        (status = 400, description = "`timeout_ms` or `delay_ms` out of range, or `node` not a configured node")))]
pub(crate) async fn echo(
    State(state): State<AppState>,
    Json(body): Json<EchoBody>,
) -> Result<axum::Json<EchoAnswer>, ApiError> {
    let timeout_ms = body.timeout_ms.unwrap_or(5_000);
    if !(1..=MAX_ECHO_MS).contains(&timeout_ms) {
        return Err(ApiError::InvalidRequest(format!(
            "timeout_ms: between 1 and {MAX_ECHO_MS}"
        )));
    }
    if u64::from(body.delay_ms) > MAX_ECHO_MS {
        return Err(ApiError::InvalidRequest(format!(
            "delay_ms: at most {MAX_ECHO_MS}"
        )));
    }
    let mut options = CallOptions::timeout(Duration::from_millis(timeout_ms)).idempotent();
    if let Some(node) = &body.node {
        options = options.on(node_field(&state, "node", node)?);
    }
    let request = EchoRequest {
        payload: body.payload.into_bytes(),
        delay_ms: body.delay_ms,
    };
    let started = Instant::now();
    let (response, _) = state
        .runtime()
        .router::<Echo>()
        .call_traced(request, options)
        .await
        .map_err(ApiError::from_idempotent)?;
    let response = response.map_err(|e| match e {
        EchoError::DeadlinePassed => ApiError::Unavailable(format!(
            "the deadline of {timeout_ms} ms passed before the echo was done"
        )),
    })?;
    Ok(axum::Json(EchoAnswer {
        payload: String::from_utf8_lossy(&response.payload).into_owned(),
        node: response.node.to_string(),
        index: response.index,
        handled: response.handled,
        elapsed_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
    }))
}

//! Schemas of the `troupe-runtime` types the admin routes answer with. The runtime knows
//! nothing of HTTP or OpenAPI, so these mirror its serde shapes here; the tests serialize the
//! real types and compare their fields with these, so a change there fails here.

use std::collections::BTreeMap;

use utoipa::ToSchema;

/// The health of a node as this node sees it.
#[derive(ToSchema)]
#[schema(as = NodeStatus, rename_all = "lowercase")]
#[allow(dead_code)] // a schema only
pub(crate) enum NodeStatusSchema {
    /// Connected, and heard from recently.
    Up,
    /// Connected, but silent for too long: perhaps frozen or overloaded.
    Suspect,
    /// Not connected, or silent for much too long.
    Down,
}

/// Live members of a service on one node.
#[derive(ToSchema)]
#[schema(as = NodeCount)]
#[allow(dead_code)]
pub(crate) struct NodeCountSchema {
    node: String,
    count: u64,
}

/// A shard whose configured node differs from the node that holds its data.
#[derive(ToSchema)]
#[schema(as = ShardMove)]
#[allow(dead_code)]
pub(crate) struct MoveSchema {
    shard: u32,
    /// The node that holds its data.
    from: String,
    /// The node the configuration places it on.
    to: String,
}

/// A sharded service's placement as this node serves it.
#[derive(ToSchema)]
#[schema(as = Placement)]
#[allow(dead_code)]
pub(crate) struct PlacementSchema {
    /// Whether this node has agreed to a placement (else it waits for `waiting_for`).
    agreed: bool,
    waiting_for: Vec<String>,
    /// The node of each shard, as served (empty until agreed, or when refused).
    owners: Vec<String>,
    pending_moves: Vec<MoveSchema>,
    /// Why the whole service is refused, if it is.
    refused: Option<String>,
}

/// A member killed on purpose; its supervisor restarts it.
#[derive(ToSchema)]
#[schema(as = KilledMember)]
#[allow(dead_code)]
pub(crate) struct KilledMemberSchema {
    service: String,
    node: String,
    /// Its slot.
    index: u32,
    /// Its actor id (the restarted member gets a new one).
    pid: u64,
}

/// One-way messages (`cast`) or requests awaiting replies (`call`).
#[derive(ToSchema)]
#[schema(as = BenchMode, rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum BenchModeSchema {
    Cast,
    Call,
}

/// What a benchmark drives: the echo members (default), durable kv puts or probe emits
/// (call mode only) of the target node.
#[derive(ToSchema)]
#[schema(as = BenchService, rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum BenchServiceSchema {
    Echo,
    Kv,
    Probe,
}

/// Latency percentiles, in microseconds.
#[derive(ToSchema)]
#[schema(as = Percentiles)]
#[allow(dead_code)]
pub(crate) struct PercentilesSchema {
    p50: u64,
    p90: u64,
    p99: u64,
    max: u64,
}

/// What a benchmark run measured.
#[derive(ToSchema)]
#[schema(as = BenchReport)]
#[allow(dead_code)]
pub(crate) struct BenchReportSchema {
    /// Messages delivered (cast) or replies received (call).
    messages: u64,
    /// Wall time of the run.
    seconds: f64,
    per_second: f64,
    latency_us: PercentilesSchema,
}

/// Delivery latency percentiles, in microseconds.
#[derive(ToSchema)]
#[schema(as = DeliveryLatency)]
#[allow(dead_code)]
pub(crate) struct LatencySchema {
    p50: u64,
    p99: u64,
    max: u64,
}

/// One subscription's deliveries on this node.
#[derive(ToSchema)]
#[schema(as = SubscriptionStats)]
#[allow(dead_code)]
pub(crate) struct SubscriptionStatsSchema {
    name: String,
    pattern: String,
    service: String,
    delivered: u64,
    refused: u64,
    retried: u64,
    dead_lettered: u64,
    latency_us: LatencySchema,
}

/// What this node's relays did.
#[derive(ToSchema)]
#[schema(as = EventStats)]
#[allow(dead_code)]
pub(crate) struct EventStatsSchema {
    /// Events committed to outboxes here, per topic.
    published: BTreeMap<String, u64>,
    subscriptions: Vec<SubscriptionStatsSchema>,
    /// Events waiting in each of this node's shards' outboxes.
    backlog: BTreeMap<String, u64>,
}

//! The message-throughput benchmark users run against their own cluster: this node drives the
//! `echo` members of a target node (itself or another) for a while and reports.
//!
//! - `call` mode: `in_flight` loops, each sending a request and awaiting its reply; latency is
//!   the round trip.
//! - `cast` mode: `in_flight` loops sending one-way messages as fast as the link takes them;
//!   at the end each loop sends a call to every echo member of the target, which (messages from
//!   one sender to one member arrive in order) returns only once all its casts were handled.
//!   The time includes that barrier; latency is the time to hand a message to the runtime
//!   (sampled: one cast in 64).

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};

use crate::cluster::NodeId;
use crate::echo::{Echo, EchoRequest};
use crate::kv::{Kv, KvRequest, KvResponse};
use crate::runtime::Runtime;
use crate::service::{CallError, CallOptions};

/// One-way or request/response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchMode {
    /// One-way messages.
    Cast,
    /// Requests awaiting replies.
    Call,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchSpec {
    /// The node whose echo members are driven.
    pub target: NodeId,
    /// The mode.
    pub mode: BenchMode,
    /// Payload size.
    pub payload_bytes: usize,
    /// How long to send.
    pub duration: Duration,
    /// Concurrent senders.
    pub in_flight: usize,
    /// What is driven.
    pub service: BenchService,
}

/// The service a benchmark drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchService {
    /// The echo members of the target node.
    #[default]
    Echo,
    /// Durable puts to the kv shards that live on the target node (call mode only): each
    /// message is a write acknowledged once it is on disk.
    Kv,
}

/// Latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Worst.
    pub max: u64,
}

/// What a run measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// Messages delivered (cast) or replies received (call).
    pub messages: u64,
    /// Wall time of the run, barrier included.
    pub seconds: f64,
    /// `messages / seconds`.
    pub per_second: f64,
    /// See the module docs for what is timed in each mode.
    pub latency_us: Percentiles,
}

fn histogram() -> Histogram<u64> {
    // 1 us to 60 s at 3 significant digits; these bounds are valid, so this cannot fail.
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// Runs the benchmark.
pub async fn run(runtime: &Runtime, spec: BenchSpec) -> Result<BenchReport, CallError> {
    if spec.service == BenchService::Kv {
        return run_kv(runtime, spec).await;
    }
    let echo = runtime.router::<Echo>();
    let members: Vec<u32> = echo
        .members()
        .into_iter()
        .filter(|(node, _)| *node == spec.target)
        .map(|(_, index)| index)
        .collect();
    if members.is_empty() {
        return Err(CallError::NoMember(format!("echo on {}", spec.target)));
    }
    let payload = vec![0xab_u8; spec.payload_bytes];
    let started = Instant::now();
    let stop_at = started + spec.duration;
    let mut tasks = Vec::with_capacity(spec.in_flight);
    for _ in 0..spec.in_flight.max(1) {
        let echo = echo.clone();
        let request = EchoRequest::new(payload.clone());
        let target = spec.target.clone();
        let members = members.clone();
        let mode = spec.mode;
        tasks.push(tokio::spawn(async move {
            let mut latencies = histogram();
            let mut count = 0u64;
            let options = CallOptions::timeout(Duration::from_secs(10)).on(target.clone());
            while Instant::now() < stop_at {
                let sent = Instant::now();
                let result = match mode {
                    BenchMode::Call => echo
                        .call(request.clone(), options.clone())
                        .await
                        .map(|_| ()),
                    BenchMode::Cast => echo
                        .cast_with(request.clone(), options.clone())
                        .await
                        .map(|_| ()),
                };
                result?;
                let _ = latencies.record((sent.elapsed().as_micros() as u64).max(1));
                count += 1;
            }
            if mode == BenchMode::Cast {
                for member in members {
                    let barrier = CallOptions {
                        timeout: Some(Duration::from_secs(60)),
                        node: Some(target.clone()),
                        member: Some(member),
                        ..CallOptions::default()
                    };
                    echo.call(EchoRequest::new(Vec::new()), barrier).await?;
                }
            }
            Ok::<_, CallError>((count, latencies))
        }));
    }
    collect(tasks, started).await
}

/// Durable puts to keys whose shards live on the target node.
async fn run_kv(runtime: &Runtime, spec: BenchSpec) -> Result<BenchReport, CallError> {
    let kv = runtime.router::<Kv>();
    let keys: Vec<String> = (0..100_000)
        .map(|i| format!("bench-{i}"))
        .filter(|k| {
            kv.shard_of(k.as_bytes())
                .is_some_and(|(_, node)| node == spec.target)
        })
        .take(4096)
        .collect();
    if keys.is_empty() {
        return Err(CallError::NoMember(format!("kv shards on {}", spec.target)));
    }
    let value = vec![b'7'; spec.payload_bytes.max(1)];
    let started = Instant::now();
    let stop_at = started + spec.duration;
    let mut tasks = Vec::new();
    for t in 0..spec.in_flight.max(1) {
        let kv = kv.clone();
        let keys = keys.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = histogram();
            let mut count = 0u64;
            let mut i = t;
            while Instant::now() < stop_at {
                let key = &keys[i % keys.len()];
                i += 7;
                let sent = Instant::now();
                let request = KvRequest::Put {
                    key: key.clone(),
                    value: value.clone(),
                };
                match kv
                    .call_sharded(
                        key.as_bytes(),
                        request,
                        CallOptions::timeout(Duration::from_secs(10)),
                    )
                    .await?
                {
                    KvResponse::Put { .. } => {}
                    other => {
                        return Err(CallError::BadMessage(format!(
                            "unexpected answer {other:?}"
                        )));
                    }
                }
                let _ = latencies.record((sent.elapsed().as_micros() as u64).max(1));
                count += 1;
            }
            Ok::<_, CallError>((count, latencies))
        }));
    }
    collect(tasks, started).await
}

/// One sender task: messages sent and their latencies.
type Sender = tokio::task::JoinHandle<Result<(u64, Histogram<u64>), CallError>>;

async fn collect(tasks: Vec<Sender>, started: Instant) -> Result<BenchReport, CallError> {
    let mut messages = 0;
    let mut latencies = histogram();
    for task in tasks {
        let (count, h) = task
            .await
            .map_err(|e| CallError::BadMessage(format!("bench task failed: {e}")))??;
        messages += count;
        let _ = latencies.add(&h);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(BenchReport {
        messages,
        seconds,
        per_second: if seconds > 0.0 {
            messages as f64 / seconds
        } else {
            0.0
        },
        latency_us: Percentiles {
            p50: latencies.value_at_quantile(0.5),
            p90: latencies.value_at_quantile(0.9),
            p99: latencies.value_at_quantile(0.99),
            max: latencies.max(),
        },
    })
}

//! The message-throughput benchmark users run against their own cluster: this node drives the
//! `echo` members of a target node (itself or another) for a while and reports.
//!
//! - `call` mode: `in_flight` loops, each sending a request and awaiting its reply; latency is
//!   the round trip.
//! - `cast` mode: `in_flight` loops sending one-way messages as fast as the link takes them;
//!   at the end each loop sends a call to every echo member of the target, which (messages from
//!   one sender to one member arrive in order) returns only once all its casts were handled.
//!   The time includes that barrier (and the barriers that keep casts within the budget, see
//!   below); latency is the time to hand a message to the runtime.
//!
//! # Limits
//!
//! A benchmark is a load a client asks a node to make, so it is bounded as a whole, not only
//! field by field ([`BenchSpec::validate`]):
//!
//! - `payload_bytes x in_flight` is at most [`MAX_BYTES_IN_FLIGHT`] (16 MiB). Each message in
//!   flight holds its payload several times across the two nodes (the sender's copy, the
//!   encoded frame, the receiver's read buffer and decoded request, the reply both ways) plus
//!   the allocator's slack: measured, a call run takes about nine times its product in
//!   resident memory (1 MiB x 16: +136 MB; 1 MiB x 64: +513 MB). 16 MiB keeps a benchmark
//!   near 150 MB per pair of nodes, well inside a small node, while still allowing 1 MiB x 16,
//!   64 KiB x 256 or 16 KiB x 1,024. (Unbounded, 1 MiB x 1,024 took a node to 3.8 GB and
//!   starved its failure detector.)
//! - In cast mode nothing waits for a reply, so a sender would otherwise queue as many casts
//!   as the link and mailboxes take (thousands, whatever their size): each sender instead waits
//!   for its casts to be handled (the barrier above) after every window of casts, sized so that
//!   all senders together never have more than the same budget of payload outstanding.
//! - One benchmark at a time per node: a second is refused with [`BenchError::Busy`] while
//!   one runs. A run whose caller goes away (its future is dropped) stops its senders at once.
//! - A kv benchmark writes values of `payload_bytes`: at most [`MAX_VALUE_BYTES`].

use std::sync::Arc;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Duration, Instant};

use crate::cluster::NodeId;
use crate::echo::{Echo, EchoRequest};
use crate::entity::{AskError, Command, Entity, EntityService};
use crate::kv::{Kv, MAX_VALUE_BYTES, Put};
use crate::runtime::Runtime;
use crate::service::{CallError, CallOptions};

/// The largest payload of one message.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// The longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(60);
/// The most concurrent senders.
pub const MAX_IN_FLIGHT: usize = 1024;
/// The most payload bytes a run may have in flight at once: `payload_bytes x in_flight` (see
/// the module docs for why 16 MiB).
pub const MAX_BYTES_IN_FLIGHT: usize = 16 * 1024 * 1024;
/// The most casts a sender sends before it waits for them to be handled.
const MAX_CAST_WINDOW: usize = 65_536;

/// Why a benchmark did not run or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The spec is out of bounds; the message names the fields.
    #[error("{0}")]
    Invalid(String),
    /// Another benchmark is running on this node.
    #[error("a benchmark is already running on node {0}; one runs at a time per node")]
    Busy(NodeId),
    /// A message could not be delivered.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The driven service refused or failed a request.
    #[error("the service failed a request: {0}")]
    Failed(String),
}

/// Lets one benchmark run at a time on a node.
#[derive(Debug)]
pub(crate) struct Gate(Arc<Semaphore>);

impl Default for Gate {
    fn default() -> Self {
        Self(Arc::new(Semaphore::new(1)))
    }
}

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
    /// Emits of the probes whose shards live on the target node (call mode only): each is a
    /// durable write that publishes an event (see [`crate::probe`]).
    Probe,
}

impl BenchSpec {
    /// Checks every bound of the module docs; the error names the fields.
    pub fn validate(&self) -> Result<(), BenchError> {
        let invalid = |m: String| Err(BenchError::Invalid(m));
        if self.payload_bytes > MAX_PAYLOAD_BYTES {
            return invalid(format!("payload_bytes: at most {MAX_PAYLOAD_BYTES}"));
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return invalid(format!(
                "duration_ms: between 1 and {}",
                MAX_DURATION.as_millis()
            ));
        }
        if !(1..=MAX_IN_FLIGHT).contains(&self.in_flight) {
            return invalid(format!("in_flight: between 1 and {MAX_IN_FLIGHT}"));
        }
        let in_flight_bytes = self.payload_bytes.saturating_mul(self.in_flight);
        if in_flight_bytes > MAX_BYTES_IN_FLIGHT {
            return invalid(format!(
                "payload_bytes x in_flight: at most {MAX_BYTES_IN_FLIGHT} bytes in flight, got {} x {} = {in_flight_bytes}",
                self.payload_bytes, self.in_flight
            ));
        }
        if self.service == BenchService::Probe && self.mode != BenchMode::Call {
            return invalid("mode: probe is benchmarked with calls (durable emits)".into());
        }
        if self.service == BenchService::Kv {
            if self.mode != BenchMode::Call {
                return invalid("mode: kv is benchmarked with calls (durable puts)".into());
            }
            if self.payload_bytes > MAX_VALUE_BYTES {
                return invalid(format!(
                    "payload_bytes: a kv value is at most {MAX_VALUE_BYTES} bytes"
                ));
            }
        }
        Ok(())
    }

    /// How many casts one sender sends before it waits for them to be handled.
    fn cast_window(&self) -> usize {
        let per_sender = MAX_BYTES_IN_FLIGHT / self.in_flight.max(1);
        (per_sender / self.payload_bytes.max(64)).clamp(1, MAX_CAST_WINDOW)
    }
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

/// Runs the benchmark, if its spec is within bounds and no other runs on this node. Dropping
/// the future stops the run.
pub async fn run(runtime: &Runtime, spec: BenchSpec) -> Result<BenchReport, BenchError> {
    spec.validate()?;
    let permit = Arc::clone(&runtime.bench_gate().0)
        .try_acquire_owned()
        .map_err(|_| BenchError::Busy(runtime.node().clone()))?;
    // Every sender holds the permit too: the next run starts only once all of them are gone.
    let permit = Arc::new(permit);
    let labels = [
        (
            "service",
            match spec.service {
                BenchService::Kv => "kv",
                BenchService::Probe => "probe",
                BenchService::Echo => "echo",
            },
        ),
        (
            "mode",
            if spec.mode == BenchMode::Call {
                "call"
            } else {
                "cast"
            },
        ),
    ];
    let report = match spec.service {
        BenchService::Kv => {
            let value = vec![b'7'; spec.payload_bytes.max(1)];
            run_entity::<Kv, _>(runtime, spec, permit, move || Put {
                value: value.clone(),
            })
            .await?
        }
        BenchService::Probe => {
            run_entity::<crate::probe::Probe, _>(runtime, spec, permit, || crate::probe::Emit)
                .await?
        }
        BenchService::Echo => run_echo(runtime, spec, permit).await?,
    };
    ::metrics::counter!(crate::metrics::BENCH_RUNS, &labels).increment(1);
    Ok(report)
}

async fn run_echo(
    runtime: &Runtime,
    spec: BenchSpec,
    permit: Arc<OwnedSemaphorePermit>,
) -> Result<BenchReport, BenchError> {
    let echo = runtime.router::<Echo>();
    let members: Vec<u32> = echo
        .members()
        .into_iter()
        .filter(|(node, _)| *node == spec.target)
        .map(|(_, index)| index)
        .collect();
    if members.is_empty() {
        return Err(CallError::NoMember(format!("echo on {}", spec.target)).into());
    }
    let payload = vec![0xab_u8; spec.payload_bytes];
    let window = spec.cast_window();
    let started = Instant::now();
    let stop_at = started + spec.duration;
    let mut tasks = JoinSet::new();
    for _ in 0..spec.in_flight {
        let echo = echo.clone();
        let request = EchoRequest::new(payload.clone());
        let target = spec.target.clone();
        let members = members.clone();
        let mode = spec.mode;
        let permit = Arc::clone(&permit);
        tasks.spawn(async move {
            let _permit = permit;
            let mut latencies = histogram();
            let mut count = 0u64;
            let options = CallOptions::timeout(Duration::from_secs(10)).on(target.clone());
            while Instant::now() < stop_at {
                let sent = Instant::now();
                match mode {
                    BenchMode::Call => {
                        echo.call(request.clone(), options.clone())
                            .await?
                            .map_err(|e| BenchError::Failed(e.to_string()))?;
                    }
                    BenchMode::Cast => {
                        echo.cast_with(request.clone(), options.clone()).await?;
                    }
                }
                let _ = latencies.record((sent.elapsed().as_micros() as u64).max(1));
                count += 1;
                if mode == BenchMode::Cast && count.is_multiple_of(window as u64) {
                    barrier(&echo, &target, &members).await?;
                }
            }
            if mode == BenchMode::Cast {
                barrier(&echo, &target, &members).await?;
            }
            Ok::<_, BenchError>((count, latencies))
        });
    }
    collect(tasks, started).await
}

/// Returns once every cast this sender sent to `members` of `target` was handled: a call to
/// each, which (messages from one sender to one member arrive in order) comes after them.
async fn barrier(
    echo: &crate::Router<Echo>,
    target: &NodeId,
    members: &[u32],
) -> Result<(), BenchError> {
    for member in members {
        let options = CallOptions {
            timeout: Some(Duration::from_secs(60)),
            node: Some(target.clone()),
            member: Some(*member),
            ..CallOptions::default()
        };
        echo.call(EchoRequest::new(Vec::new()), options)
            .await?
            .map_err(|e| BenchError::Failed(e.to_string()))?;
    }
    Ok(())
}

/// Commands made by `command` to entities of type `E` whose shards live on the target node
/// (4,096 of them at most, each sender going through them in turn).
async fn run_entity<E, C>(
    runtime: &Runtime,
    spec: BenchSpec,
    permit: Arc<OwnedSemaphorePermit>,
    command: impl Fn() -> C + Clone + Send + 'static,
) -> Result<BenchReport, BenchError>
where
    E: Entity<Id = String>,
    C: Command<E>,
{
    let router = runtime.router::<EntityService<E>>();
    // Right after a start, the nodes may still be agreeing on where the shards are.
    let _ = router
        .shard_of_by(b"bench-0", Instant::now() + Duration::from_secs(5))
        .await;
    let keys: Vec<String> = (0..100_000)
        .map(|i| format!("bench-{i}"))
        .filter(|k| {
            router
                .shard_of(k.as_bytes())
                .is_some_and(|(_, node)| node == spec.target)
        })
        .take(4096)
        .collect();
    if keys.is_empty() {
        return Err(CallError::NoMember(format!("{} shards on {}", E::NAME, spec.target)).into());
    }
    let started = Instant::now();
    let stop_at = started + spec.duration;
    let mut tasks = JoinSet::new();
    let entities: Vec<_> = keys
        .iter()
        .map(|k| {
            runtime
                .entity::<E>(k.clone())
                .with_timeout(Duration::from_secs(10))
        })
        .collect();
    let entities = Arc::new(entities);
    for t in 0..spec.in_flight {
        let entities = Arc::clone(&entities);
        let command = command.clone();
        let permit = Arc::clone(&permit);
        tasks.spawn(async move {
            let _permit = permit;
            let mut latencies = histogram();
            let mut count = 0u64;
            let mut i = t;
            while Instant::now() < stop_at {
                let entity = &entities[i % entities.len()];
                i += 7;
                let sent = Instant::now();
                match entity.ask(command()).await {
                    Ok(_) => {}
                    Err(AskError::Call(e)) => return Err(e.into()),
                    Err(e) => return Err(BenchError::Failed(e.to_string())),
                }
                let _ = latencies.record((sent.elapsed().as_micros() as u64).max(1));
                count += 1;
            }
            Ok::<_, BenchError>((count, latencies))
        });
    }
    collect(tasks, started).await
}

/// The sender tasks: each gives the messages it sent and their latencies. Dropping the set
/// aborts them.
type Senders = JoinSet<Result<(u64, Histogram<u64>), BenchError>>;

async fn collect(mut tasks: Senders, started: Instant) -> Result<BenchReport, BenchError> {
    let mut messages = 0;
    let mut latencies = histogram();
    while let Some(done) = tasks.join_next().await {
        let (count, h) =
            done.map_err(|e| BenchError::Failed(format!("a bench sender failed: {e}")))??;
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

#[cfg(test)]
mod tests;

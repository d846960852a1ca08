//! Entity asks beside plain service calls, on one node, in the same run.
//!
//! `cargo bench --bench entity` starts one node in-process with a store in a temporary
//! directory, hosting a stateless service (`Router::call`, the baseline) and an entity with a
//! read command (no write: the reply waits only for what it read to be durable) and a write
//! command (one durable batch per ask). Each is measured with one ask in flight (latency
//! percentiles) and with 64 in flight (asks per second). Asks to another node's shards are
//! measured by `cargo bench --bench runtime -- store` (durable kv puts, n1 -> n2).

#![allow(clippy::unwrap_used)] // a benchmark that fails should stop loudly

use std::collections::HashMap;
use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};
use troupe_runtime::cluster::NodeSpec;
use troupe_runtime::entity::{Command, Commands, Context, DomainError, DomainKind, Entity};
use troupe_runtime::entity::{EntityRef, EntityService};
use troupe_runtime::runtime::StoreSettings;
use troupe_runtime::service::{MemberInfo, RequestContext, Service, ServiceError, ServiceSpec};
use troupe_runtime::supervisor::RestartPolicy;
use troupe_runtime::{CallOptions, ClusterSettings, NodeId, Router, Runtime, RuntimeSettings};

/// Asks per measurement.
const SEQUENTIAL: usize = 20_000;
/// How long each 64-in-flight measurement runs.
const WINDOW: Duration = Duration::from_secs(3);

struct Ping;

impl Service for Ping {
    const NAME: &'static str = "ping";
    type Request = u64;
    type Response = u64;
    type State = ();

    async fn init(&self, _member: &MemberInfo) -> Result<(), ServiceError> {
        Ok(())
    }

    async fn handle(&self, _: &mut (), n: u64, _cx: &RequestContext<'_>) -> u64 {
        n + 1
    }
}

struct Probe;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl std::error::Error for Never {}

impl DomainError for Never {
    fn kind(&self) -> DomainKind {
        DomainKind::Conflict
    }
}

impl Entity for Probe {
    const NAME: &'static str = "probe";
    type Id = u64;
    type State = u64;
    type Error = Never;

    fn commands(commands: &mut Commands<Self>) {
        commands.add::<Read>().add::<Bump>();
    }
}

#[derive(Serialize, Deserialize)]
struct Read;

impl Command<Probe> for Read {
    const NAME: &'static str = "read";
    const IDEMPOTENT: bool = true;
    type Reply = u64;
    fn handle(self, cx: &mut Context<'_, Probe>) -> Result<u64, Never> {
        Ok(cx.state().copied().unwrap_or(0))
    }
}

#[derive(Serialize, Deserialize)]
struct Bump;

impl Command<Probe> for Bump {
    const NAME: &'static str = "bump";
    type Reply = u64;
    fn handle(self, cx: &mut Context<'_, Probe>) -> Result<u64, Never> {
        let n = cx.state().copied().unwrap_or(0) + 1;
        cx.set(n);
        Ok(n)
    }
}

async fn node(dir: &std::path::Path) -> Runtime {
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let me = NodeId::try_new("b1").unwrap();
    let runtime = Runtime::start(RuntimeSettings {
        cluster: ClusterSettings::new(
            "b1",
            vec![NodeSpec {
                id: me.clone(),
                cluster_addr: format!("127.0.0.1:{}", ports[0]).parse().unwrap(),
            }],
            "entity-bench-cookie-0123456789".into(),
        )
        .unwrap(),
        link_addrs: HashMap::from([(me, format!("127.0.0.1:{}", ports[1]).parse().unwrap())]),
        services: HashMap::from([
            (
                Ping::NAME.to_string(),
                ServiceSpec {
                    members_per_node: 2,
                    ..ServiceSpec::default()
                },
            ),
            (
                Probe::NAME.to_string(),
                ServiceSpec {
                    shards: Some(16),
                    ..ServiceSpec::default()
                },
            ),
        ]),
        restart: RestartPolicy::default(),
        store: Some(StoreSettings {
            path: dir.join("store"),
            cache_bytes: 64 * 1024 * 1024,
        }),
        event_max_attempts: 5,
    })
    .await
    .unwrap();
    runtime.host(Ping).await.unwrap();
    runtime.host(EntityService::<Probe>::new()).await.unwrap();
    runtime
}

/// One ask of `e`: a durable write, or a read.
async fn ask(e: EntityRef<Probe>, write: bool) {
    if write {
        e.ask(Bump).await.unwrap();
    } else {
        e.ask(Read).await.unwrap();
    }
}

/// p50 and p99 of `SEQUENTIAL` sequential runs of `one`, in microseconds.
async fn latency<F, Fut>(mut one: F) -> (f64, f64)
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut us = Vec::with_capacity(SEQUENTIAL);
    for i in 0..SEQUENTIAL as u64 {
        let started = Instant::now();
        one(i).await;
        us.push(started.elapsed().as_secs_f64() * 1e6);
    }
    us.sort_by(f64::total_cmp);
    (us[us.len() / 2], us[us.len() * 99 / 100])
}

/// Runs per second of `one` with 64 in flight over `WINDOW`.
async fn throughput<F, Fut>(one: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let one = Arc::new(one);
    let started = Instant::now();
    let stop = started + WINDOW;
    let tasks: Vec<_> = (0..64u64)
        .map(|t| {
            let one = Arc::clone(&one);
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < stop {
                    one(t * 1_000_003 + n).await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let runtime = node(dir.path()).await;
        let ping: Router<Ping> = runtime.router::<Ping>();
        let entity = |i: u64| -> EntityRef<Probe> { runtime.entity::<Probe>(i % 4096) };
        // Warm up: every shard started and every entity written once.
        for i in 0..4096 {
            entity(i).ask(Bump).await.unwrap();
        }

        println!("one node, in-process ({SEQUENTIAL} sequential asks; 64 in flight for {WINDOW:?}):");
        let (p50, p99) = latency(|n| {
            let ping = ping.clone();
            async move {
                ping.call(n, CallOptions::default()).await.unwrap();
            }
        })
        .await;
        let rate = throughput({
            let ping = ping.clone();
            move |n| {
                let ping = ping.clone();
                async move {
                    ping.call(n, CallOptions::default()).await.unwrap();
                }
            }
        })
        .await;
        println!(
            "  Router::call (stateless)      p50 {p50:>6.1} us  p99 {p99:>7.1} us  {rate:>9.0} calls/s"
        );
        for (name, write) in [("entity ask, read", false), ("entity ask, durable write", true)] {
            let (p50, p99) = latency(|i| {
                let e = entity(i);
                ask(e, write)
            })
            .await;
            let runtime = runtime.clone();
            let rate = throughput(move |i| {
                let e = runtime.entity::<Probe>(i % 4096);
                ask(e, write)
            })
            .await;
            println!(
                "  {name:<29} p50 {p50:>6.1} us  p99 {p99:>7.1} us  {rate:>9.0} asks/s"
            );
        }
        let (flushes, writes) = runtime.store().unwrap().commit_stats();
        println!(
            "  group commit: {writes} writes in {flushes} flushes ({:.1} per flush)",
            writes as f64 / flushes.max(1) as f64
        );
        runtime.shutdown(Duration::from_secs(5)).await;
    });
}

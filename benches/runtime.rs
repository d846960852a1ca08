//! Runtime benchmarks, each printed beside its baseline measured in the same run.
//!
//! ```text
//! cargo bench --bench runtime                # everything
//! cargo bench --bench runtime -- local       # local sends through the registry and balancer
//! cargo bench --bench runtime -- remote      # two node processes on 127.0.0.1
//! cargo bench --bench runtime -- memory      # bytes per idle member, a node's RSS at rest
//! cargo bench --bench runtime -- store       # durable commits, routed shard puts, disk use
//! cargo bench --bench runtime -- scale       # kv at 16/256/4096 shards, echo at 2/64/1024 members
//! cargo bench --bench runtime -- events      # the event bus end to end, n1 -> n2
//! ```
//!
//! - local: one-way sends to a service member through `Router::cast` (registry, balancer,
//!   bounded mailbox) vs `ActorRef::cast` to one bare ractor actor; each run sends a burst and
//!   ends with a call that returns once every message was handled.
//! - remote: two `troupe node` processes; `/admin/bench` on one drives echo on the other
//!   (16-byte payloads). The baseline is two bare `ractor_cluster` processes (this binary run
//!   as peers), measured the same way: one-way casts for a while then a barrier call, and
//!   sequential calls.
//! - memory: heap taken by 10,000 idle members vs 10,000 bare actors, and the resident memory
//!   of an idle node vs an idle bare `ractor_cluster` node.
//! - store: durable commits per second through the store's group commit, one writer and 64,
//!   beside a bare sled insert+flush loop on the same disk; durable kv puts routed from one
//!   node to shards on another; disk and memory after 1,000,000 small writes.
//! - scale: how cost grows with a node's shards and members (two node processes, 64 in flight).
//! - events: events committed on one node, applied on another and acknowledged, per second
//!   and with their delivery latency, beside echo calls over the same link.
//!
//! The machine is noisy (2 shared cores): each figure is the median of several runs, and
//! only the ratio to the baseline of the same run is meant to be compared across machines.

#![allow(clippy::unwrap_used, clippy::print_stdout)] // a bench binary reports by printing
#![allow(unsafe_code)] // only the counting allocator below

mod events;
mod peer;

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;
use troupe_runtime::cluster::{ClusterSettings, NodeId, NodeSpec};
use troupe_runtime::service::{MemberInfo, RequestContext, Service, ServiceError, ServiceSpec};
use troupe_runtime::supervisor::RestartPolicy;
use troupe_runtime::{CallOptions, Runtime, RuntimeSettings};

const COOKIE: &str = "bench-cookie-0123456789abcdef";
/// The key the benchmark's nodes sign access tokens with.
const TOKEN_KEY: &str = "bench-token-key-0123456789abcdef-0123";

/// An HTTP client whose requests carry an admin's token (the admin routes need one).
fn admin_http() -> reqwest::Client {
    let token = troupe_node::auth::Tokens::new(
        TOKEN_KEY.as_bytes(),
        troupe_node::auth::ISSUER,
        troupe_node::auth::AUDIENCE,
        troupe_node::auth::TOKEN_TTL,
    )
    .issue("bench", troupe_node::auth::Role::Admin)
    .unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Counts live heap bytes, so that memory per actor is measured exactly rather than read off
/// the resident size (which moves with allocator arenas and thread caches).
struct Counting;

static LIVE_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counter only observes.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size, std::sync::atomic::Ordering::Relaxed);
        LIVE_BYTES.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> usize {
    LIVE_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--ractor-peer") {
        peer::main(&args[2..]);
        return;
    }
    // `cargo bench` passes `--bench`; anything else is a filter.
    let filters: Vec<&str> = args[1..]
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if wanted("local") {
        rt.block_on(local());
    }
    if wanted("remote") {
        rt.block_on(remote());
    }
    if wanted("memory") {
        rt.block_on(memory());
    }
    if wanted("store") {
        rt.block_on(store());
    }
    if wanted("scale") {
        rt.block_on(scale());
    }
    if wanted("events") {
        rt.block_on(events::events());
    }
}

fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct free ports (held together while chosen, so that they differ).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<_> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

// ---- a do-nothing service and its bare-actor twin ----

#[derive(Debug, Clone, Serialize, Deserialize)]
enum SinkRequest {
    Hit(u64),
    Count,
}

struct Sink;

impl Service for Sink {
    const NAME: &'static str = "sink";
    type Request = SinkRequest;
    type Response = u64;
    type State = u64;

    async fn init(&self, _member: &MemberInfo) -> Result<u64, ServiceError> {
        Ok(0)
    }

    async fn handle(&self, count: &mut u64, request: SinkRequest, _cx: &RequestContext<'_>) -> u64 {
        if let SinkRequest::Hit(n) = request {
            std::hint::black_box(n);
            *count += 1;
        }
        *count
    }
}

#[derive(RactorMessage)]
enum BareMsg {
    Hit(u64),
    Count(RpcReplyPort<u64>),
}

struct Bare;

impl Actor for Bare {
    type Msg = BareMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<BareMsg>, _: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<BareMsg>,
        msg: BareMsg,
        count: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            BareMsg::Hit(n) => {
                std::hint::black_box(n);
                *count += 1;
            }
            BareMsg::Count(reply) => {
                let _ = reply.send(*count);
            }
        }
        Ok(())
    }
}

/// A one-node runtime hosting `Sink` with `members` members.
async fn sink_runtime(members: u32) -> Runtime {
    let me = NodeId::try_new("b1").unwrap();
    let ports = free_ports(2);
    let cluster_addr = format!("127.0.0.1:{}", ports[0]).parse().unwrap();
    let link_addr = format!("127.0.0.1:{}", ports[1]).parse().unwrap();
    let settings = RuntimeSettings {
        cluster: ClusterSettings::new(
            "b1",
            vec![NodeSpec {
                id: me.clone(),
                cluster_addr,
            }],
            COOKIE.into(),
        )
        .unwrap(),
        link_addrs: HashMap::from([(me, link_addr)]),
        services: HashMap::from([(
            Sink::NAME.to_string(),
            ServiceSpec {
                members_per_node: members,
                mailbox_capacity: 1 << 20,
                ..ServiceSpec::default()
            },
        )]),
        restart: RestartPolicy::default(),
        store: None,
        event_max_attempts: 5,
    };
    let runtime = Runtime::start(settings).await.unwrap();
    runtime.host(Sink).await.unwrap();
    runtime
}

async fn local() {
    const N: u64 = 1_000_000;
    const ROUNDS: usize = 9;
    let runtime = sink_runtime(1).await;
    let router = runtime.router::<Sink>();
    let (bare, _) = Actor::spawn(None, Bare, ()).await.unwrap();
    let mut ours = Vec::new();
    let mut base = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for i in 0..N {
            bare.cast(BareMsg::Hit(i)).unwrap();
        }
        ractor::call_t!(bare, BareMsg::Count, 60_000).unwrap();
        base.push(N as f64 / started.elapsed().as_secs_f64());

        let started = Instant::now();
        for i in 0..N {
            router.cast(SinkRequest::Hit(i)).await.unwrap();
        }
        router
            .call(
                SinkRequest::Count,
                CallOptions::timeout(Duration::from_secs(60)),
            )
            .await
            .unwrap();
        ours.push(N as f64 / started.elapsed().as_secs_f64());
    }
    let (ours, base) = (median(ours), median(base));
    println!("local one-way send, {N} messages x {ROUNDS} rounds (median):");
    println!("  bare ractor cast         {:>12.0} msg/s", base);
    println!(
        "  troupe Router::cast      {:>12.0} msg/s   ratio {:.2}x (target >= 0.90x)",
        ours,
        ours / base
    );
    runtime.shutdown(Duration::from_secs(5)).await;
}

/// Two `troupe node` processes (n1, n2) on free ports; killed on drop.
struct TwoNodes {
    children: Vec<Child>,
    http: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Drop for TwoNodes {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn two_nodes() -> TwoNodes {
    two_nodes_with("", 2).await
}

/// Two nodes with `extra` appended to their configuration, ready once each hosts
/// `echo_members` echo members.
async fn two_nodes_with(extra: &str, echo_members: u64) -> TwoNodes {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("[cluster]\ndata_dir = \"data\"\n[log]\nlevel = \"warn\"\n");
    let mut http = Vec::new();
    let ports = free_ports(6);
    for (i, id) in ["n1", "n2"].iter().enumerate() {
        let port = ports[3 * i + 1];
        http.push(port);
        text.push_str(&format!(
            "[[node]]\nid = \"{id}\"\ncluster_addr = \"127.0.0.1:{}\"\nhttp_addr = \"127.0.0.1:{port}\"\nlink_addr = \"127.0.0.1:{}\"\n",
            ports[3 * i],
            ports[3 * i + 2]
        ));
    }
    text.push('\n');
    text.push_str(extra);
    let config = dir.path().join("cluster.toml");
    std::fs::write(&config, text).unwrap();
    let children = ["n1", "n2"]
        .iter()
        .map(|id| {
            Command::new(env!("CARGO_BIN_EXE_troupe"))
                .args(["node", "--id", id, "--exit-with-stdin", "--config"])
                .arg(&config)
                .env("TROUPE_COOKIE", COOKIE)
                .env("TROUPE_JWT_SECRET", TOKEN_KEY)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let nodes = TwoNodes {
        children,
        http,
        _dir: dir,
    };
    let client = admin_http();
    let started = Instant::now();
    'wait: loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nodes did not get ready"
        );
        for port in &nodes.http {
            let ok = client
                .get(format!("http://127.0.0.1:{port}/admin/cluster"))
                .send()
                .await
                .ok()
                .and_then(|r| r.status().is_success().then_some(r));
            let Some(response) = ok else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue 'wait;
            };
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let echo_everywhere = body["services"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["name"] == "echo"))
                .is_some_and(|e| {
                    e["members"]
                        .as_array()
                        .is_some_and(|m| m.iter().all(|c| c["count"] == echo_members))
                });
            if !echo_everywhere {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue 'wait;
            }
        }
        return nodes;
    }
}

async fn troupe_bench(port: u16, mode: &str, in_flight: usize, duration_ms: u64) -> Value {
    let client = admin_http();
    client
        .post(format!("http://127.0.0.1:{port}/admin/bench"))
        .json(&json!({"target_node": "n2", "mode": mode, "payload_bytes": 16, "duration_ms": duration_ms, "in_flight": in_flight}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Durable kv puts (entity asks) from the node on `port` to the shards on n2, `in_flight` at
/// a time, for 3 s.
async fn kv_bench(port: u16, in_flight: usize) -> Value {
    admin_http()
        .post(format!("http://127.0.0.1:{port}/admin/bench"))
        .json(&json!({"target_node": "n2", "mode": "call", "service": "kv", "payload_bytes": 32, "duration_ms": 3000, "in_flight": in_flight}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn remote() {
    const ROUNDS: usize = 3;
    const MS: u64 = 3000;
    let base = peer::run_pair(ROUNDS, MS);
    let nodes = two_nodes().await;
    let port = nodes.http[0];
    // Warm up the link.
    troupe_bench(port, "call", 8, 500).await;
    let mut cast = Vec::new();
    let mut seq = Vec::new();
    let mut par = Vec::new();
    for _ in 0..ROUNDS {
        cast.push(troupe_bench(port, "cast", 4, MS).await);
        seq.push(troupe_bench(port, "call", 1, MS).await);
        par.push(troupe_bench(port, "call", 64, MS).await);
    }
    let rate = |v: &[Value]| {
        median(
            v.iter()
                .map(|r| r["per_second"].as_f64().unwrap())
                .collect(),
        )
    };
    let lat = |v: &[Value], q: &str| {
        median(
            v.iter()
                .map(|r| r["latency_us"][q].as_f64().unwrap())
                .collect(),
        )
    };
    println!(
        "cross-node, two processes on 127.0.0.1, 16-byte payload, {ROUNDS} rounds of {MS} ms (median):"
    );
    println!(
        "  one-way   bare ractor_cluster {:>10.0} msg/s",
        base.cast_per_s
    );
    println!(
        "            troupe               {:>10.0} msg/s     ratio {:.1}x (target >= 1,000,000 msg/s and >= 5x)",
        rate(&cast),
        rate(&cast) / base.cast_per_s
    );
    println!(
        "  call, 1 in flight   bare ractor_cluster p50 {:>5.0} us  p99 {:>5.0} us  {:>8.0} calls/s",
        base.seq_p50_us, base.seq_p99_us, base.seq_per_s
    );
    println!(
        "                      troupe              p50 {:>5.0} us  p99 {:>5.0} us  {:>8.0} calls/s   (target p50 <= 60 us)",
        lat(&seq, "p50"),
        lat(&seq, "p99"),
        rate(&seq)
    );
    println!(
        "  call, 64 in flight  bare ractor_cluster {:>8.0} calls/s",
        base.par_per_s
    );
    println!(
        "                      troupe              {:>8.0} calls/s   p50 {:.0} us  p99 {:.0} us   (target >= 100,000 calls/s)",
        rate(&par),
        lat(&par, "p50"),
        lat(&par, "p99")
    );
    drop(nodes);
}

async fn memory() {
    const N: u32 = 10_000;
    let settle = || tokio::time::sleep(Duration::from_millis(500));
    let before = live_bytes();
    let mut bare = Vec::new();
    for _ in 0..N {
        bare.push(Actor::spawn(None, Bare, ()).await.unwrap().0);
    }
    settle().await;
    let bare_bytes = live_bytes().saturating_sub(before);
    // A runtime's fixed cost (cluster, transport, system service) is measured with one member
    // and subtracted.
    let base = live_bytes();
    let one = sink_runtime(1).await;
    settle().await;
    let fixed = live_bytes().saturating_sub(base);
    let base = live_bytes();
    let runtime = sink_runtime(N + 1).await;
    settle().await;
    let members_bytes = live_bytes().saturating_sub(base).saturating_sub(fixed);
    println!("memory (live heap, counted by the allocator):");
    println!(
        "  {N} idle bare ractor actors   {:>6} bytes each",
        bare_bytes / N as usize
    );
    println!(
        "  {N} idle troupe members       {:>6} bytes each (actor, supervisor slot, registry entry, mailbox bound)",
        members_bytes / N as usize
    );
    println!(
        "  a one-node runtime's fixed heap       {:>6} KiB",
        fixed / 1024
    );
    for a in bare {
        a.stop(None);
    }
    runtime.shutdown(Duration::from_secs(10)).await;
    one.shutdown(Duration::from_secs(5)).await;

    let nodes = two_nodes().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let node_rss = rss_kib(nodes.children[0].id());
    let peer_rss = peer::idle_rss_kib();
    println!(
        "  idle bare ractor_cluster node process  {:>6} KiB resident",
        peer_rss
    );
    println!(
        "  idle troupe node (2-node cluster)      {:>6} KiB resident",
        node_rss
    );
    drop(nodes);
}

/// Latency percentiles (us) of a sorted sample.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

async fn store() {
    use troupe_runtime::store::{Store, WriteBatch};
    const RUN: Duration = Duration::from_secs(3);
    let dir = tempfile::tempdir().unwrap();

    // Bare sled: insert then flush, one writer, on the same disk.
    let bare_rate = {
        let path = dir.path().join("bare");
        tokio::task::spawn_blocking(move || {
            let db = sled::Config::new()
                .path(path)
                .cache_capacity(64 << 20)
                .flush_every_ms(None)
                .open()
                .unwrap();
            let started = Instant::now();
            let mut n = 0u64;
            let mut lat = Vec::new();
            while started.elapsed() < RUN {
                let t = Instant::now();
                db.insert(n.to_be_bytes(), &[7u8; 32][..]).unwrap();
                db.flush().unwrap();
                lat.push(t.elapsed().as_micros() as f64);
                n += 1;
            }
            lat.sort_by(f64::total_cmp);
            (
                n as f64 / started.elapsed().as_secs_f64(),
                percentile(&lat, 0.5),
                percentile(&lat, 0.99),
            )
        })
        .await
        .unwrap()
    };

    let store = tokio::task::spawn_blocking({
        let path = dir.path().join("troupe");
        move || Store::open(&path, 64 << 20).unwrap()
    })
    .await
    .unwrap();
    let mut results = Vec::new();
    for (writers, keys) in [(1usize, 1u64), (64, 1), (64, 2)] {
        let started = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let ks = store
                        .claim(&format!("bench/{writers}/{keys}/{w}"), Duration::ZERO)
                        .await
                        .unwrap();
                    let mut lat = Vec::new();
                    let mut n = 0u64;
                    while started.elapsed() < RUN {
                        let t = Instant::now();
                        let mut batch = WriteBatch::new();
                        for k in 0..keys {
                            batch
                                .put(
                                    &[&k.to_be_bytes()[..], &n.to_be_bytes()].concat(),
                                    &[7u8; 32],
                                )
                                .unwrap();
                        }
                        ks.commit(batch).await.unwrap();
                        lat.push(t.elapsed().as_micros() as f64);
                        n += 1;
                    }
                    lat
                })
            })
            .collect();
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.unwrap());
        }
        let rate = lat.len() as f64 / started.elapsed().as_secs_f64();
        lat.sort_by(f64::total_cmp);
        results.push((
            writers,
            keys,
            rate,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
        ));
    }
    let (flushes, writes) = store.commit_stats();
    println!(
        "store, durable commits of one 32-byte value, {} s each:",
        RUN.as_secs()
    );
    println!(
        "  bare sled insert+flush, 1 writer   {:>8.0} commits/s   p50 {:>5.0} us  p99 {:>6.0} us",
        bare_rate.0, bare_rate.1, bare_rate.2
    );
    for (writers, keys, rate, p50, p99) in results {
        println!(
            "  troupe Keyspace::commit, {writers:>2} writer{} {:>8.0} commits/s   p50 {:>5.0} us  p99 {:>6.0} us{}",
            if writers == 1 { " " } else { "s" },
            rate,
            p50,
            p99,
            if keys > 1 {
                "   (two keys per commit, atomic)"
            } else {
                ""
            }
        );
    }
    println!(
        "  group commit: {writes} writes in {flushes} flushes ({:.1} writes per flush)   (targets: 64 writers >= 20,000/s; 1 writer p50 <= 300 us)",
        writes as f64 / flushes.max(1) as f64
    );

    // Disk and memory after 1,000,000 small writes (in batches of 100, 64 writers at once).
    let before_rss = rss_kib(std::process::id());
    let started = Instant::now();
    let tasks: Vec<_> = (0..64u64)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let ks = store
                    .claim(&format!("million/{w}"), Duration::ZERO)
                    .await
                    .unwrap();
                for b in 0..(1_000_000 / 64 / 100 + 1) {
                    let mut batch = WriteBatch::new();
                    for i in 0..100u64 {
                        let key = (b * 100 + i).to_be_bytes();
                        batch.put(&key, &[w as u8; 32]).unwrap();
                    }
                    ks.commit(batch).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let took = started.elapsed();
    store.sync().await.unwrap();
    let disk = tokio::task::spawn_blocking({
        let path = dir.path().join("troupe");
        move || dir_size(&path)
    })
    .await
    .unwrap();
    println!(
        "  1,000,000 writes of 8-byte keys and 32-byte values: {:.1} s, {} MiB on disk, process resident {} MiB (+{} MiB)",
        took.as_secs_f64(),
        disk >> 20,
        rss_kib(std::process::id()) >> 10,
        rss_kib(std::process::id()).saturating_sub(before_rss) >> 10
    );
    drop(store);

    // Durable kv puts from n1 to the shards on n2, 64 in flight.
    let nodes = two_nodes().await;
    let report = kv_bench(nodes.http[0], 64).await;
    println!(
        "  kv puts routed n1 -> shards on n2, 64 in flight: {:.0} durable puts/s, p50 {} us, p99 {} us",
        report["per_second"].as_f64().unwrap_or_default(),
        report["latency_us"]["p50"],
        report["latency_us"]["p99"]
    );
    // One at a time: an entity ask across nodes (a durable write) beside a plain echo call
    // across the same link.
    let one = kv_bench(nodes.http[0], 1).await;
    let echo = troupe_bench(nodes.http[0], "call", 1, 3000).await;
    println!(
        "  1 in flight n1 -> n2: kv put (entity ask, durable) p50 {} us, p99 {} us; echo call p50 {} us, p99 {} us",
        one["latency_us"]["p50"],
        one["latency_us"]["p99"],
        echo["latency_us"]["p50"],
        echo["latency_us"]["p99"]
    );
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// How cost grows with the number of shards and members: durable kv puts n1 -> shards on n2 at
/// 16, 256 and 4,096 shards, and echo calls n1 -> n2 at 2, 64 and 1,024 members per node, all
/// with 64 in flight.
async fn scale() {
    println!("scale, two processes, 64 in flight, 3 s each:");
    for shards in [16u32, 256, 4096] {
        let nodes = two_nodes_with(&format!("[services.kv]\nshards = {shards}\n"), 2).await;
        // The shards start once the nodes agree where they are; the bench waits for that.
        let report = kv_bench(nodes.http[0], 64).await;
        println!(
            "  kv puts, {shards:>4} shards          {:>8.0} durable puts/s  p50 {:>5} us  p99 {:>6} us",
            report["per_second"].as_f64().unwrap_or(0.0),
            report["latency_us"]["p50"],
            report["latency_us"]["p99"]
        );
    }
    for members in [2u64, 64, 1024] {
        let nodes = two_nodes_with(
            &format!("[services.echo]\nmembers_per_node = {members}\n"),
            members,
        )
        .await;
        let report = troupe_bench(nodes.http[0], "call", 64, 3000).await;
        println!(
            "  echo calls, {members:>4} members/node  {:>8.0} calls/s        p50 {:>5} us  p99 {:>6} us",
            report["per_second"].as_f64().unwrap_or(0.0),
            report["latency_us"]["p50"],
            report["latency_us"]["p99"]
        );
    }
}

//! Edge benchmarks (issue 10), each printed beside its baseline measured in the same run.
//!
//! ```text
//! cargo bench --bench edge                # everything
//! cargo bench --bench edge -- get         # GET /api/v1/products/{id} with wrk
//! cargo bench --bench edge -- register    # POST /api/v1/users (Argon2id)
//! ```
//!
//! A cluster of three `troupe node` processes (the release binary) on free ports, hosting the
//! services of the default `cluster.toml` that these routes use (users, user-emails, wallets,
//! products, product-skus; 16 shards each), logging at `warn`.
//!
//! - get: one product created as admin, one user registered and logged in; `wrk` (one thread,
//!   32 connections, `--latency`) reads the product with the user's token through the edge of
//!   the node that owns the product's shard ("same node") and through another node's edge
//!   ("other node": the edge asks the owner over the link). The baseline is a bare axum server
//!   (this binary run as a child with `--bare`, its own process and runtime as a node has) whose
//!   one handler checks the same token with `jsonwebtoken` as the nodes do and returns the
//!   same JSON bytes. Also printed: CPU time per request of each process involved, from
//!   `/proc/<pid>/stat`.
//! - register: 8 clients registering distinct users through one node's edge, beside raw
//!   Argon2id hashes with the node's parameters in this process, 8 threads on the same cores.
//!
//! The machine is noisy (2 shared cores): each figure is the median of several rounds, the
//! load average is printed before and after, and only ratios to the baseline of the same run
//! are meant to be compared across machines. Needs `wrk` (`apt-get install wrk`).

#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)] // a bench binary reports by printing

#[path = "edge/bare.rs"]
mod bare;
#[path = "edge/cluster.rs"]
mod cluster;
#[path = "edge/register.rs"]
mod register;
#[path = "edge/wrk.rs"]
mod wrk;

use serde_json::{Value, json};
use tokio::time::Duration;
use troupe_runtime::entity::EntityId;

use cluster::{Cluster, Process};

/// The key the benchmark's nodes (and the bare server) check tokens with.
const TOKEN_KEY: &str = "bench-token-key-0123456789abcdef-0123";
/// Rounds of each measurement (the figures are their medians).
const ROUNDS: usize = 3;
/// Seconds of each `wrk` run.
const WRK_SECONDS: u32 = 10;
/// How long each registration and hashing run lasts.
const REGISTER_FOR: Duration = Duration::from_secs(10);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--bare") {
        bare::main(&args[2..]);
        return;
    }
    // `cargo bench` passes `--bench`; anything else is a filter.
    let filters: Vec<&str> = args[1..]
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wanted = |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f));
    if wanted("get")
        && let Err(e) = wrk::check_installed()
    {
        eprintln!("{e}");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("load before: {}", loadavg());
        let cluster = Cluster::start().await;
        if wanted("get") {
            get(&cluster).await;
        }
        if wanted("register") {
            registrations(&cluster).await;
        }
        println!("load after: {}", loadavg());
    });
}

fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "{} (1, 5, 15 min) on {cores} cores",
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The shard of the product with id `id` among `shards` (what the runtime computes to route
/// an ask to it).
fn product_shard(id: &str, shards: u32) -> u32 {
    let id: troupe_actors::ids::Id = id.parse().unwrap();
    troupe_runtime::shard::shard_of(&id.key(), shards)
}

/// One target of the read benchmark and the processes that serve it.
struct Target {
    name: String,
    url: String,
    /// Whose CPU time to report, with a label.
    processes: Vec<(String, Process)>,
}

/// What one run against a target measured.
struct Run {
    report: wrk::Report,
    /// CPU microseconds per request, per process of the target.
    cpu_us: Vec<f64>,
}

async fn get(cluster: &Cluster) {
    let admin = cluster::admin_http();
    let n1 = cluster.port(0);
    let created: Value = cluster
        .until_ok(|| {
            admin
                .post(format!("http://127.0.0.1:{n1}/api/v1/products"))
                .json(&json!({"sku": "bench-widget", "name": "Benchmark widget",
                              "price_cents": 1999, "stock": 100}))
        })
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let token = cluster.user_token("bench-reader@example.com").await;

    // Which node owns the product's shard, as the cluster says and as the id hashes.
    let state: Value = admin
        .get(format!("http://127.0.0.1:{n1}/admin/cluster"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let shards = state["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "products")
        .unwrap()["shards"]
        .as_array()
        .unwrap()
        .clone();
    let shard = product_shard(&id, shards.len() as u32);
    let owner = shards[shard as usize]["node"].as_str().unwrap().to_string();
    let owner_index = cluster.index_of(&owner);
    let other_index = (0..cluster.len()).find(|i| *i != owner_index).unwrap();
    let other = cluster.id(other_index).to_string();
    println!(
        "product {id}: shard {shard} of {}, on {owner}; \"other node\" is {other}",
        shards.len()
    );

    // The exact body the route answers with, from both edges.
    let client = reqwest::Client::new();
    let mut bodies = Vec::new();
    for index in [owner_index, other_index] {
        let response = client
            .get(format!(
                "http://127.0.0.1:{}/api/v1/products/{id}",
                cluster.port(index)
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        bodies.push(response.text().await.unwrap());
    }
    assert_eq!(bodies[0], bodies[1]);
    let body = bodies.swap_remove(0);
    println!("body ({} bytes): {body}", body.len());

    let bare = cluster::Bare::start(&body).await;
    let path = format!("/api/v1/products/{id}");
    let targets = [
        Target {
            name: "bare axum + jsonwebtoken".into(),
            url: format!("http://127.0.0.1:{}{path}", bare.port),
            processes: vec![("bare".into(), bare.process())],
        },
        Target {
            name: format!("same node ({owner} edge, shard on {owner})"),
            url: format!("http://127.0.0.1:{}{path}", cluster.port(owner_index)),
            processes: vec![(owner.clone(), cluster.process(owner_index))],
        },
        Target {
            name: format!("other node ({other} edge, shard on {owner})"),
            url: format!("http://127.0.0.1:{}{path}", cluster.port(other_index)),
            processes: vec![
                (format!("{other} edge"), cluster.process(other_index)),
                (format!("{owner} owner"), cluster.process(owner_index)),
            ],
        },
    ];
    // Warm every target (connections, caches) before measuring.
    for t in &targets {
        wrk::run(&t.url, &token, 2).await;
    }
    println!(
        "\nGET {path}: wrk -t{} -c{} -d{WRK_SECONDS}s --latency, {ROUNDS} rounds",
        wrk::THREADS,
        wrk::CONNECTIONS
    );
    let mut runs: Vec<Vec<Run>> = targets.iter().map(|_| Vec::new()).collect();
    for round in 0..ROUNDS {
        for (t, target) in targets.iter().enumerate() {
            let before: Vec<f64> = target.processes.iter().map(|(_, p)| p.cpu_us()).collect();
            let report = wrk::run(&target.url, &token, WRK_SECONDS).await;
            let cpu_us = target
                .processes
                .iter()
                .zip(before)
                .map(|((_, p), b)| (p.cpu_us() - b) / report.requests.max(1) as f64)
                .collect();
            println!(
                "  round {round} {:<45} {:>9.0} req/s  p50 {:>7.0} us  p99 {:>7.0} us{}",
                target.name,
                report.requests_per_second,
                report.p50_us,
                report.p99_us,
                report
                    .socket_errors
                    .as_deref()
                    .map(|e| format!("  ({e})"))
                    .unwrap_or_default()
            );
            runs[t].push(Run { report, cpu_us });
        }
    }
    print_get_table(&targets, &runs);
}

fn print_get_table(targets: &[Target], runs: &[Vec<Run>]) {
    let of = |t: usize, f: &dyn Fn(&Run) -> f64| median(runs[t].iter().map(f).collect());
    let bare_rps = of(0, &|r| r.report.requests_per_second);
    println!("\n| what | requests/s | p50 | p99 | vs bare | CPU per request |");
    println!("|---|---|---|---|---|---|");
    for (t, target) in targets.iter().enumerate() {
        let rps = of(t, &|r| r.report.requests_per_second);
        let cpu = target
            .processes
            .iter()
            .enumerate()
            .map(|(i, (label, _))| format!("{label} {:.0} us", of(t, &|r| r.cpu_us[i])))
            .collect::<Vec<_>>()
            .join(" + ");
        println!(
            "| {} | {rps:.0} | {:.0} us | {:.0} us | {:.2}x | {cpu} |",
            target.name,
            of(t, &|r| r.report.p50_us),
            of(t, &|r| r.report.p99_us),
            rps / bare_rps
        );
    }
}

/// What happened in `processes` while `work` ran: CPU microseconds and minor page faults.
async fn costs<T>(processes: &[Process], work: impl Future<Output = T>) -> (T, f64, f64) {
    let cpu = |ps: &[Process]| ps.iter().map(|p| p.cpu_us()).sum::<f64>();
    let faults = |ps: &[Process]| ps.iter().map(|p| p.minor_faults()).sum::<f64>();
    let (cpu_before, faults_before) = (cpu(processes), faults(processes));
    let out = work.await;
    (
        out,
        cpu(processes) - cpu_before,
        faults(processes) - faults_before,
    )
}

/// One round of registrations and of raw hashes.
struct RegisterRound {
    registrations: register::Report,
    /// CPU milliseconds per registration, on the edge node and on all three.
    edge_cpu_ms: f64,
    all_cpu_ms: f64,
    /// Minor page faults per registration on the edge node.
    edge_faults: f64,
    /// Raw hashes per second with `CONCURRENCY` threads and with one per core.
    raw: f64,
    raw_per_core: f64,
    /// CPU milliseconds and minor page faults per raw hash (`CONCURRENCY` threads).
    raw_cpu_ms: f64,
    raw_faults: f64,
}

async fn registrations(cluster: &Cluster) {
    let port = cluster.port(0);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\nPOST /api/v1/users through {}'s edge, {} in flight, {}s runs, {ROUNDS} rounds",
        cluster.id(0),
        register::CONCURRENCY,
        REGISTER_FOR.as_secs()
    );
    println!("password hash: {}", register::parameters());
    let one = tokio::task::spawn_blocking(|| register::one_hash_ms(10))
        .await
        .unwrap();
    println!("one hash alone: {one:.1} ms");
    // Warm the users' shards and the edge.
    register::registrations(port, 99, Duration::from_secs(2)).await;
    let edge = [cluster.process(0)];
    let all: Vec<Process> = (0..cluster.len()).map(|i| cluster.process(i)).collect();
    let me = [Process::me()];
    let mut rounds = Vec::new();
    for round in 0..ROUNDS {
        let ((r, edge_cpu, edge_faults), all_cpu, _) = costs(
            &all,
            costs(
                &edge,
                register::registrations(port, round as u32, REGISTER_FOR),
            ),
        )
        .await;
        let raw_run = |threads| {
            tokio::task::spawn_blocking(move || register::raw_hashes(threads, REGISTER_FOR))
        };
        let ((raw, hashes), raw_cpu, raw_faults) =
            costs(&me, async { raw_run(register::CONCURRENCY).await.unwrap() }).await;
        let (raw_per_core, _) = raw_run(cores).await.unwrap();
        let n = r.count.max(1) as f64;
        let done = RegisterRound {
            edge_cpu_ms: edge_cpu / n / 1e3,
            all_cpu_ms: all_cpu / n / 1e3,
            edge_faults: edge_faults / n,
            raw_cpu_ms: raw_cpu / hashes.max(1) as f64 / 1e3,
            raw_faults: raw_faults / hashes.max(1) as f64,
            registrations: r,
            raw,
            raw_per_core,
        };
        println!(
            "  round {round}: {:.1} registrations/s ({} in all), p50 {:.0} ms, p99 {:.0} ms, \
             CPU {:.1} ms on the edge ({:.1} ms on all nodes), {:.0} faults; \
             raw Argon2id {:.1} hashes/s ({cores} threads: {:.1}), CPU {:.1} ms, {:.0} faults per hash",
            r.per_second,
            r.count,
            r.p50_ms,
            r.p99_ms,
            done.edge_cpu_ms,
            done.all_cpu_ms,
            done.edge_faults,
            raw,
            raw_per_core,
            done.raw_cpu_ms,
            done.raw_faults
        );
        rounds.push(done);
    }
    print_register_table(&rounds, cores);
}

fn print_register_table(rounds: &[RegisterRound], cores: usize) {
    let of = |f: &dyn Fn(&RegisterRound) -> f64| median(rounds.iter().map(f).collect());
    let per_second = of(&|r| r.registrations.per_second);
    let hashes = of(&|r| r.raw);
    println!("\n| what | per second | p50 | p99 | CPU each | minor faults each |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| registrations, {} in flight | {per_second:.1} ({:.2}x raw hashes) | {:.0} ms | {:.0} ms | {:.1} ms on the edge, {:.1} ms on all nodes | {:.0} |",
        register::CONCURRENCY,
        per_second / hashes,
        of(&|r| r.registrations.p50_ms),
        of(&|r| r.registrations.p99_ms),
        of(&|r| r.edge_cpu_ms),
        of(&|r| r.all_cpu_ms),
        of(&|r| r.edge_faults),
    );
    println!(
        "| raw Argon2id hashes, {} threads, this process | {hashes:.1} | - | - | {:.1} ms | {:.0} |",
        register::CONCURRENCY,
        of(&|r| r.raw_cpu_ms),
        of(&|r| r.raw_faults),
    );
    println!(
        "| raw Argon2id hashes, {cores} threads (one per core) | {:.1} | - | - | - | - |",
        of(&|r| r.raw_per_core)
    );
}

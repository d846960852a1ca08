//! Limits of the operations routes, from the outside: a benchmark cannot take a node's memory,
//! only one runs at a time per node, a kv benchmark or put is refused with a clear 4xx rather
//! than a 5xx, chaos kills are rate-limited, and a service that a storm of kills made give up
//! on a node comes back by itself while the node reports it as not ready meanwhile.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use support::{TestCluster, send_json, wait_until};

/// A client that waits long enough for a benchmark to finish.
fn slow_client() -> reqwest::Client {
    support::http()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// Samples the resident memory of `pids` until `stop`; returns the highest sum seen.
fn spawn_rss_sampler(pids: Vec<i32>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut peak = 0;
        loop {
            peak = peak.max(pids.iter().map(|p| support::rss_bytes(*p)).sum());
            if stop.load(Ordering::Relaxed) {
                return peak;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

const MB: u64 = 1024 * 1024;

async fn bench(
    cluster: &TestCluster,
    client: &reqwest::Client,
    origin: &str,
    body: &Value,
) -> (u16, Value) {
    send_json(
        client
            .post(cluster.node(origin).url("/admin/bench"))
            .json(body),
    )
    .await
    .unwrap()
}

/// Starts `n` nodes and waits until they form and echo is whole.
async fn formed(n: usize) -> TestCluster {
    let mut cluster = TestCluster::new(n);
    cluster.start_formed().await;
    cluster
}

fn message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bench_whose_payload_times_in_flight_is_too_large_is_refused_and_memory_stays_low() {
    let mut cluster = formed(2).await;
    let pids = vec![
        cluster.proc("n1").pid().as_raw(),
        cluster.proc("n2").pid().as_raw(),
    ];
    let client = slow_client();
    let before: u64 = pids.iter().map(|p| support::rss_bytes(*p)).sum();

    // Each field is within its own bound; their product (128 MiB in flight) is not.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = spawn_rss_sampler(pids.clone(), Arc::clone(&stop));
    let request = json!({"target_node": "n2", "mode": "call", "payload_bytes": 1024 * 1024,
                         "duration_ms": 2000, "in_flight": 128});
    let (status, body) = bench(&cluster, &client, "n1", &request).await;
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    println!(
        "oversized bench: {status}; rss of n1+n2 before {} MB, peak {} MB",
        before / MB,
        peak / MB
    );
    assert!(
        status == 400 || status == 422,
        "an oversized bench is refused: {status} {body}"
    );
    let text = message(&body);
    assert!(
        text.contains("payload_bytes") && text.contains("in_flight"),
        "the message names the fields: {text}"
    );
    assert!(
        peak < before + 64 * MB,
        "memory stays low: {} MB before, {} MB at the peak",
        before / MB,
        peak / MB
    );

    // A bench at the budget runs, in both modes, and the memory it takes stays bounded.
    for mode in ["call", "cast"] {
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = spawn_rss_sampler(pids.clone(), Arc::clone(&stop));
        let request = json!({"target_node": "n2", "mode": mode, "payload_bytes": 1024 * 1024,
                             "duration_ms": 1500, "in_flight": 16});
        let (status, body) = bench(&cluster, &client, "n1", &request).await;
        stop.store(true, Ordering::Relaxed);
        let peak = sampler.await.unwrap();
        println!(
            "{mode} bench at the budget: {status} {body}; rss of n1+n2 before {} MB, peak {} MB",
            before / MB,
            peak / MB
        );
        assert_eq!(status, 200, "{body}");
        assert!(body["messages"].as_u64().unwrap() > 0, "{body}");
        assert!(
            peak < before + 400 * MB,
            "{mode}: a bench at the budget stays bounded: {} MB before, {} MB at the peak",
            before / MB,
            peak / MB
        );
    }
    wait_until(
        "both nodes to see each other up",
        Duration::from_secs(10),
        || cluster.all_up(&["n1", "n2"]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_benches_at_once_on_one_node_one_is_refused_with_409() {
    let cluster = Arc::new(formed(2).await);
    let request = json!({"target_node": "n2", "mode": "call", "payload_bytes": 16,
                         "duration_ms": 5000, "in_flight": 2});
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let cluster = Arc::clone(&cluster);
            let request = request.clone();
            tokio::spawn(async move { bench(&cluster, &slow_client(), "n1", &request).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for run in runs {
        let (status, body) = run.await.unwrap();
        if status == 409 {
            assert_eq!(body["error"]["code"], "conflict", "{body}");
            assert!(message(&body).contains("bench"), "{body}");
        }
        statuses.push(status);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 409], "one runs, the other is refused");

    // Once it is over, the next one runs.
    let short = json!({"target_node": "n2", "mode": "call", "payload_bytes": 16,
                       "duration_ms": 200, "in_flight": 2});
    let (status, body) = bench(&cluster, &slow_client(), "n1", &short).await;
    assert_eq!(status, 200, "{body}");

    // A client that goes away stops its bench: the node does not refuse others for the minute
    // the abandoned one asked for.
    let long = json!({"target_node": "n2", "mode": "call", "payload_bytes": 16,
                      "duration_ms": 60_000, "in_flight": 2});
    let impatient = support::http()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let gone = impatient
        .post(cluster.node("n1").url("/admin/bench"))
        .json(&long)
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up: {gone:?}");
    let freed = wait_until(
        "a bench to run again after the client went away",
        Duration::from_secs(20),
        || async { bench(&cluster, &slow_client(), "n1", &short).await.0 == 200 },
    )
    .await;
    println!("the node took a bench again {freed:?} after the client went away");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv_bench_with_a_payload_over_the_value_limit_is_a_4xx_not_a_500() {
    let cluster = formed(2).await;
    let client = slow_client();
    let request = json!({"target_node": "n2", "mode": "call", "service": "kv",
                         "payload_bytes": 64 * 1024 + 1, "duration_ms": 300, "in_flight": 1});
    let (status, body) = bench(&cluster, &client, "n1", &request).await;
    assert!(
        (400..500).contains(&status),
        "refused as the client's error: {status} {body}"
    );
    let text = message(&body);
    assert!(
        text.contains("payload_bytes") && text.contains("65536"),
        "the message names the limit: {text}"
    );
    // At the limit, it runs.
    let request = json!({"target_node": "n2", "mode": "call", "service": "kv",
                         "payload_bytes": 64 * 1024, "duration_ms": 300, "in_flight": 1});
    let (status, body) = bench(&cluster, &client, "n1", &request).await;
    assert_eq!(status, 200, "{body}");
}

/// A key whose kv shard lives on `node`, as `observer` places the shards.
async fn key_on(cluster: &TestCluster, observer: &str, node: &str) -> String {
    let map = cluster.shard_map(observer, "kv").await;
    let num_shards = u32::try_from(map.len()).unwrap();
    assert!(num_shards > 0, "kv is sharded");
    (0..10_000)
        .map(|i| format!("key-{i}"))
        .find(|k| map[troupe_runtime::shard::shard_of(k.as_bytes(), num_shards) as usize] == node)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kv_put_whose_json_grows_when_reserialized_is_not_a_503() {
    let cluster = formed(3).await;
    let client = slow_client();
    // 64,002 bytes as sent; `1e9` is written back as `1000000000.0`, three times longer.
    let mut text = String::from("[");
    for i in 0..16_000 {
        if i > 0 {
            text.push(',');
        }
        text.push_str("1e9");
    }
    text.push(']');
    assert!(text.len() <= 64 * 1024);
    let key = key_on(&cluster, "n1", "n2").await;
    let response = client
        .put(cluster.node("n1").url(&format!("/admin/kv/{key}")))
        .header("content-type", "application/json")
        .body(text.clone())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").cloned();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_ne!(
        status, 503,
        "a permanent error is not 'retry later': {body}"
    );
    assert!(retry_after.is_none(), "nothing to retry: {status} {body}");
    match status {
        200 => {
            let expected: Value = serde_json::from_str(&text).unwrap();
            for node in ["n1", "n2", "n3"] {
                let (status, found) = cluster
                    .get(node, &format!("/admin/kv/{key}"))
                    .await
                    .unwrap();
                assert_eq!(status, 200, "{found}");
                assert_eq!(found["value"], expected, "read back through {node}");
                assert_eq!(found["version"], body["version"]);
            }
        }
        413 => assert_eq!(body["error"]["code"], "payload_too_large", "{body}"),
        other => panic!("stored, or refused as too large: {other} {body}"),
    }
}

/// One chaos kill of an echo member on `target`, sent to `origin`: status, `Retry-After`
/// (seconds) and body.
async fn kill(
    client: &reqwest::Client,
    cluster: &TestCluster,
    origin: &str,
    target: &str,
) -> Option<(u16, Option<u64>, Value)> {
    let response = client
        .post(cluster.node(origin).url("/admin/chaos/kill"))
        .json(&json!({"service": "echo", "node": target}))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = response.json().await.unwrap_or(Value::Null);
    Some((status, retry_after, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_kills_over_the_rate_are_refused_with_429() {
    let cluster = Arc::new(formed(2).await);
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let started = tokio::time::Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let cluster = Arc::clone(&cluster);
            let (accepted, refused, sent) = (
                Arc::clone(&accepted),
                Arc::clone(&refused),
                Arc::clone(&sent),
            );
            tokio::spawn(async move {
                let client = slow_client();
                let mut seen_429 = None;
                while sent.fetch_add(1, Ordering::Relaxed) < 400
                    && refused.load(Ordering::Relaxed) == 0
                {
                    match kill(&client, &cluster, "n1", "n2").await {
                        Some((200, _, _)) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        Some((429, retry_after, body)) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            seen_429 = Some((retry_after, body));
                        }
                        _ => {}
                    }
                }
                seen_429
            })
        })
        .collect();
    let mut seen = None;
    for t in tasks {
        if let Some(s) = t.await.unwrap() {
            seen = Some(s);
        }
    }
    let elapsed = started.elapsed();
    let accepted = accepted.load(Ordering::Relaxed);
    println!(
        "{accepted} kills accepted, {} refused, in {elapsed:?}",
        refused.load(Ordering::Relaxed)
    );
    let (retry_after, body) = seen.expect("kills beyond the rate are refused");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(message(&body).contains("kills"), "{body}");
    assert!(retry_after.is_some_and(|s| s >= 1), "Retry-After is set");
    // 20 kills per second per node, with a burst of 20.
    let allowed = 20.0 + 20.0 * elapsed.as_secs_f64() + 5.0;
    assert!(
        (accepted as f64) <= allowed,
        "{accepted} kills in {elapsed:?} is over the rate"
    );
    // Once the client has waited, kills are taken again.
    let client = slow_client();
    wait_until(
        "a kill to be accepted again",
        Duration::from_secs(10),
        || async { matches!(kill(&client, &cluster, "n1", "n2").await, Some((200, _, _))) },
    )
    .await;
}

/// Whether node `id` answers `/health/ready` with 503 naming `service`.
async fn unready_naming(cluster: &TestCluster, id: &str, service: &str) -> bool {
    match cluster.get(id, "/health/ready").await {
        Some((503, body)) => message(&body).contains(service),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_gave_up_under_a_storm_of_kills_comes_back_and_the_node_says_so() {
    let cluster = Arc::new(formed(2).await);
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let storm: Vec<_> = (0..4)
        .map(|_| {
            let (cluster, stop, accepted) = (
                Arc::clone(&cluster),
                Arc::clone(&stop),
                Arc::clone(&accepted),
            );
            tokio::spawn(async move {
                let client = slow_client();
                while !stop.load(Ordering::Relaxed) {
                    match kill(&client, &cluster, "n1", "n2").await {
                        Some((200, _, _)) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        // Over the rate, or no live member while the service restarts: a load
                        // generator's pause, not a wait for a condition.
                        Some(_) | None => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            })
        })
        .collect();
    let gave_up = wait_until(
        "n2 to report echo as not ready after it gave up",
        Duration::from_secs(120),
        || unready_naming(&cluster, "n2", "echo"),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for t in storm {
        t.await.unwrap();
    }
    println!(
        "echo gave up on n2 after {gave_up:?} and {} kills",
        accepted.load(Ordering::Relaxed)
    );
    let back = wait_until(
        "echo to be back on n2, seen from both nodes",
        Duration::from_secs(60),
        || cluster.service_whole(&["n1", "n2"], "echo", &["n1", "n2"], 2),
    )
    .await;
    cluster.wait_ready("n2", Duration::from_secs(10)).await;
    println!("echo back on n2 {back:?} after it was reported");
    let (status, body) = cluster
        .post(
            "n1",
            "/admin/echo",
            &json!({"payload": "back", "node": "n2"}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["node"], "n2");
}

//! Routing to sharded services from the outside, across nodes: a request reaches the shard that
//! owns its key or nothing at all, and an answer says honestly whether a write may have been
//! applied.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use support::{TestCluster, wait_until};
use troupe_runtime::shard::shard_of;

/// kv's shards in the default configuration.
const KV_SHARDS: u32 = 16;

/// The deadline the edge gives a kv request.
const KV_TIMEOUT: Duration = Duration::from_secs(5);

/// What clients were told: per key, the version of the last acknowledged write and its value.
type Acked = Arc<Mutex<HashMap<String, (u64, Value)>>>;

/// `n` distinct keys with prefix `prefix` that all belong to `shard`.
fn keys_of_shard(prefix: &str, shard: u32, n: usize) -> Vec<String> {
    (0u64..)
        .map(|i| format!("{prefix}-{i}"))
        .filter(|k| shard_of(k.as_bytes(), KV_SHARDS) == shard)
        .take(n)
        .collect()
}

/// Puts unique keys through `base` until `stop`, recording every acknowledged write. A write
/// may fail as 503 (nothing was applied) or 504 (outcome unknown), nothing else.
fn spawn_writer(
    base: String,
    keys: Vec<String>,
    stop: Arc<AtomicBool>,
    acked: Acked,
    unknown: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let http = support::http()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut ok = 0;
        for (seq, key) in keys.iter().cycle().enumerate() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let value = json!({"seq": seq});
            let response = http
                .put(format!("{base}/admin/kv/{key}"))
                .json(&value)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            match status {
                200 => {
                    let version = body["version"].as_u64().unwrap();
                    let previous = acked.lock().unwrap().insert(key.clone(), (version, value));
                    if let Some((before, _)) = previous {
                        assert!(
                            version > before,
                            "{key}: version went from {before} to {version}"
                        );
                    }
                    ok += 1;
                }
                503 => tokio::time::sleep(Duration::from_millis(2)).await,
                504 => {
                    unknown.fetch_add(1, Ordering::Relaxed);
                }
                other => panic!("a write failed with {other}: {body}"),
            }
        }
        ok
    })
}

/// Every acknowledged write reads back through `node`, at its version or a later one (a later
/// write whose answer said its outcome was unknown).
async fn verify(cluster: &TestCluster, node: &str, acked: &Acked) -> usize {
    let expected: Vec<(String, (u64, Value))> = acked.lock().unwrap().clone().into_iter().collect();
    for (key, (version, value)) in &expected {
        let (status, body) = cluster
            .get(node, &format!("/admin/kv/{key}"))
            .await
            .unwrap();
        assert_eq!(
            status, 200,
            "acknowledged key {key} is not readable through {node}: {body}"
        );
        let found = body["version"].as_u64().unwrap();
        assert!(
            found >= *version,
            "{key}: acknowledged version {version}, found {found} through {node}"
        );
        if found == *version {
            assert_eq!(&body["value"], value, "{key} at version {version}");
        }
    }
    expected.len()
}

/// A kv shard that lives on `node`, once n1 has agreed where the shards are.
async fn a_kv_shard_on(cluster: &TestCluster, node: &str) -> u32 {
    wait_until("kv shards placed", Duration::from_secs(30), || async {
        cluster.shard_map("n1", "kv").await.len() == KV_SHARDS as usize
    })
    .await;
    let map = cluster.shard_map("n1", "kv").await;
    map.iter().position(|n| n == node).unwrap() as u32
}

/// Fault 1 of the hardening review: a caller that still holds the pid of a shard that just
/// restarted had its write handed to another shard, acknowledged, and then not found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_a_shard_killed_over_and_over_land_in_that_shard() {
    let mut cluster = TestCluster::new(3);
    cluster.start_formed().await;
    let shard = a_kv_shard_on(&cluster, "n2").await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Acked = Arc::default();
    let unknown = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..16)
        .map(|c| {
            spawn_writer(
                cluster.node("n1").url(""),
                keys_of_shard(&format!("w{c}"), shard, 8),
                Arc::clone(&stop),
                Arc::clone(&acked),
                Arc::clone(&unknown),
            )
        })
        .collect();
    wait_until(
        "the writers to get going",
        Duration::from_secs(30),
        || async { !acked.lock().unwrap().is_empty() },
    )
    .await;
    let mut kills = 0;
    while kills < 25 {
        let killed = cluster
            .post(
                "n2",
                "/admin/chaos/kill",
                &json!({"service": "kv", "shard": shard}),
            )
            .await;
        if matches!(killed, Some((200, _))) {
            kills += 1;
        }
        // The kill rate is the load of this test (a shard killed every 0.3 s), not a wait.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut ok = 0;
    for w in writers {
        ok += w.await.unwrap();
    }
    assert!(
        ok > 100,
        "too few writes were acknowledged to mean anything: {ok}"
    );
    for node in ["n2", "n1", "n3"] {
        verify(&cluster, node, &acked).await;
    }
    eprintln!(
        "{kills} kills of kv shard {shard} on n2: {ok} writes acknowledged through n1, {} keys \
         verified through every node, {} answers of unknown outcome",
        acked.lock().unwrap().len(),
        unknown.load(Ordering::Relaxed)
    );
}

/// Fault 7: a write sent to a node that froze before answering is not "503, retry": its
/// outcome is unknown (504). Its deadline travels with it, so the node, once thawed, does not
/// apply a request whose caller gave up long ago.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_to_a_frozen_node_is_outcome_unknown_and_expires_there() {
    let mut cluster = TestCluster::new(3);
    cluster.start_formed().await;
    let shard = a_kv_shard_on(&cluster, "n2").await;
    let key = keys_of_shard("frozen", shard, 1).remove(0);
    // The shard serves through n1 (its node is up, the shard is running and known to n1).
    wait_until(
        "the shard to serve through n1",
        Duration::from_secs(30),
        || async {
            matches!(
                cluster.get("n1", &format!("/admin/kv/{key}")).await,
                Some((404, _))
            )
        },
    )
    .await;
    cluster.proc("n2").freeze().await;
    let http = support::http()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let sent = tokio::time::Instant::now();
    let (status, body) = support::send_json(
        http.put(cluster.node("n1").url(&format!("/admin/kv/{key}")))
            .json(&json!("written while frozen")),
    )
    .await
    .unwrap();
    // The node was up when the write left: it may have been applied, so not a 503. (The answer
    // comes when n1 gives n2 up for down and drops the link, or at the deadline.)
    assert_eq!(status, 504, "{body}");
    assert_eq!(body["error"]["code"], "outcome_unknown", "{body}");
    // Keep n2 frozen until the write's deadline (the edge's 5 s kv timeout) has passed: what
    // this test checks is that time, not a guess.
    tokio::time::sleep_until(sent + KV_TIMEOUT + Duration::from_millis(500)).await;
    cluster.proc("n2").signal(Signal::SIGCONT);
    wait_until("n2 serving again", Duration::from_secs(30), || async {
        matches!(
            cluster.get("n1", &format!("/admin/kv/{key}")).await,
            Some((200 | 404, _))
        )
    })
    .await;
    let (status, body) = cluster
        .get("n1", &format!("/admin/kv/{key}"))
        .await
        .unwrap();
    assert_eq!(
        status, 404,
        "the expired write was applied after the thaw: {body}"
    );
}

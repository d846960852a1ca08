//! The kv service from the outside: acknowledged writes survive SIGKILL at random moments,
//! killed shards restart from their keyspaces, and a shard on a down node is unavailable fast
//! and comes back with its data.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Lcg, TestCluster, wait_until};
use tokio::time::Instant;

/// What a client was told: the version of each acknowledged write and its value.
type Acked = Arc<Mutex<HashMap<String, (u64, Value)>>>;

/// Writes through the node at `base` until told to stop (or the node dies), recording every
/// acknowledged write.
fn spawn_writer(
    base: String,
    client: usize,
    round: u64,
    stop: Arc<AtomicBool>,
    acked: Acked,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let http = support::http()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut ok = 0;
        let mut seq = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let key = format!("c{client}-k{}", seq % 40);
            let value = json!({"round": round, "client": client, "seq": seq});
            seq += 1;
            let response = http
                .put(format!("{base}/admin/kv/{key}"))
                .json(&value)
                .send()
                .await;
            let answer = match response {
                Ok(r) => {
                    let status = r.status().as_u16();
                    Some((status, r.json::<Value>().await.unwrap_or(Value::Null)))
                }
                Err(_) => None,
            };
            match answer {
                Some((200, body)) => {
                    let version = body["version"].as_u64().unwrap();
                    let mut acked = acked.lock().unwrap();
                    let previous = acked.insert(key.clone(), (version, value));
                    if let Some((before, _)) = previous {
                        assert!(
                            version > before,
                            "{key}: version went from {before} to {version}"
                        );
                    }
                    ok += 1;
                }
                Some((status, body)) => {
                    assert_eq!(status, 503, "only unavailable may fail a write: {body}");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                // The node is gone (killed), or the kill cut this request off: stop.
                None => break,
            }
        }
        ok
    })
}

/// Every acknowledged write is readable: at its version with its value, or at a later version
/// (a write that was durable but whose acknowledgement the kill cut off).
async fn verify(cluster: &TestCluster, node: &str, acked: &Acked) -> usize {
    let expected: Vec<(String, (u64, Value))> = acked.lock().unwrap().clone().into_iter().collect();
    for (key, (version, value)) in &expected {
        let (status, body) = cluster
            .get(node, &format!("/admin/kv/{key}"))
            .await
            .unwrap();
        assert_eq!(status, 200, "acknowledged key {key} is missing: {body}");
        let found = body["version"].as_u64().unwrap();
        assert!(
            found >= *version,
            "{key}: acknowledged version {version}, found {found}"
        );
        if found == *version {
            assert_eq!(&body["value"], value, "{key} at version {version}");
        }
    }
    expected.len()
}

async fn crash_rounds(rounds: u64) {
    let mut cluster = TestCluster::new(1);
    let acked: Acked = Arc::default();
    let mut rng = Lcg(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64);
    let mut total_acked = 0;
    for round in 0..rounds {
        cluster.start("n1");
        cluster.wait_ready("n1", Duration::from_secs(30)).await;
        if round > 0 {
            verify(&cluster, "n1", &acked).await;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..16)
            .map(|c| {
                spawn_writer(
                    cluster.node("n1").url(""),
                    c,
                    round,
                    Arc::clone(&stop),
                    Arc::clone(&acked),
                )
            })
            .collect();
        // Kill at a random moment while the writers run (this sleep is the moment, not a wait
        // for anything).
        let started = Instant::now();
        let moment = Duration::from_millis(50 + rng.below(400));
        wait_until(
            "the writers to get going",
            Duration::from_secs(30),
            || async { !acked.lock().unwrap().is_empty() },
        )
        .await;
        tokio::time::sleep(moment.saturating_sub(started.elapsed())).await;
        cluster.kill("n1");
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            total_acked += w.await.unwrap();
        }
    }
    cluster.start("n1");
    cluster.wait_ready("n1", Duration::from_secs(30)).await;
    let keys = verify(&cluster, "n1", &acked).await;
    eprintln!(
        "{rounds} kill rounds, {total_acked} acknowledged writes, {keys} keys verified after the last restart"
    );
    assert!(
        total_acked > rounds * 10,
        "too few writes were acknowledged to mean anything: {total_acked}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_at_random_moments() {
    crash_rounds(20).await;
}

/// The long variant, for soak runs: `cargo test --test kv -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long-running: 200 kill rounds"]
async fn acknowledged_writes_survive_200_sigkills() {
    crash_rounds(200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_killed_mid_load_restart_from_their_keyspaces() {
    let mut cluster = TestCluster::new(1);
    cluster.start("n1");
    cluster.wait_ready("n1", Duration::from_secs(30)).await;
    let acked: Acked = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|c| {
            spawn_writer(
                cluster.node("n1").url(""),
                c,
                0,
                Arc::clone(&stop),
                Arc::clone(&acked),
            )
        })
        .collect();
    for shard in (0..16).step_by(2) {
        let (status, body) = cluster
            .post(
                "n1",
                "/admin/chaos/kill",
                &json!({"service": "kv", "shard": shard}),
            )
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["killed"][0]["index"], shard);
        wait_until(
            &format!("shard {shard} back"),
            Duration::from_secs(10),
            || async {
                let (_, body) = cluster.get("n1", "/admin/cluster").await.unwrap();
                body["services"]
                    .as_array()
                    .and_then(|s| s.iter().find(|s| s["name"] == "kv"))
                    .and_then(|kv| kv["shards"].as_array())
                    .is_some_and(|shards| shards.iter().all(|s| s["status"] == "up"))
            },
        )
        .await;
    }
    // Shards restart in milliseconds, so the kills can be over before the writers got going:
    // let them write before stopping them (each acknowledged write adds one to its key's
    // version).
    wait_until(
        "the writers to write through the kills",
        Duration::from_secs(30),
        || async { acked.lock().unwrap().values().map(|(v, _)| *v).sum::<u64>() > 16 },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let mut ok = 0;
    for w in writers {
        ok += w.await.unwrap();
    }
    assert!(ok > 16, "the writers kept writing through the kills: {ok}");
    let keys = verify(&cluster, "n1", &acked).await;
    eprintln!("8 shard kills under load: {ok} acknowledged writes, {keys} keys verified");
    let metrics = cluster.metrics("n1").await;
    let restarts = support::metric(
        &metrics,
        "troupe_member_restart_seconds_count{service=\"kv\"}",
    )
    .unwrap();
    assert_eq!(restarts, 8.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_on_a_down_node_is_unavailable_at_once_and_serves_again_after_restart() {
    let mut cluster = TestCluster::new(3);
    cluster.start_formed().await;
    let map = cluster.shard_map("n1", "kv").await;
    assert_eq!(map.len(), 16);
    // A key whose shard lives on n3.
    let key = (0..10_000)
        .map(|i| format!("key-{i}"))
        .find(|k| map[troupe_runtime::shard::shard_of(k.as_bytes(), 16) as usize] == "n3")
        .unwrap();
    let (status, body) = cluster
        .kv_put("n1", &key, &json!({"kept": true}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");

    cluster.kill("n3");
    wait_until("n1 to see n3 down", Duration::from_secs(5), || {
        cluster.sees("n1", "n3", "down")
    })
    .await;
    let started = Instant::now();
    let response = support::http()
        .build()
        .unwrap()
        .get(cluster.node("n1").url(&format!("/admin/kv/{key}")))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("n3"),
        "{body}"
    );
    assert!(
        took < Duration::from_millis(500),
        "unavailable took {took:?}, the deadline is 5 s"
    );
    let (status, _) = cluster
        .kv_put("n2", &key, &json!({"lost": true}))
        .await
        .unwrap();
    assert_eq!(
        status, 503,
        "a write to a down shard is refused, not taken somewhere else"
    );
    // Keys of shards on live nodes are unaffected.
    let other = (0..10_000)
        .map(|i| format!("other-{i}"))
        .find(|k| map[troupe_runtime::shard::shard_of(k.as_bytes(), 16) as usize] != "n3")
        .unwrap();
    assert_eq!(
        cluster.kv_put("n1", &other, &json!(1)).await.unwrap().0,
        200
    );

    cluster.start("n3");
    for via in ["n1", "n2"] {
        wait_until(
            &format!("{via} to serve the key again"),
            Duration::from_secs(30),
            || async {
                matches!(
                    cluster.get(via, &format!("/admin/kv/{key}")).await,
                    Some((200, _))
                )
            },
        )
        .await;
        let (_, body) = cluster.get(via, &format!("/admin/kv/{key}")).await.unwrap();
        assert_eq!(body["value"], json!({"kept": true}), "via {via}");
        assert_eq!(body["version"], 1, "the refused write did not happen");
    }
}

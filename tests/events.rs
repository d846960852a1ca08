//! The event bus across real node processes: the built-in probe (publisher, on n1) and its
//! counting tally (subscriber, on n2), written through n3, while the publisher's node and the
//! subscriber's node are SIGKILLed at random moments and restarted.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use tokio::time::{Duration, Instant};

use support::{Lcg, TestCluster, config_text_with, send_json, wait_until};

/// Probes only on n1, tallies only on n2: every event crosses from one to the other.
const SERVICES: &str = "[services.probe]\nshards = 4\nnodes = [\"n1\"]\n\n\
                        [services.probe-tally]\nshards = 4\nnodes = [\"n2\"]\n";

fn cluster() -> TestCluster {
    let cluster = TestCluster::new(3);
    std::fs::write(&cluster.config, config_text_with(&cluster.nodes, SERVICES)).unwrap();
    cluster
}

/// What node `via` says of probe `key`: (emitted, applied, last, out_of_order).
async fn probe(cluster: &TestCluster, via: &str, key: &str) -> Option<(u64, u64, u64, u64)> {
    let (status, body) = cluster.get(via, &format!("/admin/probe/{key}")).await?;
    if status != 200 {
        return None;
    }
    let n = |f: &str| body[f].as_u64();
    Some((n("emitted")?, n("applied")?, n("last")?, n("out_of_order")?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_event_is_applied_once_in_order_while_both_ends_are_killed() {
    let mut cluster = cluster();
    cluster.start_formed().await;
    let keys: Vec<String> = (0..12).map(|i| format!("key-{i}")).collect();
    let n3 = cluster.node("n3").url("");
    let client = support::http()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    // Writers through n3: each key emits in turn, and keeps the highest number acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for key in &keys {
        let (client, stop) = (client.clone(), Arc::clone(&stop));
        let url = format!("{n3}/admin/probe/{key}");
        writers.push(tokio::spawn(async move {
            let (mut acked, mut unknown) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                match send_json(client.post(&url)).await {
                    Some((200, body)) => acked = acked.max(body["n"].as_u64().unwrap()),
                    Some((504, _)) | None => unknown += 1,
                    Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            (acked, unknown)
        }));
    }
    // Kills: the publisher's node or the subscriber's, at random moments, each restarted.
    let mut rng = Lcg(0x5eed_0009);
    let until = Instant::now() + Duration::from_secs(16);
    let mut kills = 0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(600 + rng.below(1400))).await;
        let victim = if rng.below(2) == 0 { "n1" } else { "n2" };
        cluster.kill(victim);
        kills += 1;
        tokio::time::sleep(Duration::from_millis(100 + rng.below(700))).await;
        cluster.start(victim);
        cluster.wait_ready(victim, Duration::from_secs(30)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut unknown = 0;
    for (key, writer) in keys.iter().zip(writers) {
        let (a, u) = writer.await.unwrap();
        acked.insert(key.clone(), a);
        unknown += u;
    }
    let total: u64 = acked.values().sum();
    assert!(total >= 100, "too few writes went through: {acked:?}");

    // Every committed event reaches its tally once, in order; nothing uncommitted does.
    let names = ["n1", "n2", "n3"];
    wait_until("the cluster to be whole", Duration::from_secs(30), || {
        cluster.all_up(&names)
    })
    .await;
    for key in &keys {
        wait_until(
            "the tally to catch up with its probe",
            Duration::from_secs(60),
            || async {
                matches!(probe(&cluster, "n3", key).await, Some((emitted, applied, _, _)) if applied >= emitted)
            },
        )
        .await;
        // Nothing writes any more: what it says now is final.
        let (emitted, applied, last, out_of_order) = probe(&cluster, "n3", key).await.unwrap();
        assert!(
            emitted >= acked[key],
            "{key}: acknowledged {} but the probe says {emitted}",
            acked[key]
        );
        assert_eq!(applied, emitted, "{key}: each committed event applied once");
        assert_eq!(
            last, emitted,
            "{key}: the last applied is the last committed"
        );
        assert_eq!(out_of_order, 0, "{key}: in order");
    }
    let (_, stats) = cluster.get("n1", "/admin/events").await.unwrap();
    eprintln!(
        "{kills} kills, {total} acknowledged emits, {unknown} unknown outcomes; n1 relays: {}",
        stats["subscriptions"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_listed_and_bad_probe_keys_are_refused() {
    let mut cluster = cluster();
    cluster.start_formed().await;
    for _ in 0..3 {
        let (status, body) = cluster
            .post("n3", "/admin/probe/k", &Value::Null)
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }
    wait_until(
        "the tally to apply three",
        Duration::from_secs(20),
        || async { probe(&cluster, "n1", "k").await == Some((3, 3, 3, 0)) },
    )
    .await;
    let (_, view) = cluster.get("n3", "/admin/cluster").await.unwrap();
    assert_eq!(
        view["subscriptions"],
        serde_json::json!([{"name": "probe-tally", "pattern": "probe.emitted", "service": "probe-tally"}]),
        "{view}"
    );
    let (status, stats) = cluster.get("n1", "/admin/events").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(stats["published"]["probe.emitted"], 3, "{stats}");
    let subscription = &stats["subscriptions"][0];
    assert_eq!(subscription["name"], "probe-tally");
    assert_eq!(subscription["pattern"], "probe.emitted");
    assert_eq!(subscription["delivered"], 3, "{stats}");
    let long = "x".repeat(300);
    let (status, body) = cluster
        .post("n3", &format!("/admin/probe/{long}"), &Value::Null)
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");

    // Dead letters: none; redriving a malformed id is 400, an unknown one 404.
    let (status, body) = cluster.get("n2", "/admin/events").await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dead_letters"], serde_json::json!([]), "{body}");
    let (status, body) = cluster
        .post(
            "n1",
            "/admin/events/dead-letters/nope/redrive",
            &Value::Null,
        )
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, "invalid_request".into()),
        "{body}"
    );
    let (status, body) = cluster
        .post(
            "n1",
            "/admin/events/dead-letters/0190f5c2-8d4e-7b2a-9c3d-4e5f6a7b8c9d/redrive",
            &Value::Null,
        )
        .await
        .unwrap();
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (404, "not_found".into()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_committed_before_a_crash_and_never_delivered_are_delivered_after_the_restart() {
    let mut cluster = cluster();
    cluster.start_formed().await;
    // Every node agrees where the shards are (a fresh cluster needs every node's word).
    wait_until(
        "a first event to go through",
        Duration::from_secs(30),
        || async {
            cluster
                .post("n3", "/admin/probe/warmup", &Value::Null)
                .await
                .is_some()
                && probe(&cluster, "n3", "warmup")
                    .await
                    .is_some_and(|(e, a, _, _)| e > 0 && a == e)
        },
    )
    .await;
    // The subscriber's node goes away: nothing committed now can be delivered.
    cluster.kill("n2");
    wait_until("n1 to see n2 down", Duration::from_secs(30), || {
        cluster.sees("n1", "n2", "down")
    })
    .await;
    let mut acked = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked < 5 {
        assert!(Instant::now() < deadline, "only {acked} emits committed");
        match cluster.post("n3", "/admin/probe/early", &Value::Null).await {
            Some((200, _)) => acked += 1,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    // The publisher's node dies with the events in its outbox, never delivered.
    cluster.kill("n1");
    cluster.start("n1");
    cluster.start("n2");
    wait_until("the cluster to be whole", Duration::from_secs(30), || {
        cluster.all_up(&["n1", "n2", "n3"])
    })
    .await;
    wait_until(
        "the events from before the crash",
        Duration::from_secs(30),
        || async { matches!(probe(&cluster, "n3", "early").await, Some((e, a, _, _)) if a >= e) },
    )
    .await;
    let (emitted, applied, last, out_of_order) = probe(&cluster, "n3", "early").await.unwrap();
    assert!(
        emitted >= acked,
        "acknowledged {acked}, the probe says {emitted}"
    );
    assert_eq!((applied, last, out_of_order), (emitted, emitted, 0));
}

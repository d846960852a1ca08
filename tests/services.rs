//! Service groups across real node processes: routing to members on every node, members killed
//! under load, a node killed under load, and deadlines.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use support::{TestCluster, metric, wait_until};
use tokio::time::Instant;

const NODES: [&str; 3] = ["n1", "n2", "n3"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_from_every_node_reach_members_on_every_node() {
    let mut cluster = TestCluster::new(3);
    cluster.start_formed().await;
    for origin in NODES {
        let mut reached: HashSet<(String, u64)> = HashSet::new();
        for i in 0..60 {
            let (status, body) = cluster
                .post(
                    origin,
                    "/admin/echo",
                    &json!({"payload": format!("{origin}-{i}")}),
                )
                .await
                .unwrap();
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["payload"], format!("{origin}-{i}"));
            reached.insert((
                body["node"].as_str().unwrap().to_string(),
                body["index"].as_u64().unwrap(),
            ));
        }
        let nodes: HashSet<&str> = reached.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(nodes, NODES.into_iter().collect(), "from {origin}");
        assert_eq!(
            reached.len(),
            6,
            "from {origin}, every one of the 6 members answers: {reached:?}"
        );
    }
}

/// Sends echo requests to random nodes until told to stop; tallies statuses.
fn spawn_load(
    cluster: Arc<TestCluster>,
    origins: Vec<&'static str>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<HashMap<u16, u64>> {
    tokio::spawn(async move {
        let mut tally: HashMap<u16, u64> = HashMap::new();
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let origin = origins[(i as usize) % origins.len()];
            i += 1;
            let started = Instant::now();
            let result = cluster
                .post(origin, "/admin/echo", &json!({"payload": "load"}))
                .await;
            let status = match result {
                Some((status, body)) => {
                    if status != 200 {
                        assert_eq!(
                            body["error"]["code"], "unavailable",
                            "a failure must be retryable: {body}"
                        );
                    }
                    status
                }
                None => 0,
            };
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "a request hung for {:?}",
                started.elapsed()
            );
            *tally.entry(status).or_default() += 1;
        }
        tally
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_killed_100_times_under_load_come_back_and_no_request_fails_for_good() {
    let mut cluster = TestCluster::new(3);
    cluster.start_formed().await;
    let cluster = Arc::new(cluster);
    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = (0..3)
        .map(|_| spawn_load(Arc::clone(&cluster), NODES.to_vec(), Arc::clone(&stop)))
        .collect();

    let kills = AtomicU64::new(0);
    for round in 0..100 {
        let via = NODES[round % 3];
        let (status, body) = cluster
            .post(via, "/admin/chaos/kill", &json!({"service": "echo"}))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        let victim = body["killed"][0]["node"].as_str().unwrap().to_string();
        kills.fetch_add(1, Ordering::Relaxed);
        let observers = [victim.as_str(), via];
        wait_until(
            &format!("echo whole again after kill {round} on {victim}"),
            Duration::from_secs(10),
            || cluster.service_whole(&observers, "echo", &NODES, 2),
        )
        .await;
        // The kill rate of this test: a few per second, well under the restart intensity limit.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut tally: HashMap<u16, u64> = HashMap::new();
    for load in loads {
        for (status, n) in load.await.unwrap() {
            *tally.entry(status).or_default() += n;
        }
    }
    let ok = tally.get(&200).copied().unwrap_or_default();
    assert!(
        tally.keys().all(|s| *s == 200 || *s == 503),
        "only successes or retryable failures: {tally:?}"
    );
    assert!(ok > 100, "the load kept flowing: {tally:?}");

    let mut worst_p99 = 0.0_f64;
    let mut restarts = 0.0;
    for node in NODES {
        let text = cluster.metrics(node).await;
        restarts += metric(
            &text,
            "troupe_member_restart_seconds_count{service=\"echo\"}",
        )
        .unwrap();
        let p99 = metric(
            &text,
            "troupe_member_restart_seconds{service=\"echo\",quantile=\"0.99\"}",
        )
        .unwrap();
        worst_p99 = worst_p99.max(p99);
    }
    eprintln!(
        "kills: 100, restarts: {restarts}, worst per-node restart p99: {:.1} ms, load: {tally:?}",
        worst_p99 * 1000.0
    );
    assert_eq!(
        restarts, 100.0,
        "every kill was followed by exactly one restart"
    );
    assert!(
        worst_p99 <= 0.100,
        "restart p99 {worst_p99} s is over 100 ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_gets_no_requests_within_the_detector_bound_and_takes_load_after_restart() {
    let mut cluster = TestCluster::new(3);
    cluster.start_formed().await;
    cluster.kill("n3");
    let killed_at = Instant::now();
    // Every request keeps succeeding (idempotent echo retries elsewhere), and once the bound has
    // passed none reaches n3.
    let mut after_bound = 0;
    while killed_at.elapsed() < Duration::from_secs(3) {
        for origin in ["n1", "n2"] {
            let sent = Instant::now();
            let (status, body) = cluster
                .post(origin, "/admin/echo", &json!({}))
                .await
                .unwrap();
            assert_eq!(status, 200, "{body}");
            if sent.duration_since(killed_at) > Duration::from_secs(1) {
                after_bound += 1;
                assert_ne!(body["node"], "n3", "a request reached the dead node");
            }
        }
    }
    assert!(after_bound > 10);

    cluster.start("n3");
    wait_until(
        "n3 to take requests again",
        Duration::from_secs(30),
        || async {
            for _ in 0..12 {
                if let Some((200, body)) = cluster.post("n1", "/admin/echo", &json!({})).await
                    && body["node"] == "n3"
                {
                    return true;
                }
            }
            false
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_to_a_handler_that_never_answers_ends_at_its_deadline() {
    let mut cluster = TestCluster::new(2);
    cluster.start_formed().await;
    let started = Instant::now();
    let (status, body) = cluster
        .post(
            "n1",
            "/admin/echo",
            &json!({"node": "n2", "delay_ms": 60000, "timeout_ms": 500}),
        )
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("deadline"),
        "{body}"
    );
    assert!(
        took >= Duration::from_millis(500),
        "ended before its deadline: {took:?}"
    );
    assert!(
        took < Duration::from_millis(2500),
        "ended long after its deadline: {took:?}"
    );
}

//! `GET /admin/metrics/cluster` on a real 3-node cluster: the counters read from n1 move with
//! requests made on n2 and n3 (and with messages handled on n3), and a node that is killed
//! (SIGKILL) or frozen (SIGSTOP) is marked unavailable while the answer still comes promptly
//! with the other nodes' figures.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

mod support;

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use support::TestCluster;
use tokio::time::Instant;

/// The route under test.
const PATH: &str = "/admin/metrics/cluster";

/// How long the route may take whatever the other nodes do: its peers' deadline (1 s) and
/// slack for two busy cores.
const PROMPT: Duration = Duration::from_millis(3000);

/// n1's answer, and how long it took; panics if it is not a 200 in time.
async fn gather(cluster: &TestCluster) -> (Value, Duration) {
    let started = Instant::now();
    let (status, body) = cluster.get("n1", PATH).await.expect("n1 answers the route");
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(took < PROMPT, "the route took {took:?}: {body}");
    (body, took)
}

/// n1's answers until one satisfies `holds`, which it returns; panics after `deadline`
/// naming `what` and showing the last answer.
async fn gather_until(
    cluster: &TestCluster,
    what: &str,
    deadline: Duration,
    holds: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let (body, _) = gather(cluster).await;
        if holds(&body) {
            return body;
        }
        assert!(
            started.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}; n1 answers {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The entry of node `id` in an answer.
fn node<'a>(body: &'a Value, id: &str) -> &'a Value {
    body["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == id)
        .unwrap_or_else(|| panic!("no entry for {id}: {body}"))
}

/// The HTTP requests node `id` served, as n1 was told (None if it is unavailable).
fn http_requests(body: &Value, id: &str) -> Option<u64> {
    node(body, id)["counters"]["http_requests"].as_u64()
}

/// Messages the echo members of node `id` handled, as n1 was told.
fn echo_handled(body: &Value, id: &str) -> Option<u64> {
    node(body, id)["counters"]["services"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == "echo")?["messages_received"]
        .as_u64()
}

/// Whether every node answered.
fn all_counted(body: &Value) -> bool {
    body["unavailable"].as_array().is_some_and(Vec::is_empty)
        && body["nodes"].as_array().is_some_and(|n| n.len() == 3)
}

/// The total is the sum of the nodes that answered.
fn assert_total_is_the_sum(body: &Value) {
    let sum: u64 = body["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["counters"]["http_requests"].as_u64())
        .sum();
    assert_eq!(body["total"]["http_requests"], json!(sum), "{body}");
}

/// A formed 3-node cluster whose n1 counts every node (each node's counters service is
/// known to n1 once its members are gossiped).
async fn counted_cluster() -> TestCluster {
    let mut cluster = TestCluster::new(3);
    cluster.start_formed().await;
    gather_until(
        &cluster,
        "n1 to count every node",
        Duration::from_secs(30),
        all_counted,
    )
    .await;
    cluster
}

/// Requests served by n2 and n3 move the figures n1 gathers (theirs and the total), as do
/// echo messages that n2 sends to n3's members; then n3 is SIGKILLed and n1 still answers at
/// once, with n3 unavailable and n1's and n2's figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_on_other_nodes_move_the_totals_and_a_killed_node_is_marked_unavailable() {
    let mut cluster = counted_cluster().await;
    let (before, _) = gather(&cluster).await;
    assert_total_is_the_sum(&before);
    let n2_before = http_requests(&before, "n2").unwrap();
    let n3_before = http_requests(&before, "n3").unwrap();
    let total_before = before["total"]["http_requests"].as_u64().unwrap();
    let echo_before = echo_handled(&before, "n3").unwrap_or(0);

    let client = support::http().build().unwrap();
    for (id, n) in [("n2", 20), ("n3", 30)] {
        for _ in 0..n {
            let response = client
                .get(cluster.node(id).url("/health/live"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
    }
    // Echo requests through n2, handled by n3's members: messages on n3.
    for i in 0..10 {
        let (status, body) = cluster
            .post(
                "n2",
                "/admin/echo",
                &json!({"payload": format!("m{i}"), "node": "n3"}),
            )
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["node"], "n3", "{body}");
    }
    let last = gather_until(
        &cluster,
        "n1 to see n2's and n3's requests and n3's messages",
        Duration::from_secs(30),
        |body| {
            http_requests(body, "n2").is_some_and(|n| n >= n2_before + 30)
                && http_requests(body, "n3").is_some_and(|n| n >= n3_before + 30)
                && body["total"]["http_requests"]
                    .as_u64()
                    .is_some_and(|n| n >= total_before + 60)
                && echo_handled(body, "n3").is_some_and(|n| n >= echo_before + 10)
        },
    )
    .await;
    assert_total_is_the_sum(&last);
    // n3 served its 30 requests, and answered them all with a 2xx.
    assert!(
        node(&last, "n3")["counters"]["http_by_class"]["2xx"]
            .as_u64()
            .unwrap()
            >= 30,
        "{last}"
    );

    cluster.kill("n3");
    // At once (the failure detector may not have seen it yet) and after: every answer
    // prompt (`gather` checks), n3 marked soon.
    let started = Instant::now();
    gather_until(
        &cluster,
        "n1 to mark n3 unavailable",
        Duration::from_secs(30),
        |body| node(body, "n3")["unavailable"] == true,
    )
    .await;
    let (body, took) = gather(&cluster).await;
    eprintln!(
        "n3 marked unavailable {:?} after its kill; an answer then took {took:?}",
        started.elapsed()
    );
    let n3 = node(&body, "n3");
    assert_eq!(n3["unavailable"], true, "{body}");
    assert!(n3["counters"].is_null(), "{body}");
    assert!(n3["reason"].as_str().unwrap().contains("n3"), "{body}");
    assert_eq!(body["unavailable"], json!(["n3"]), "{body}");
    for id in ["n1", "n2"] {
        assert_eq!(node(&body, id)["unavailable"], false, "{body}");
    }
    assert!(
        http_requests(&body, "n2").unwrap() >= n2_before + 30,
        "{body}"
    );
    assert_total_is_the_sum(&body);
}

/// A frozen node (SIGSTOP: its sockets stay open, it answers nothing) costs the route its
/// deadline, no more: n1 answers with n3 unavailable, and with n3's figures again once it
/// runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_node_is_marked_unavailable_within_the_deadline() {
    let mut cluster = counted_cluster().await;
    cluster.proc("n3").freeze().await;
    // Before the failure detector says anything (it needs 1 s of silence for suspect), n3
    // is asked and does not answer: the deadline marks it.
    let (body, took) = gather(&cluster).await;
    eprintln!("with n3 frozen: {took:?}");
    let n3 = node(&body, "n3");
    assert_eq!(n3["unavailable"], true, "{body}");
    assert!(n3["reason"].as_str().unwrap().contains("n3"), "{body}");
    assert_eq!(node(&body, "n2")["unavailable"], false, "{body}");
    assert_total_is_the_sum(&body);
    cluster.proc("n3").signal(Signal::SIGCONT);
    gather_until(
        &cluster,
        "n1 to count n3 again",
        Duration::from_secs(30),
        all_counted,
    )
    .await;
}

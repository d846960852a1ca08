//! Membership and failure detection, from the outside: real node processes, real sockets, real
//! signals. The bounds asserted are the documented defaults: a killed node is down within 1 s,
//! a frozen one within 3 s, and either is up again within 3 s of coming back.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::Signal;
use support::{TestCluster, wait_until};
use tokio::time::Instant;

const FORM_DEADLINE: Duration = Duration::from_secs(30);
const KILLED_DOWN_WITHIN: Duration = Duration::from_secs(1);
const FROZEN_DOWN_WITHIN: Duration = Duration::from_secs(3);
const BACK_UP_WITHIN: Duration = Duration::from_secs(3);

async fn formed(cluster: &mut TestCluster) {
    cluster.start_all();
    let ids = cluster.ids();
    let observers: Vec<&str> = ids.iter().map(String::as_str).collect();
    wait_until("every node to see every node up", FORM_DEADLINE, || {
        cluster.all_up(&observers)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_form_a_full_mesh_and_serve_the_edge() {
    let mut cluster = TestCluster::new(3);
    formed(&mut cluster).await;
    for id in ["n1", "n2", "n3"] {
        let (status, body) = cluster.get(id, "/admin/cluster").await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body["node"], id);
        let nodes = body["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 3);
        for n in nodes {
            let peer = cluster.node(n["id"].as_str().unwrap());
            assert_eq!(n["status"], "up");
            assert_eq!(
                n["cluster_addr"],
                format!("127.0.0.1:{}", peer.cluster_port)
            );
            assert_eq!(n["http_addr"], format!("127.0.0.1:{}", peer.http_port));
        }
        let (status, body) = cluster.get(id, "/health/ready").await.unwrap();
        assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
    }

    // The edge over a real socket: JSON errors and request ids.
    let response = support::http()
        .build()
        .unwrap()
        .get(cluster.node("n2").url("/no/such/route"))
        .header("x-request-id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-request-id"], "req-42");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["error"]["request_id"], "req-42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_down_within_a_second_and_rejoins_without_restarting_others() {
    let mut cluster = TestCluster::new(3);
    formed(&mut cluster).await;
    let n1_seen_by_n2 = cluster.incarnation("n2", "n1").await.unwrap();
    let n2_seen_by_n1 = cluster.incarnation("n1", "n2").await.unwrap();

    let killed_at = Instant::now();
    cluster.kill("n3");
    wait_until(
        "n1 and n2 to see n3 down",
        KILLED_DOWN_WITHIN * 5,
        || async {
            cluster.sees("n1", "n3", "down").await && cluster.sees("n2", "n3", "down").await
        },
    )
    .await;
    let detected = killed_at.elapsed();
    assert!(
        detected <= KILLED_DOWN_WITHIN,
        "a killed node must be down within {KILLED_DOWN_WITHIN:?}, took {detected:?}"
    );
    assert!(
        cluster.all_up_except("n3").await,
        "n1 and n2 stay up for each other"
    );

    cluster.start("n3");
    let back = wait_until("all three up again", BACK_UP_WITHIN * 5, || {
        cluster.all_up(&["n1", "n2", "n3"])
    })
    .await;
    assert!(
        back <= BACK_UP_WITHIN,
        "a restarted node must be up within {BACK_UP_WITHIN:?}, took {back:?}"
    );
    assert!(cluster.proc("n1").is_running() && cluster.proc("n2").is_running());
    assert_eq!(
        cluster.incarnation("n2", "n1").await.unwrap(),
        n1_seen_by_n2
    );
    assert_eq!(
        cluster.incarnation("n1", "n2").await.unwrap(),
        n2_seen_by_n1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_node_is_suspected_then_down_and_up_again_when_it_thaws() {
    let mut cluster = TestCluster::new(3);
    formed(&mut cluster).await;

    let frozen_at = Instant::now();
    cluster.proc("n2").signal(Signal::SIGSTOP);
    let saw_suspect = AtomicBool::new(false);
    wait_until("n1 and n3 to see n2 down", FROZEN_DOWN_WITHIN * 3, || {
        let saw_suspect = &saw_suspect;
        let cluster = &cluster;
        async move {
            let a = cluster.statuses("n1").await.unwrap_or_default();
            let b = cluster.statuses("n3").await.unwrap_or_default();
            let of = |s: &std::collections::HashMap<String, String>| s.get("n2").cloned();
            if of(&a).as_deref() == Some("suspect") || of(&b).as_deref() == Some("suspect") {
                saw_suspect.store(true, Ordering::Relaxed);
            }
            of(&a).as_deref() == Some("down") && of(&b).as_deref() == Some("down")
        }
    })
    .await;
    let detected = frozen_at.elapsed();
    assert!(
        detected <= FROZEN_DOWN_WITHIN,
        "a frozen node must be down within {FROZEN_DOWN_WITHIN:?}, took {detected:?}"
    );
    assert!(
        saw_suspect.load(Ordering::Relaxed),
        "a silent node is suspect before it is down"
    );
    assert!(cluster.sees("n1", "n3", "up").await && cluster.sees("n3", "n1", "up").await);

    cluster.proc("n2").signal(Signal::SIGCONT);
    let back = wait_until("n2 up again everywhere", BACK_UP_WITHIN * 3, || {
        cluster.all_up(&["n1", "n2", "n3"])
    })
    .await;
    assert!(
        back <= BACK_UP_WITHIN,
        "a thawed node must be up within {BACK_UP_WITHIN:?}, took {back:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_the_wrong_cookie_never_joins() {
    let mut cluster = TestCluster::new(3);
    cluster.start("n1");
    cluster.start("n2");
    cluster.start_with_cookie("n3", "a-different-cookie-entirely");
    // n1 and n2 dial n3 (ids sorting first dial); wait until several of those dials were refused.
    wait_until(
        "n1 and n2 to be refused by n3 twice each",
        FORM_DEADLINE,
        || async {
            ["n1", "n2"].iter().all(|id| {
                cluster
                    .log(id)
                    .matches("closed before authenticating")
                    .count()
                    >= 2
            })
        },
    )
    .await;
    wait_until("n1 and n2 to see each other up", FORM_DEADLINE, || async {
        cluster.sees("n1", "n2", "up").await && cluster.sees("n2", "n1", "up").await
    })
    .await;
    for observer in ["n1", "n2"] {
        assert!(
            cluster.sees(observer, "n3", "down").await,
            "{observer} must not admit n3"
        );
    }
    let (_, n3_view) = cluster.get("n3", "/admin/cluster").await.unwrap();
    for n in n3_view["nodes"].as_array().unwrap() {
        if n["id"] != "n3" {
            assert_eq!(
                n["status"], "down",
                "n3 must not see {} as a member",
                n["id"]
            );
        }
    }
    let (ready, _) = cluster.get("n3", "/health/ready").await.unwrap();
    assert_eq!(ready, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_peers_are_late_is_not_ready_until_they_come() {
    let mut cluster = TestCluster::new(3);
    cluster.start("n2");
    wait_until("n2 to be live", FORM_DEADLINE, || async {
        matches!(cluster.get("n2", "/health/live").await, Some((200, _)))
    })
    .await;
    let response = reqwest::get(cluster.node("n2").url("/health/ready"))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");

    cluster.start("n1");
    cluster.start("n3");
    wait_until("n2 to become ready", FORM_DEADLINE, || async {
        matches!(cluster.get("n2", "/health/ready").await, Some((200, _)))
    })
    .await;
    wait_until("the late nodes to join", FORM_DEADLINE, || {
        cluster.all_up(&["n1", "n2", "n3"])
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_node_gracefully_and_its_peers_see_it_leave() {
    let mut cluster = TestCluster::new(2);
    formed(&mut cluster).await;
    cluster.proc("n2").signal(Signal::SIGTERM);
    let status = cluster.proc("n2").wait_exit(Duration::from_secs(10)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "exit status {status:?}"
    );
    let log = cluster.take("n2").log_text();
    assert!(log.contains("node stopped"), "{log}");
    wait_until("n1 to see n2 down", KILLED_DOWN_WITHIN * 5, || {
        cluster.sees("n1", "n2", "down")
    })
    .await;
}

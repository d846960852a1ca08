//! `/metrics` of real node processes: every series of the hand-written renderer, with its
//! names, labels and types, plus what the runtime now records through the `metrics` facade: the
//! store's group commits (latency and writes per flush), chaos kills, benchmark runs.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use std::time::Duration;

use serde_json::json;
use support::{TestCluster, metric, wait_until};

/// The `# TYPE` of `name` in `text`.
fn type_of<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        l.strip_prefix(&format!("# TYPE {name} "))?
            .split_whitespace()
            .next()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_keep_the_node_series_and_show_the_stores_group_commits() {
    let mut cluster = TestCluster::new(2);
    cluster.start_formed().await;

    // Durable writes on both nodes (the keys spread over the kv shards of both).
    let puts = 40;
    for i in 0..puts {
        let (status, body) = cluster
            .kv_put("n1", &format!("metrics-{i}"), &json!({"i": i}))
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }
    let text = cluster.metrics("n1").await;

    // The node's state, as before.
    assert_eq!(type_of(&text, "troupe_node_up"), Some("gauge"), "{text}");
    for node in ["n1", "n2"] {
        assert_eq!(
            metric(&text, &format!("troupe_node_up{{node=\"{node}\"}}")),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            metric(
                &text,
                &format!("troupe_service_members{{service=\"echo\",node=\"{node}\"}}")
            ),
            Some(2.0),
            "{text}"
        );
    }
    assert_eq!(type_of(&text, "troupe_cluster_formed"), Some("gauge"));
    assert_eq!(metric(&text, "troupe_cluster_formed"), Some(1.0));
    assert_eq!(type_of(&text, "troupe_service_members"), Some("gauge"));

    // Every service shows its restart summary, at zero before any restart.
    assert_eq!(
        type_of(&text, "troupe_member_restart_seconds"),
        Some("summary")
    );
    for service in ["echo", "kv"] {
        for q in ["0.5", "0.9", "0.99"] {
            assert_eq!(
                metric(
                    &text,
                    &format!(
                        "troupe_member_restart_seconds{{service=\"{service}\",quantile=\"{q}\"}}"
                    )
                ),
                Some(0.0),
                "{text}"
            );
        }
        for part in ["sum", "count"] {
            assert_eq!(
                metric(
                    &text,
                    &format!("troupe_member_restart_seconds_{part}{{service=\"{service}\"}}")
                ),
                Some(0.0),
                "{text}"
            );
        }
    }

    // The link counters, as before.
    for name in [
        "troupe_link_frames_sent_total",
        "troupe_link_envelopes_sent_total",
        "troupe_link_frames_received_total",
        "troupe_link_envelopes_received_total",
        "troupe_link_bad_frames_total",
        "troupe_link_late_replies_total",
        "troupe_link_unknown_service_total",
        "troupe_link_refused_handshakes_total",
    ] {
        assert_eq!(type_of(&text, name), Some("counter"), "{name}: {text}");
        assert!(metric(&text, name).is_some(), "{name}: {text}");
    }
    assert!(metric(&text, "troupe_link_envelopes_sent_total").unwrap() > 0.0);

    // New: the store's group commits, on each node, covering every acknowledged write.
    let mut writes = 0.0;
    for node in ["n1", "n2"] {
        let text = cluster.metrics(node).await;
        for name in ["troupe_store_commit_seconds", "troupe_store_commit_writes"] {
            assert_eq!(type_of(&text, name), Some("histogram"), "{name}: {text}");
        }
        let commits = metric(&text, "troupe_store_commit_seconds_count").unwrap();
        let flushes = metric(&text, "troupe_store_commit_writes_count").unwrap();
        assert!(commits >= 1.0, "{node} committed: {text}");
        assert_eq!(commits, flushes, "one sample of each per flush");
        assert_eq!(
            metric(&text, "troupe_store_commit_seconds_bucket{le=\"+Inf\"}"),
            Some(commits)
        );
        let mean = metric(&text, "troupe_store_commit_seconds_sum").unwrap() / commits;
        assert!(mean > 0.0 && mean < 1.0, "{node} commit mean {mean} s");
        // Writes one at a time: most flushes carry one, none carries none.
        assert!(metric(&text, "troupe_store_commit_writes_bucket{le=\"1\"}").unwrap() >= 1.0);
        writes += metric(&text, "troupe_store_commit_writes_sum").unwrap();
    }
    assert!(
        writes >= f64::from(puts),
        "{writes} writes committed for {puts} acknowledged puts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chaos_kill_and_a_benchmark_are_counted_where_they_happen() {
    let mut cluster = TestCluster::new(2);
    cluster.start_formed().await;

    let (status, body) = cluster
        .post(
            "n1",
            "/admin/chaos/kill",
            &json!({"service": "echo", "node": "n2"}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    wait_until(
        "n2 to count the restart",
        Duration::from_secs(10),
        || async {
            metric(
                &cluster.metrics("n2").await,
                "troupe_member_restart_seconds_count{service=\"echo\"}",
            ) == Some(1.0)
        },
    )
    .await;
    let n2 = cluster.metrics("n2").await;
    assert_eq!(
        metric(&n2, "troupe_chaos_kills_total{service=\"echo\"}"),
        Some(1.0),
        "{n2}"
    );
    let n1 = cluster.metrics("n1").await;
    assert_eq!(
        metric(&n1, "troupe_chaos_kills_total{service=\"echo\"}"),
        None,
        "the kill happened on n2: {n1}"
    );
    assert_eq!(
        metric(&n1, "troupe_member_restart_seconds_count{service=\"echo\"}"),
        Some(0.0)
    );

    let (status, body) = cluster
        .post(
            "n1",
            "/admin/bench",
            &json!({"target_node": "n2", "mode": "call", "payload_bytes": 16,
                    "duration_ms": 200, "in_flight": 4}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let n1 = cluster.metrics("n1").await;
    assert_eq!(
        metric(
            &n1,
            "troupe_bench_runs_total{service=\"echo\",mode=\"call\"}"
        ),
        Some(1.0),
        "{n1}"
    );
}

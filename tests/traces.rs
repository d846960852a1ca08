//! Distributed traces on a real 3-node cluster, exported over OTLP/HTTP to a tiny receiver this
//! test runs: one order placed on n1 whose saga's shards live on the other two nodes is one
//! trace, correctly parented across all three; the edge continues a caller's `traceparent`
//! and ignores a malformed one; and a collector that is not there slows nothing down.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

#[path = "traces/receiver.rs"]
mod receiver;
mod support;

use std::collections::{HashMap, HashSet};
use std::future::Future;

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::time::Duration;
use troupe_node::auth::Role;

use receiver::{Got, receiver};
use support::{COOKIE, TestCluster, config_text_with, send_json, token, wait_until};

const SERVICES: &str = "[services.users]\nshards = 4\n\n[services.user-emails]\nshards = 4\n\n\
                        [services.wallets]\nshards = 4\n\n[services.products]\nshards = 4\n\n\
                        [services.product-skus]\nshards = 4\n\n[services.orders]\nshards = 4\n\n\
                        [services.order-views]\nshards = 4\n\n[services.notifications]\nshards = 4\n";

/// A 3-node cluster with the business services, every node exporting to `endpoint`.
async fn cluster(endpoint: &str) -> TestCluster {
    let mut cluster = TestCluster::new(3);
    std::fs::write(&cluster.config, config_text_with(&cluster.nodes, SERVICES)).unwrap();
    for id in cluster.ids() {
        cluster.start_with(&id, COOKIE, &[("TROUPE_OTLP_ENDPOINT", endpoint)]);
    }
    let ids = cluster.ids();
    let names: Vec<&str> = ids.iter().map(String::as_str).collect();
    wait_until("the cluster to form", Duration::from_secs(60), || {
        cluster.all_up(&names)
    })
    .await;
    for service in [
        "orders",
        "products",
        "wallets",
        "order-views",
        "notifications",
    ] {
        wait_until(
            &format!("{service}'s shards to be placed"),
            Duration::from_secs(60),
            || async { cluster.shard_map("n1", service).await.len() == 4 },
        )
        .await;
    }
    cluster
}

/// The node of the shard of `id` (a UUID) in `service` (4 shards).
async fn node_of(cluster: &TestCluster, service: &str, id: &str) -> String {
    let key = uuid::Uuid::parse_str(id).unwrap();
    let shard = troupe_runtime::shard::shard_of(key.as_bytes(), 4) as usize;
    cluster.shard_map("n1", service).await[shard].clone()
}

/// Makes things with `make` (given a counter; it answers the new thing's id) until one's shard
/// of `service` is not on n1; its id.
async fn off_n1<F: Future<Output = String>>(
    cluster: &TestCluster,
    service: &str,
    mut make: impl FnMut(usize) -> F,
) -> String {
    for n in 0..40 {
        let id = make(n).await;
        if node_of(cluster, service, &id).await != "n1" {
            return id;
        }
    }
    panic!("nothing of {service} landed off n1");
}

/// Registers users until one's wallet is not on n1; their id.
async fn user_off_n1(cluster: &TestCluster) -> String {
    off_n1(cluster, "wallets", |n| async move {
        let email = format!("tracer{n}-{}@example.com", uuid::Uuid::new_v4().simple());
        let body = json!({"email": email, "name": "tracer", "password": "correct horse battery"});
        let request = support::client()
            .post(cluster.node("n1").url("/api/v1/users"))
            .json(&body);
        let (status, user) = send_json(request).await.unwrap();
        assert_eq!(status, 201, "{user}");
        user["id"].as_str().unwrap().to_string()
    })
    .await
}

/// Creates products until one's shard is not on n1; its id.
async fn product_off_n1(cluster: &TestCluster) -> String {
    let admin = token(Role::Admin);
    let admin = &admin;
    off_n1(cluster, "products", |n| async move {
        let sku = format!("TRACE-{n}-{}", uuid::Uuid::new_v4().simple());
        let body = json!({"sku": sku, "name": sku, "price_cents": 100, "stock": 50});
        let request = support::client()
            .post(cluster.node("n1").url("/api/v1/products"))
            .bearer_auth(admin)
            .json(&body);
        let (status, product) = send_json(request).await.unwrap();
        assert_eq!(status, 201, "{product}");
        product["id"].as_str().unwrap().to_string()
    })
    .await
}

/// Places an order through n1 until one's own shard (the order and its saga) is not on n1:
/// its id and the trace id of the request that placed it (from the response's
/// `traceparent`).
async fn order_off_n1(cluster: &TestCluster, user: &str, product: &str) -> (String, String) {
    for n in 0..40 {
        let response = support::client()
            .post(cluster.node("n1").url("/api/v1/orders"))
            .bearer_auth(support::user_token(user))
            .header("Idempotency-Key", format!("trace-{n}"))
            .json(&json!({"items": [{"product_id": product, "quantity": 1}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202);
        let traceparent = traceparent_of(&response);
        let order: Value = response.json().await.unwrap();
        let id = order["id"].as_str().unwrap().to_string();
        if node_of(cluster, "orders", &id).await != "n1" {
            return (id, traceparent.1);
        }
    }
    panic!("no order landed off n1");
}

/// Waits until `order`, read through `node` as an admin, is confirmed.
async fn confirmed(cluster: &TestCluster, node: &str, order: &str) {
    let admin = token(Role::Admin);
    wait_until("the order to be final", Duration::from_secs(30), || async {
        let request = support::client()
            .get(cluster.node(node).url(&format!("/api/v1/orders/{order}")))
            .bearer_auth(&admin);
        matches!(send_json(request).await, Some((200, o)) if o["status"] == "confirmed")
    })
    .await;
}

/// The response's `traceparent`: (the whole header, its trace id, its span id).
fn traceparent_of(response: &reqwest::Response) -> (String, String, String) {
    let header = response
        .headers()
        .get("traceparent")
        .expect("a traceparent in the response")
        .to_str()
        .unwrap()
        .to_string();
    let parts: Vec<&str> = header.split('-').collect();
    assert_eq!(parts.len(), 4, "{header}");
    assert_eq!(parts[0], "00", "{header}");
    assert_eq!(parts[1].len(), 32, "{header}");
    assert_eq!(parts[2].len(), 16, "{header}");
    (header.clone(), parts[1].to_string(), parts[2].to_string())
}

/// What a complete trace of one order must show; None if it does, else what is missing.
fn missing(spans: &[Got], order_nodes: &HashSet<String>) -> Option<String> {
    let has = |what: &str, f: &dyn Fn(&Got) -> bool| {
        if spans.iter().any(f) {
            None
        } else {
            Some(what.to_string())
        }
    };
    let kind = |s: &Got, key: &str| s.attributes.contains_key(key);
    let checks = [
        has("the HTTP request's span", &|s| {
            s.name == "HTTP POST /api/v1/orders" && s.node == "n1"
        }),
        has("an actor message on the order's node", &|s| {
            kind(s, "troupe.message.kind")
                && s.attributes.get("troupe.service").map(String::as_str) == Some("orders")
        }),
        has("a saga step", &|s| kind(s, "troupe.saga.step")),
        has("a store commit", &|s| kind(s, "troupe.store.writes")),
        has("an event delivery", &|s| kind(s, "troupe.event.topic")),
        has("a wallet's message", &|s| {
            s.attributes.get("troupe.service").map(String::as_str) == Some("wallets")
        }),
        has("a product's message", &|s| {
            s.attributes.get("troupe.service").map(String::as_str) == Some("products")
        }),
    ];
    if let Some(what) = checks.into_iter().flatten().next() {
        return Some(what);
    }
    let nodes: HashSet<&str> = spans.iter().map(|s| s.node.as_str()).collect();
    for node in order_nodes.iter().chain([&"n1".to_string()]) {
        if !nodes.contains(node.as_str()) {
            return Some(format!("a span from {node}"));
        }
    }
    let ids: HashSet<&str> = spans.iter().map(|s| s.span.as_str()).collect();
    spans
        .iter()
        .find(|s| !s.parent.is_empty() && !ids.contains(s.parent.as_str()))
        .map(|s| format!("the parent of {:?} ({})", s.name, s.parent))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_is_one_trace_across_three_nodes_and_the_edge_continues_a_callers_trace() {
    let (endpoint, received) = receiver().await;
    let cluster = cluster(&endpoint).await;
    let user = user_off_n1(&cluster).await;
    let product = product_off_n1(&cluster).await;
    let (order, trace) = order_off_n1(&cluster, &user, &product).await;
    let mut order_nodes: HashSet<String> = HashSet::new();
    order_nodes.insert(node_of(&cluster, "orders", &order).await);
    order_nodes.insert(node_of(&cluster, "wallets", &user).await);
    order_nodes.insert(node_of(&cluster, "products", &product).await);
    assert!(!order_nodes.contains("n1"), "{order_nodes:?}");

    // The order finishes, and its trace arrives whole.
    confirmed(&cluster, "n2", &order).await;
    let admin = token(Role::Admin);
    let waited = tokio::time::timeout(
        Duration::from_secs(30),
        wait_until("the order's trace", Duration::from_secs(30), || async {
            missing(&received.trace(&trace), &order_nodes).is_none()
        }),
    )
    .await;
    let spans = received.trace(&trace);
    if waited.is_err() {
        let names: Vec<_> = spans.iter().map(|s| (&s.node, &s.name)).collect();
        panic!(
            "the trace lacks {:?}; it has {names:?}",
            missing(&spans, &order_nodes)
        );
    }

    // Spans from all three nodes; one root, the HTTP request's span on n1; every other
    // span's parent in the trace, and started no later than its child.
    let nodes: HashSet<&str> = spans.iter().map(|s| s.node.as_str()).collect();
    assert_eq!(nodes, HashSet::from(["n1", "n2", "n3"]), "{spans:#?}");
    let by_id: HashMap<&str, &Got> = spans.iter().map(|s| (s.span.as_str(), s)).collect();
    let roots: Vec<&Got> = spans.iter().filter(|s| s.parent.is_empty()).collect();
    assert_eq!(roots.len(), 1, "{roots:#?}");
    assert_eq!(roots[0].name, "HTTP POST /api/v1/orders");
    assert_eq!(roots[0].node, "n1");
    assert_eq!(roots[0].attributes["http.route"], "/api/v1/orders");
    assert_eq!(roots[0].attributes["http.response.status_code"], "202");
    assert_eq!(roots[0].attributes["enduser.id"], user);
    for span in &spans {
        if span.parent.is_empty() {
            continue;
        }
        let parent = by_id
            .get(span.parent.as_str())
            .unwrap_or_else(|| panic!("no parent for {span:#?}"));
        assert!(
            parent.start <= span.start,
            "{parent:#?} started after its child {span:#?}"
        );
    }
    // Actor messages on each node of the order's shards.
    for node in &order_nodes {
        assert!(
            spans
                .iter()
                .any(|s| &s.node == node && s.attributes.contains_key("troupe.message.kind")),
            "no actor message on {node}"
        );
    }
    // The request's log line on n1 carries its trace and span ids.
    let trace_field = format!("\"trace_id\":\"{}\"", roots[0].trace);
    let span_field = format!("\"span_id\":\"{}\"", roots[0].span);
    wait_until(
        "n1's log line of the request",
        Duration::from_secs(10),
        || {
            let logged = cluster.log("n1").lines().any(|line| {
                line.contains("\"served\"")
                    && line.contains(&trace_field)
                    && line.contains(&span_field)
            });
            async move { logged }
        },
    )
    .await;
    let step = spans
        .iter()
        .find(|s| s.attributes.contains_key("troupe.saga.step"))
        .unwrap();
    assert_eq!(step.attributes["troupe.saga.type"], "orders");
    assert_eq!(step.attributes["troupe.saga.outcome"], "done");

    // A caller's trace is continued: the request's span is the child of the caller's.
    let caller_trace = format!("{:032x}", rand_u128());
    let caller_span = "00f067aa0ba902b7";
    let response = support::client()
        .get(
            cluster
                .node("n1")
                .url(&format!("/api/v1/products/{product}")),
        )
        .bearer_auth(&admin)
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let (_, trace_id, span_id) = traceparent_of(&response);
    assert_eq!(trace_id, caller_trace);
    assert_ne!(span_id, caller_span);
    wait_until("the continued trace", Duration::from_secs(30), || async {
        let spans = received.trace(&caller_trace);
        spans
            .iter()
            .any(|s| s.span == span_id && s.parent == caller_span)
            && spans.iter().any(|s| {
                s.parent == span_id
                    && s.attributes.get("troupe.service").map(String::as_str) == Some("products")
            })
    })
    .await;

    // A malformed one is ignored: the request is served, in a new trace.
    for bad in [
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    ] {
        let response = support::client()
            .get(
                cluster
                    .node("n1")
                    .url(&format!("/api/v1/products/{product}")),
            )
            .bearer_auth(&admin)
            .header("traceparent", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{bad}");
        let (_, trace_id, _) = traceparent_of(&response);
        assert_ne!(trace_id, "0".repeat(32), "{bad}");
        assert_ne!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", "{bad}");
        let fresh = trace_id.clone();
        wait_until("the new trace's root", Duration::from_secs(30), || async {
            received
                .trace(&fresh)
                .iter()
                .any(|s| s.parent.is_empty() && s.name == "HTTP GET /api/v1/products/{id}")
        })
        .await;
    }
}

fn rand_u128() -> u128 {
    uuid::Uuid::new_v4().as_u128() | 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_collector_neither_slows_nor_fails_requests_nor_the_shutdown() {
    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut cluster = cluster(&format!("http://{closed}")).await;
    let user = user_off_n1(&cluster).await;
    let product = product_off_n1(&cluster).await;
    let (order, _) = order_off_n1(&cluster, &user, &product).await;
    confirmed(&cluster, "n1", &order).await;
    // The spans that could not leave are counted as dropped.
    wait_until(
        "dropped spans to be counted",
        Duration::from_secs(30),
        || async {
            let mut dropped = 0.0;
            for id in ["n1", "n2", "n3"] {
                let text = cluster.metrics(id).await;
                dropped += support::metric(
                    &text,
                    "troupe_trace_spans_dropped_total{reason=\"export_failed\"}",
                )
                .unwrap_or(0.0);
            }
            dropped > 0.0
        },
    )
    .await;
    // And a node still stops promptly.
    cluster.proc("n2").signal(Signal::SIGTERM);
    let exited = cluster.proc("n2").wait_exit(Duration::from_secs(15)).await;
    assert!(exited.is_some_and(|s| s.success()), "{exited:?}");
}

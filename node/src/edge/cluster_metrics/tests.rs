use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use troupe_runtime::metrics::{MEMBER_RESTART_SECONDS, SAGAS_FINISHED, SAGAS_STARTED};

use super::counters::{MAX_SERVICES, ServiceCounters, from_metrics_text};
use super::*;
use crate::auth::Role;
use crate::edge::tests::{app, bearer, send};
use crate::metrics::HTTP_REQUESTS;

fn service(name: &str, sent: u64, received: u64, restarts: u64) -> ServiceCounters {
    ServiceCounters {
        name: name.into(),
        messages_sent: sent,
        messages_received: received,
        restarts,
    }
}

/// The figures are read from what the node's own recorder renders: requests by status class,
/// restarts per service (the runtime's own services left out), sagas started and finished.
#[test]
fn the_counters_come_from_the_recorders_text() {
    let recorder = crate::metrics::recorder();
    metrics::with_local_recorder(&recorder, || {
        for (status, n) in [("200", 3), ("201", 1), ("404", 2), ("503", 1)] {
            metrics::counter!(HTTP_REQUESTS, "method" => "GET", "route" => "/x", "status" => status)
                .increment(n);
        }
        metrics::counter!(HTTP_REQUESTS, "method" => "POST", "route" => "unmatched", "status" => "200")
            .increment(4);
        for _ in 0..2 {
            metrics::histogram!(MEMBER_RESTART_SECONDS, "service" => "echo").record(0.01);
        }
        metrics::histogram!(MEMBER_RESTART_SECONDS, "service" => "orders").record(0.5);
        metrics::histogram!(MEMBER_RESTART_SECONDS, "service" => "troupe.system").record(0.5);
        metrics::counter!(SAGAS_STARTED, "saga" => "order").increment(5);
        metrics::counter!(SAGAS_FINISHED, "saga" => "order", "outcome" => "completed", "reason" => "none")
            .increment(3);
        metrics::counter!(SAGAS_FINISHED, "saga" => "order", "outcome" => "compensated", "reason" => "out_of_stock")
            .increment(1);
    });
    let counters = from_metrics_text(&recorder.handle().render());
    assert_eq!(counters.http_requests, 11);
    assert_eq!(counters.http_by_class.success, 8);
    assert_eq!(counters.http_by_class.client_error, 2);
    assert_eq!(counters.http_by_class.server_error, 1);
    assert_eq!(counters.restarts, 3);
    assert_eq!(
        counters.services,
        vec![service("echo", 0, 0, 2), service("orders", 0, 0, 1)]
    );
    assert_eq!(counters.sagas_started, 5);
    assert_eq!(counters.sagas_finished, 4);
}

/// Label values with escaped quotes, backslashes and commas do not derail the parse.
#[test]
fn escaped_label_values_parse() {
    let text = "troupe_http_requests_total{route=\"/a\\\"b,c\\\\\",status=\"404\"} 7\n\
                troupe_http_requests_total{status=\"200\"} 2\n\
                troupe_http_requests_total{status=\"500\"} not-a-number\n\
                troupe_http_requests_total{status=\"500\" 9\n";
    let counters = from_metrics_text(text);
    assert_eq!(counters.http_requests, 9);
    assert_eq!(counters.http_by_class.client_error, 7);
    assert_eq!(counters.http_by_class.server_error, 0);
    // Broken lines are skipped, never a panic: unterminated, empty, valueless, negative,
    // not finite, multi-byte text at every turn.
    let broken = "troupe_http_requests_total{status=\"2é\n\
                  troupe_http_requests_total{status=\"é\\\n\
                  troupe_http_requests_total\n{\n}\n\n=\"\n\
                  troupe_http_requests_total{status=\"200\"}\n\
                  troupe_http_requests_total{status=\"200\"} -5\n\
                  troupe_http_requests_total{status=\"200\"} NaN\n\
                  troupe_http_requests_total{status=\"200\"} +Inf\n\
                  troupe_http_requests_total{é=\"ü\",status=\"500\"} 1.0e1\n";
    let counters = from_metrics_text(broken);
    assert_eq!(counters.http_requests, 10, "{counters:?}");
    assert_eq!(counters.http_by_class.server_error, 10);
}

#[test]
fn sums_add_up_service_by_service() {
    let mut total = NodeCounters::default();
    let a = NodeCounters {
        http_requests: 5,
        messages_sent: 3,
        messages_received: 2,
        restarts: 1,
        services: vec![service("echo", 3, 2, 1)],
        ..NodeCounters::default()
    };
    let b = NodeCounters {
        http_requests: 1,
        messages_sent: 10,
        messages_received: 10,
        services: vec![service("echo", 4, 4, 0), service("kv", 6, 6, 0)],
        ..NodeCounters::default()
    };
    total.absorb(&a);
    total.absorb(&b);
    assert_eq!(total.http_requests, 6);
    assert_eq!(total.messages_sent, 13);
    assert_eq!(total.restarts, 1);
    assert_eq!(
        total.services,
        vec![service("echo", 7, 6, 1), service("kv", 6, 6, 0)]
    );
}

/// A peer's answer is bounded: a service listed twice, an empty name or too many services
/// make it invalid.
#[test]
fn a_peers_answer_is_checked() {
    let ok = NodeCounters {
        services: vec![service("echo", 1, 1, 0), service("kv", 1, 1, 0)],
        ..NodeCounters::default()
    };
    assert_eq!(ok.check(), Ok(()));
    let twice = NodeCounters {
        services: vec![service("echo", 1, 1, 0), service("echo", 1, 1, 0)],
        ..NodeCounters::default()
    };
    assert!(twice.check().unwrap_err().contains("twice"));
    let empty = NodeCounters {
        services: vec![service("", 1, 1, 0)],
        ..NodeCounters::default()
    };
    assert!(empty.check().is_err());
    let many = NodeCounters {
        services: (0..=MAX_SERVICES)
            .map(|i| service(&format!("s{i}"), 0, 0, 0))
            .collect(),
        ..NodeCounters::default()
    };
    assert!(many.check().is_err());
}

fn get(path: &str, role: Option<Role>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(role) = role {
        request = request.header(header::AUTHORIZATION, bearer(role));
    }
    request.body(Body::empty()).unwrap()
}

/// On a node whose peer n2 never started, the route answers at once (n2 is not asked past
/// the deadline) with n1's counters, n2 marked unavailable and left out of the total; it is
/// an admin's route.
#[tokio::test]
async fn a_node_that_does_not_answer_is_marked_unavailable_and_the_rest_still_comes() {
    let app = app(false).await;
    let router = app.bare();
    for _ in 0..3 {
        let (status, _, _) = send(router.clone(), get("/health/live", None)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _, _) = send(router.clone(), get("/admin/metrics/cluster", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = send(
        router.clone(),
        get("/admin/metrics/cluster", Some(Role::User)),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let started = tokio::time::Instant::now();
    let (status, _, body) = send(
        router.clone(),
        get("/admin/metrics/cluster", Some(Role::Admin)),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        took < PEER_DEADLINE + Duration::from_secs(1),
        "took {took:?}: {body}"
    );
    assert_eq!(body["node"], "n1");
    assert_eq!(body["unavailable"], serde_json::json!(["n2"]), "{body}");
    let nodes = body["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{body}");
    assert_eq!(nodes[0]["node"], "n1");
    assert_eq!(nodes[0]["unavailable"], false);
    // The three requests above and the two refused ones, at least (a request is counted
    // once it is answered).
    let n1 = &nodes[0]["counters"];
    assert!(n1["http_requests"].as_u64().unwrap() >= 5, "{body}");
    assert!(n1["http_by_class"]["2xx"].as_u64().unwrap() >= 3, "{body}");
    assert!(n1["http_by_class"]["4xx"].as_u64().unwrap() >= 2, "{body}");
    assert_eq!(nodes[1]["node"], "n2");
    assert_eq!(nodes[1]["unavailable"], true);
    assert!(nodes[1]["counters"].is_null());
    assert!(
        nodes[1]["reason"].as_str().unwrap().contains("n2"),
        "{body}"
    );
    assert_eq!(body["total"], *n1, "the total is n1's alone");
}

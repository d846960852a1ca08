use axum::body::{Body, to_bytes};
use axum::http::{Request, header};
use serde_json::Value;
use tower::ServiceExt;
use troupe_runtime::{NodeId, NodeStatus, PeerView};

use super::*;

fn view(formed: bool) -> ClusterView {
    let peer = |id: &str, port: u16, status| PeerView {
        id: NodeId::try_new(id).unwrap(),
        status,
        cluster_addr: SocketAddr::from(([127, 0, 0, 1], port)),
        last_heard_ms: Some(3),
        incarnation: Some(1),
    };
    ClusterView {
        node: NodeId::try_new("n1").unwrap(),
        nodes: vec![
            peer("n1", 7101, NodeStatus::Up),
            peer(
                "n2",
                7102,
                if formed {
                    NodeStatus::Up
                } else {
                    NodeStatus::Down
                },
            ),
        ],
        formed,
    }
}

fn app(formed: bool) -> Router {
    let (_tx, rx) = watch::channel(view(formed));
    let addrs = HashMap::from([
        ("n1".to_string(), SocketAddr::from(([127, 0, 0, 1], 8081))),
        ("n2".to_string(), SocketAddr::from(([127, 0, 0, 1], 8082))),
    ]);
    let http = HttpSettings {
        body_limit_bytes: 1024,
        ..HttpSettings::default()
    };
    router(AppState::new("n1", rx, addrs), &http)
}

async fn send(app: Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn assert_error_shape(body: &Value, code: &str, headers: &axum::http::HeaderMap) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(
        body["error"]["request_id"].as_str(),
        headers.get("x-request-id").and_then(|v| v.to_str().ok()),
        "the body and the header carry the same request id"
    );
}

#[tokio::test]
async fn live_is_always_ok_and_carries_a_request_id() {
    let (status, headers, body) = send(app(false), get("/health/live")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["node"], "n1");
    let id = headers["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn a_client_request_id_is_echoed_and_a_bad_one_replaced() {
    let request = Request::get("/nope")
        .header("x-request-id", "abc-123")
        .body(Body::empty())
        .unwrap();
    let (_, headers, body) = send(app(true), request).await;
    assert_eq!(headers["x-request-id"], "abc-123");
    assert_eq!(body["error"]["request_id"], "abc-123");

    let long = "x".repeat(500);
    let request = Request::get("/health/live")
        .header("x-request-id", long.as_str())
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = send(app(true), request).await;
    assert_ne!(headers["x-request-id"], long.as_str());
}

#[tokio::test]
async fn ready_waits_for_the_cluster_to_form() {
    let (status, headers, body) = send(app(false), get("/health/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error_shape(&body, "unavailable", &headers);
    assert!(body["error"]["message"].as_str().unwrap().contains("n2"));
    assert_eq!(headers[header::RETRY_AFTER], "1");

    let (status, _, body) = send(app(true), get("/health/ready")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn admin_cluster_has_the_documented_shape() {
    let (status, _, body) = send(app(false), get("/admin/cluster")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["node"], "n1");
    let nodes = body["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[1]["id"], "n2");
    assert_eq!(nodes[1]["status"], "down");
    assert_eq!(nodes[1]["cluster_addr"], "127.0.0.1:7102");
    assert_eq!(nodes[1]["http_addr"], "127.0.0.1:8082");
    assert!(body["services"].is_array());
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let (status, headers, body) = send(app(true), get("/api/v1/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(&body, "not_found", &headers);
    assert_eq!(body["error"]["message"], "no route GET /api/v1/nothing");

    let request = Request::delete("/health/live").body(Body::empty()).unwrap();
    let (status, headers, body) = send(app(true), request).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_error_shape(&body, "method_not_allowed", &headers);
}

#[tokio::test]
async fn an_oversized_body_gets_413_in_the_json_shape() {
    let request = Request::post("/health/live")
        .header(header::CONTENT_LENGTH, "4096")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(vec![b' '; 4096]))
        .unwrap();
    let (status, headers, body) = send(app(true), request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error_shape(&body, "payload_too_large", &headers);
}

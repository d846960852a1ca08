use axum::body::{Body, to_bytes};
use axum::http::{Request, header};
use serde_json::Value;
use tower::ServiceExt;
use troupe_runtime::echo::Echo;
use troupe_runtime::entity::EntityService;
use troupe_runtime::kv::Kv;

use super::*;
use crate::config::NodeConfig;

const COOKIE: &str = "edge-test-cookie-0123456789";
/// The token key of the test apps.
const TOKEN_KEY: &[u8] = b"edge-test-token-key-of-32-bytes!";

fn test_tokens() -> crate::auth::Tokens {
    crate::auth::Tokens::new(
        TOKEN_KEY,
        crate::auth::ISSUER,
        crate::auth::AUDIENCE,
        crate::auth::TOKEN_TTL,
    )
}

/// A bearer header value for a token of `role`.
pub(super) fn bearer(role: crate::auth::Role) -> String {
    format!("Bearer {}", test_tokens().issue("tester", role).unwrap())
}

/// `n` distinct free ports (held together while chosen, so that they differ).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A real runtime for node n1 hosting echo: alone (a formed cluster) or with an n2 that never
/// starts (a cluster that never forms).
/// A router over a real runtime, the directory of its store (held so that it is removed when
/// the test ends, not before), and the test's own metrics recorder: the default on this
/// thread while the app lives. Each test runs on a thread of its own under a current-thread
/// runtime, so whatever its runtime records lands here, apart from the other tests'.
pub(super) struct App(
    Router,
    #[allow(dead_code)] tempfile::TempDir,
    #[allow(dead_code)] ::metrics::LocalRecorderGuard<'static>,
);

impl App {
    /// The router, with an admin's token added to every request that carries none (the
    /// routes' own tests; `bare` is for the tests of authentication itself).
    fn router(&self) -> Router {
        self.0.clone().layer(axum::middleware::map_request(
            |mut request: Request<Body>| async move {
                if !request.headers().contains_key(header::AUTHORIZATION) {
                    let value = bearer(crate::auth::Role::Admin).parse().unwrap();
                    request.headers_mut().insert(header::AUTHORIZATION, value);
                }
                request
            },
        ))
    }

    /// The router as clients see it.
    pub(super) fn bare(&self) -> Router {
        self.0.clone()
    }
}

pub(super) async fn app(formed: bool) -> App {
    app_with(formed, |_| {}).await
}

/// [`app`], with `tune` applied to its configuration first.
async fn app_with(formed: bool, tune: impl FnOnce(&mut NodeConfig)) -> App {
    let dir = tempfile::tempdir().unwrap();
    let ids = if formed {
        &["n1"][..]
    } else {
        &["n1", "n2"][..]
    };
    let ports = free_ports(3 * ids.len());
    let nodes: Vec<_> = ids
        .iter()
        .zip(ports.chunks(3))
        .map(|(id, p)| (*id, [p[0], p[1], p[2]]))
        .collect();
    let mut config = NodeConfig::for_test(dir.path(), &nodes);
    config.http.body_limit_bytes = 1024;
    tune(&mut config);
    // Leaked: a few per test process, and the guard must borrow it for the app's life.
    let recorder: &'static _ = Box::leak(Box::new(crate::metrics::recorder()));
    let guard = ::metrics::set_default_local_recorder(recorder);
    troupe_runtime::metrics::describe();
    let runtime = Runtime::start(config.runtime_settings("n1", COOKIE.into()).unwrap())
        .await
        .unwrap();
    runtime.host(Echo).await.unwrap();
    runtime.host(EntityService::<Kv>::new()).await.unwrap();
    let addrs = config
        .nodes
        .iter()
        .map(|n| (n.id.to_string(), n.http_addr))
        .collect();
    let state = AppState::new(runtime, test_tokens(), addrs, recorder.handle());
    App(router(state, &config.http), dir, guard)
}

pub(super) async fn send(
    app: Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
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
    let (status, headers, body) = send(app(false).await.router(), get("/health/live")).await;
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
    let (_, headers, body) = send(app(true).await.router(), request).await;
    assert_eq!(headers["x-request-id"], "abc-123");
    assert_eq!(body["error"]["request_id"], "abc-123");

    let long = "x".repeat(500);
    let request = Request::get("/health/live")
        .header("x-request-id", long.as_str())
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = send(app(true).await.router(), request).await;
    assert_ne!(headers["x-request-id"], long.as_str());
}

#[tokio::test]
async fn ready_waits_for_the_cluster_to_form() {
    let (status, headers, body) = send(app(false).await.router(), get("/health/ready")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error_shape(&body, "unavailable", &headers);
    assert!(body["error"]["message"].as_str().unwrap().contains("n2"));
    assert_eq!(headers[header::RETRY_AFTER], "1");

    let (status, _, body) = send(app(true).await.router(), get("/health/ready")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn admin_cluster_has_the_documented_shape() {
    let (status, _, body) = send(app(false).await.router(), get("/admin/cluster")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["node"], "n1");
    let nodes = body["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[0]["status"], "up");
    assert_eq!(nodes[1]["id"], "n2");
    assert_eq!(nodes[1]["status"], "down");
    assert!(
        nodes[1]["cluster_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(
        nodes[1]["http_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let services = body["services"].as_array().unwrap();
    let echo = services.iter().find(|s| s["name"] == "echo").unwrap();
    assert_eq!(
        echo["members"],
        serde_json::json!([{"node": "n1", "count": 2}, {"node": "n2", "count": 0}])
    );
    assert!(echo["shards"].is_array());
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let (status, headers, body) = send(app(true).await.router(), get("/api/v1/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(&body, "not_found", &headers);
    assert_eq!(body["error"]["message"], "no route GET /api/v1/nothing");

    let request = Request::delete("/health/live").body(Body::empty()).unwrap();
    let (status, headers, body) = send(app(true).await.router(), request).await;
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
    let (status, headers, body) = send(app(true).await.router(), request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error_shape(&body, "payload_too_large", &headers);
}

fn post(path: &str, body: &str) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn echo_goes_through_the_runtime() {
    let (status, _, body) = send(
        app(true).await.router(),
        post("/admin/echo", r#"{"payload": "hi"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["payload"], "hi");
    assert_eq!(body["node"], "n1");
    assert_eq!(body["handled"], 1);
}

#[tokio::test]
async fn a_call_past_its_deadline_is_a_503() {
    let request = post("/admin/echo", r#"{"delay_ms": 2000, "timeout_ms": 100}"#);
    let (status, headers, body) = send(app(true).await.router(), request).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_error_shape(&body, "unavailable", &headers);
    assert_eq!(headers[header::RETRY_AFTER], "1");
}

#[tokio::test]
async fn chaos_kills_a_member_and_its_supervisor_brings_it_back() {
    let app = app(true).await;
    let (status, _, body) = send(
        app.router(),
        post("/admin/chaos/kill", r#"{"service": "echo"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let killed = body["killed"].as_array().unwrap();
    assert_eq!(killed.len(), 1);
    assert_eq!(killed[0]["service"], "echo");
    assert_eq!(killed[0]["node"], "n1");
    let started = tokio::time::Instant::now();
    loop {
        let (_, _, body) = send(app.router(), get("/admin/cluster")).await;
        let echo = body["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "echo")
            .cloned()
            .unwrap();
        if echo["members"][0]["count"] == 2 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "echo did not come back: {echo}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (_, _, metrics) = send_text(app.router(), get("/metrics")).await;
    assert!(
        metrics.contains("troupe_member_restart_seconds_count{service=\"echo\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn metrics_show_this_runtimes_group_commits_only() {
    let app = app(true).await;
    let written = || async {
        let text = send_text(app.router(), get("/metrics")).await.2;
        text.lines()
            .find_map(|l| {
                l.strip_prefix("troupe_store_commit_writes_sum ")?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no commit series: {text}"))
    };
    // Other tests of this process write to stores of their own meanwhile: none of their
    // writes may show here.
    let before: f64 = written().await;
    for i in 0..3 {
        let path = format!("/admin/kv/k{i}");
        let (status, _, body) = send(app.router(), put(&path, "1")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(
        written().await - before,
        3.0,
        "three acknowledged writes, each durable before its answer"
    );
}

async fn send_text(
    app: Router,
    request: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, headers, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn bad_admin_requests_get_clear_4xx() {
    let app = app(false).await;
    let cases: &[(&str, &str, StatusCode, &str, &str)] = &[
        (
            "/admin/chaos/kill",
            r#"{"service": "nope"}"#,
            StatusCode::NOT_FOUND,
            "not_found",
            "nope",
        ),
        (
            "/admin/chaos/kill",
            r#"{"service": "echo", "node": "n9"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "node",
        ),
        (
            "/admin/chaos/kill",
            r#"{"service": "echo", "nod": "n1"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "nod",
        ),
        (
            "/admin/chaos/kill",
            r#"{"service": 5}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "service",
        ),
        (
            "/admin/chaos/kill",
            r#"{"service": "echo""#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "malformed JSON",
        ),
        (
            "/admin/chaos/kill",
            r#"{"service": "echo", "shard": 1}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "shard",
        ),
        (
            "/admin/bench",
            r#"{"target_node": "n1", "mode": "call", "payload_bytes": 16, "duration_ms": 10, "in_flight": 0}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "in_flight",
        ),
        (
            "/admin/bench",
            r#"{"target_node": "n1", "mode": "fast", "payload_bytes": 16, "duration_ms": 10, "in_flight": 1}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "mode",
        ),
        (
            "/admin/bench",
            r#"{"target_node": "n1", "mode": "call", "payload_bytes": 99999999, "duration_ms": 10, "in_flight": 1}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "payload_bytes",
        ),
        (
            "/admin/echo",
            r#"{"timeout_ms": 0}"#,
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "timeout_ms",
        ),
    ];
    for (path, body, status, code, mentions) in cases {
        let (got, headers, response) = send(app.router(), post(path, body)).await;
        assert_eq!(got, *status, "{path} {body}: {response}");
        assert_error_shape(&response, code, &headers);
        let message = response["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(mentions),
            "{path} {body}: {message:?} should mention {mentions:?}"
        );
    }
    // No content type.
    let request = Request::post("/admin/echo").body(Body::from("{}")).unwrap();
    let (status, headers, body) = send(app.router(), request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_error_shape(&body, "unsupported_media_type", &headers);
}

#[tokio::test]
async fn a_short_bench_reports_numbers() {
    let body = r#"{"target_node": "n1", "mode": "call", "payload_bytes": 16, "duration_ms": 200, "in_flight": 4}"#;
    let (status, _, report) = send(app(true).await.router(), post("/admin/bench", body)).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert!(report["messages"].as_u64().unwrap() > 0, "{report}");
    assert!(report["per_second"].as_f64().unwrap() > 0.0);
    let latency = &report["latency_us"];
    assert!(latency["p50"].as_u64().unwrap() <= latency["p99"].as_u64().unwrap());
    assert!(latency["p99"].as_u64().unwrap() <= latency["max"].as_u64().unwrap());
}

fn put(path: &str, body: &str) -> Request<Body> {
    Request::put(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn kv_stores_versions_and_refuses_what_it_cannot_store() {
    let app = app(true).await;
    let (status, _, body) = send(app.router(), put("/admin/kv/color", r#"{"name": "blue"}"#)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, serde_json::json!({"key": "color", "version": 1}));
    let (_, _, body) = send(app.router(), put("/admin/kv/color", "[1, 2]")).await;
    assert_eq!(body["version"], 2);
    let (status, _, body) = send(app.router(), get("/admin/kv/color")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        serde_json::json!({"key": "color", "value": [1, 2], "version": 2})
    );

    let (status, headers, body) = send(app.router(), get("/admin/kv/nothing-here")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(&body, "not_found", &headers);

    let long = format!("/admin/kv/{}", "k".repeat(257));
    let (status, _, body) = send(app.router(), put(&long, "1")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("key"));

    let (status, _, body) = send(app.router(), put("/admin/kv/x", "{not json")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let request = Request::put("/admin/kv/x").body(Body::from("1")).unwrap();
    let (status, _, _) = send(app.router(), request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Over this app's 1 KiB body limit.
    let big = format!("\"{}\"", "v".repeat(2000));
    let (status, headers, body) = send(app.router(), put("/admin/kv/x", &big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error_shape(&body, "payload_too_large", &headers);

    let (_, _, cluster) = send(app.router(), get("/admin/cluster")).await;
    let kv = cluster["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "kv")
        .cloned()
        .unwrap();
    let shards = kv["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 16);
    assert!(
        shards
            .iter()
            .all(|s| s["node"] == "n1" && s["status"] == "up"),
        "{kv}"
    );
    assert!(
        cluster["nodes"][0]["store_bytes"].as_u64().is_some(),
        "{cluster}"
    );
}

#[tokio::test]
async fn admin_routes_need_an_admins_token_and_health_does_not() {
    let app = app(false).await;
    let with = |auth: Option<String>| {
        let mut request = Request::get("/admin/cluster");
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        request.body(Body::empty()).unwrap()
    };
    let (status, headers, body) = send(app.bare(), with(None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error_shape(&body, "unauthenticated", &headers);
    for junk in ["Bearer", "Bearer ", "Basic abc", "Bearer a.b.c", "bearer x"] {
        let (status, _, body) = send(app.bare(), with(Some(junk.to_string()))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{junk}: {body}");
    }
    // Signed with another key.
    let forged = crate::auth::Tokens::new(
        b"another-token-key-of-32-bytes!!!",
        crate::auth::ISSUER,
        crate::auth::AUDIENCE,
        crate::auth::TOKEN_TTL,
    )
    .issue("mallory", crate::auth::Role::Admin)
    .unwrap();
    let (status, _, _) = send(app.bare(), with(Some(format!("Bearer {forged}")))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A user's token: authenticated, not allowed.
    let (status, headers, body) =
        send(app.bare(), with(Some(bearer(crate::auth::Role::User)))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_error_shape(&body, "forbidden", &headers);
    let (status, _, body) = send(app.bare(), with(Some(bearer(crate::auth::Role::Admin)))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Open routes stay open.
    for path in ["/health/live", "/metrics"] {
        let response = app.bare().oneshot(get(path)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after_and_health_is_never_limited() {
    let app = app_with(false, |c| c.http.rate_limit = Some((1, 2))).await;
    for _ in 0..2 {
        let (status, _, body) = send(app.router(), get("/admin/cluster")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, headers, body) = send(app.router(), get("/admin/cluster")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_error_shape(&body, "rate_limited", &headers);
    assert!(headers.contains_key(header::RETRY_AFTER), "{headers:?}");
    for _ in 0..5 {
        let (status, _, _) = send(app.router(), get("/health/live")).await;
        assert_eq!(status, StatusCode::OK);
    }
}

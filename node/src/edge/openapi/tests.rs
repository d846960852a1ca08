use std::collections::BTreeSet;

use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::super::tests::app;
use super::*;

/// A value for every path parameter: a UUID passes every route's check of its ids and keys.
const PARAM: &str = "00000000-0000-4000-8000-000000000000";
/// The methods the sweep tries on every path (HEAD follows GET in axum; it is not listed).
const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

async fn send(router: &axum::Router, method: &str, path: &str) -> (StatusCode, Value, Vec<u8>) {
    let request = Request::builder()
        .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 8 << 20)
        .await
        .unwrap()
        .to_vec();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json, bytes)
}

async fn served_document(router: &axum::Router) -> Value {
    let (status, document, _) = send(router, "get", DOCUMENT_PATH).await;
    assert_eq!(status, StatusCode::OK, "{document}");
    document
}

/// `template` with every `{param}` replaced by [`PARAM`].
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                PARAM
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The paths the router really has, read from its `Debug` output (axum has no other way to
/// list them): the `"..."` after each `RouteId(n): ` of its path router, before its fallback
/// router. A change in that output leaves this empty, which fails the comparison: it cannot
/// pass by reading nothing.
fn router_paths(router: &axum::Router) -> BTreeSet<String> {
    let text = format!("{router:?}");
    let text = text.split("fallback_router").next().unwrap_or_default();
    let mut paths = BTreeSet::new();
    for piece in text.split("RouteId(").skip(1) {
        let Some((_, rest)) = piece.split_once("): \"") else {
            continue;
        };
        if let Some((path, _)) = rest.split_once('"') {
            paths.insert(path.to_string());
        }
    }
    paths
}

/// (method, path) of every operation of `document`.
fn operations_of(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if METHODS.contains(&method.as_str())
                || ["head", "options", "trace"].contains(&&**method)
            {
                operations.insert((method.clone(), path.clone()));
            }
        }
    }
    operations
}

/// (method, path) that `router` serves: every path it has, tried with every method; served
/// unless the answer is the router's own 405 or "no route" 404. Without a token, so that no
/// guarded handler runs; the open ones that take a body refuse an empty one.
async fn router_operations(router: &axum::Router) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for path in router_paths(router) {
        for method in METHODS {
            let (status, body, _) = send(router, method, &concrete(&path)).await;
            let no_route = status == StatusCode::NOT_FOUND
                && body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("no route"));
            if status != StatusCode::METHOD_NOT_ALLOWED && !no_route {
                operations.insert((method.to_string(), path.clone()));
            }
        }
    }
    operations
}

#[tokio::test]
async fn the_document_lists_exactly_what_the_router_serves() {
    let app = app(true).await;
    let router = app.bare();
    let document = served_document(&router).await;
    let paths = router_paths(&router);
    assert!(paths.contains("/api/v1/users/{id}"), "{paths:?}");
    let served = router_operations(&router).await;
    let documented = operations_of(&document);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not documented: {undocumented:?}; documented but not served: {unserved:?}"
    );
    assert!(served.len() >= 25, "{served:?}");
}

/// The comparison fails on a route added without its documentation, and on an operation
/// documented but not served.
#[tokio::test]
async fn a_route_added_without_documentation_is_noticed() {
    let app = app(true).await;
    let router = app
        .bare()
        .route("/api/v1/secret", axum::routing::delete(|| async { "x" }))
        .route("/health/live", axum::routing::post(|| async { "x" }));
    let document = served_document(&router).await;
    let served = router_operations(&router).await;
    let documented = operations_of(&document);
    let extra: Vec<_> = served.difference(&documented).collect();
    assert_eq!(
        extra,
        [
            &("delete".to_string(), "/api/v1/secret".to_string()),
            &("post".to_string(), "/health/live".to_string())
        ]
    );
    let mut documented = documented;
    documented.insert(("post".into(), "/api/v1/refunds".into()));
    let missing: Vec<_> = documented.difference(&served).collect();
    assert_eq!(
        missing,
        [&("post".to_string(), "/api/v1/refunds".to_string())]
    );
}

/// What is wrong with `document` beyond its parsing: unresolved `$ref`s, path parameters not
/// declared (or declared but not in the path), error responses without the error schema.
fn problems(document: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut refs = Vec::new();
    collect_refs(document, &mut refs);
    for r in refs {
        let resolved = r
            .strip_prefix('#')
            .and_then(|pointer| document.pointer(pointer));
        if resolved.is_none() {
            found.push(format!("$ref {r} does not resolve"));
        }
    }
    for (path, item) in document["paths"].as_object().unwrap() {
        let in_template: BTreeSet<_> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        for (method, operation) in item.as_object().unwrap() {
            let declared: BTreeSet<_> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            if declared != in_template {
                found.push(format!(
                    "{method} {path}: path parameters {declared:?}, template {in_template:?}"
                ));
            }
            let responses = operation["responses"].as_object().unwrap();
            if !responses
                .keys()
                .any(|s| s.starts_with('2') || s.starts_with('3'))
            {
                found.push(format!("{method} {path}: no success response"));
            }
            for (status, response) in responses {
                if !response["headers"]["x-request-id"].is_object() {
                    found.push(format!("{method} {path} {status}: no x-request-id"));
                }
                let is_error = status.starts_with('4') || status.starts_with('5');
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                if is_error && schema != "#/components/schemas/ErrorBody" {
                    found.push(format!("{method} {path} {status}: not the error schema"));
                }
                let retry = ["429", "503"].contains(&status.as_str());
                if retry && !response["headers"]["Retry-After"].is_object() {
                    found.push(format!("{method} {path} {status}: no Retry-After"));
                }
            }
        }
    }
    found
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => refs.push(r.clone()),
                    _ => collect_refs(v, refs),
                }
            }
        }
        Value::Array(values) => values.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

/// Parsed as OpenAPI 3.1 by `oas3`, with every operation's parameters, body and responses
/// resolved through it.
fn assert_valid_openapi(document: &Value) {
    let spec = oas3::from_json(document.to_string()).expect("parses as OpenAPI 3.1");
    let version = spec.validate_version().expect("a supported version");
    assert_eq!((version.major, version.minor), (3, 1));
    let mut operations = 0;
    for (path, method, operation) in spec.operations() {
        operation
            .parameters(&spec)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        operation
            .request_body(&spec)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert!(!operation.responses(&spec).is_empty(), "{method} {path}");
        operations += 1;
    }
    assert!(operations > 0);
    let problems = problems(document);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_holds_together() {
    let app = app(true).await;
    let document = served_document(&app.bare()).await;
    assert_valid_openapi(&document);
    // What API.md asks of it.
    let scheme = &document["components"]["securitySchemes"][BEARER];
    assert_eq!(
        (&scheme["scheme"], &scheme["bearerFormat"]),
        (&json!("bearer"), &json!("JWT"))
    );
    let login = &document["paths"]["/api/v1/auth/login"]["post"];
    assert!(login["security"].is_null(), "login is open: {login}");
    let deposit = &document["paths"]["/api/v1/users/{id}/wallet/deposits"]["post"];
    assert_eq!(deposit["security"], json!([{BEARER: []}]));
    for status in [
        "400", "401", "403", "404", "413", "415", "422", "429", "503",
    ] {
        assert!(
            deposit["responses"][status].is_object(),
            "{status}: {deposit}"
        );
    }
    let live = &document["paths"]["/health/live"]["get"];
    assert!(
        live["responses"]["429"].is_null(),
        "health is never limited"
    );
}

/// The order operations say what a client must know: the idempotency header, and that an
/// unknown product is a 404 with no order created; the product list and creation share a path.
#[tokio::test]
async fn the_order_operations_document_idempotency_and_unknown_products() {
    let app = app(true).await;
    let document = served_document(&app.bare()).await;
    let create = &document["paths"]["/api/v1/orders"]["post"];
    let key = create["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Idempotency-Key")
        .unwrap();
    assert_eq!(key["in"], "header");
    let unknown = create["responses"]["404"]["description"].as_str().unwrap();
    assert!(unknown.contains("not created"), "{unknown}");
    assert!(create["responses"]["202"].is_object());
    let products = document["paths"]["/api/v1/products"].as_object().unwrap();
    assert!(products.contains_key("get") && products.contains_key("post"));
}

/// The property names of schema `name`.
fn fields(document: &Value, name: &str) -> BTreeSet<String> {
    document["components"]["schemas"][name]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no schema {name}"))
        .keys()
        .cloned()
        .collect()
}

/// The keys of `value` serialized.
fn keys(value: impl serde::Serialize) -> BTreeSet<String> {
    serde_json::to_value(value)
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// The mirrored runtime types serialize with exactly the fields their schemas list.
#[tokio::test]
async fn the_mirrored_schemas_match_the_runtime_types() {
    use troupe_runtime::bench::{BenchMode, BenchReport, BenchService, Percentiles};
    let app = app(true).await;
    let document = served_document(&app.bare()).await;
    let node_count = troupe_runtime::registry::NodeCount {
        node: "n1".into(),
        count: 1,
    };
    assert_eq!(keys(node_count), fields(&document, "NodeCount"));
    let killed = troupe_runtime::KilledMember {
        service: "echo".into(),
        node: "n1".into(),
        index: 0,
        pid: 1,
    };
    assert_eq!(keys(killed), fields(&document, "KilledMember"));
    let percentiles = Percentiles::default();
    assert_eq!(keys(percentiles), fields(&document, "Percentiles"));
    let report = BenchReport {
        messages: 1,
        seconds: 1.0,
        per_second: 1.0,
        latency_us: percentiles,
    };
    assert_eq!(keys(report), fields(&document, "BenchReport"));
    let stats = troupe_runtime::events::Stats::default();
    assert_eq!(keys(stats), fields(&document, "EventStats"));
    let enums = [
        (
            "NodeStatus",
            [
                json!(troupe_runtime::NodeStatus::Up),
                json!(troupe_runtime::NodeStatus::Suspect),
                json!(troupe_runtime::NodeStatus::Down),
            ]
            .to_vec(),
        ),
        (
            "BenchMode",
            vec![json!(BenchMode::Cast), json!(BenchMode::Call)],
        ),
        (
            "BenchService",
            vec![
                json!(BenchService::Echo),
                json!(BenchService::Kv),
                json!(BenchService::Probe),
            ],
        ),
    ];
    for (name, values) in enums {
        assert_eq!(
            document["components"]["schemas"][name]["enum"],
            Value::Array(values),
            "{name}"
        );
    }
    // The error codes are the edge's.
    let codes: BTreeSet<_> = (400..=599)
        .filter_map(|s| StatusCode::from_u16(s).ok())
        .map(|s| super::super::error::code_for(s).to_string())
        .collect();
    let listed: BTreeSet<_> = document["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(codes, listed);
    // And the health answers, built with `json!`, have the documented fields.
    let (_, live, _) = send(&app.bare(), "get", "/health/live").await;
    assert_eq!(keys(live), fields(&document, "Health"));
}

/// Every `src` and `href` of `html` that is not an anchor.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for piece in html.split(attribute).skip(1) {
            if let Some((target, _)) = piece.split_once('"') {
                found.push(target.to_string());
            }
        }
    }
    found
}

#[tokio::test]
async fn the_docs_are_served_by_the_node_itself() {
    let app = app(true).await;
    let router = app.bare();
    let request = Request::get("/docs").body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert!(response.status().is_redirection(), "{}", response.status());
    assert_eq!(response.headers()[header::LOCATION], "/docs/");
    let (status, _, page) = send(&router, "get", "/docs/").await;
    assert_eq!(status, StatusCode::OK);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("swagger-ui"), "{page}");
    let references = references(&page);
    assert!(references.len() >= 4, "{references:?}");
    for reference in references {
        assert!(
            !reference.contains("//"),
            "{reference}: everything comes from this node"
        );
        let path = format!("/docs/{}", reference.trim_start_matches("./"));
        let (status, _, body) = send(&router, "get", &path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!body.is_empty(), "{path}");
    }
    let (_, _, initializer) = send(&router, "get", "/docs/swagger-initializer.js").await;
    let initializer = String::from_utf8(initializer).unwrap();
    assert!(initializer.contains(DOCUMENT_PATH), "{initializer}");
    assert!(
        initializer.contains("\"validatorUrl\": \"none\""),
        "{initializer}"
    );
    let (status, body, _) = send(&router, "get", "/docs/nope.js").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );
}

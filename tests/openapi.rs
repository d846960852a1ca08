//! `/openapi.json` and `/docs` on a real node: the document parses as OpenAPI 3.1, every
//! operation it lists is served, every status the node answers is one the document lists for
//! that operation, and the Swagger UI loads entirely from the node (no CDN).

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use serde_json::Value;
use tokio::time::Duration;
use troupe_node::auth::Role;

use support::{TestCluster, config_text_with, token};

/// Every service the edge's routes call, so that each answers from its handler (a route whose
/// service is not configured answers 404: see the test below).
const SERVICES: &str = "[services.users]\nshards = 2\n\n[services.user-emails]\nshards = 2\n\n\
                        [services.wallets]\nshards = 2\n\n[services.products]\nshards = 2\n\n\
                        [services.product-skus]\nshards = 2\n\n[services.probe]\nshards = 2\n\n\
                        [services.probe-tally]\nshards = 2\n\n[services.orders]\nshards = 2\n\n\
                        [services.order-views]\nshards = 2\n\n[services.notifications]\nshards = 2\n";

/// A value for every path parameter (a UUID passes every id and key check).
const PARAM: &str = "00000000-0000-4000-8000-000000000000";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { PARAM } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served_and_answers_only_documented_statuses() {
    let mut cluster = TestCluster::new(1);
    std::fs::write(&cluster.config, config_text_with(&cluster.nodes, SERVICES)).unwrap();
    cluster.start_formed().await;
    let node = cluster.node("n1");
    let response = client()
        .get(node.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "open, like /health");
    let text = response.text().await.unwrap();
    let spec = oas3::from_json(&text).unwrap();
    assert_eq!(spec.validate_version().unwrap().minor, 1);
    let document: Value = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    let mut validated = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let documented = operation["responses"].as_object().unwrap();
            // Without a token (guards answer), then as an admin (handlers answer, with no body).
            for role in [None, Some(Role::Admin)] {
                let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let mut request = client().request(method.clone(), node.url(&concrete(path)));
                if let Some(role) = role {
                    request = request.bearer_auth(token(role));
                }
                let response = request.send().await.unwrap();
                let status = response.status();
                assert!(
                    response.headers().contains_key("x-request-id"),
                    "{method} {path}"
                );
                let body = response.text().await.unwrap();
                assert!(
                    documented.contains_key(status.as_str()),
                    "{method} {path} ({role:?}) answered {status}, not documented: {body}\n{}",
                    cluster.log("n1")
                );
                let schema = &documented[status.as_str()]["content"]["application/json"]["schema"];
                if !schema.is_null() {
                    let value: Value = serde_json::from_str(&body).unwrap();
                    if let Err(e) = conforms(&value, schema, &document) {
                        panic!("{method} {path} {status}: {e}: {body}");
                    }
                    validated += 1;
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 50, "{checked}");
    assert!(validated >= 40, "{validated}");
}

/// `schema` with its `$ref` followed.
fn resolve<'a>(schema: &'a Value, document: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => resolve(document.pointer(&r[1..]).unwrap(), document),
        None => schema,
    }
}

/// The properties and required names of an object schema, `allOf` parts merged.
fn object_parts<'a>(
    schema: &'a Value,
    document: &'a Value,
    properties: &mut serde_json::Map<String, Value>,
    required: &mut Vec<String>,
) {
    let schema = resolve(schema, document);
    for part in schema["allOf"].as_array().into_iter().flatten() {
        object_parts(part, document, properties, required);
    }
    if let Some(own) = schema["properties"].as_object() {
        properties.extend(own.clone());
    }
    for name in schema["required"].as_array().into_iter().flatten() {
        required.push(name.as_str().unwrap().to_string());
    }
}

/// Whether `value` has the shape `schema` documents: types, required fields, no undocumented
/// field (a JSON-schema subset: what utoipa writes).
fn conforms(value: &Value, schema: &Value, document: &Value) -> Result<(), String> {
    let schema = resolve(schema, document);
    if let Some(options) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        return options
            .iter()
            .find_map(|o| conforms(value, o, document).ok())
            .ok_or_else(|| format!("{value} matches none of {schema}"));
    }
    if let Some(values) = schema["enum"].as_array()
        && !values.contains(value)
    {
        return Err(format!("{value} is not one of {values:?}"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let fits = |t: &str| match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => true,
    };
    if !types.is_empty() && !types.iter().any(|t| fits(t)) {
        return Err(format!("{value} is not of type {types:?}"));
    }
    match value {
        Value::Object(map) if schema["additionalProperties"].is_null() => {
            let mut properties = serde_json::Map::new();
            let mut required = Vec::new();
            object_parts(schema, document, &mut properties, &mut required);
            if properties.is_empty() {
                return Ok(()); // any object
            }
            for name in &required {
                if !map.contains_key(name) {
                    return Err(format!("no field {name}"));
                }
            }
            for (key, v) in map {
                let field = properties
                    .get(key)
                    .ok_or_else(|| format!("field {key} is not documented"))?;
                conforms(v, field, document).map_err(|e| format!("{key}: {e}"))?;
            }
            Ok(())
        }
        Value::Array(items) if !schema["items"].is_null() => items
            .iter()
            .try_for_each(|item| conforms(item, &schema["items"], document)),
        _ => Ok(()),
    }
}

/// A route whose service the cluster does not run is a 404 saying so (it was a 500: "bad
/// message: service probe is not sharded").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_whose_service_is_not_configured_is_a_404_not_a_500() {
    let mut cluster = TestCluster::new(1);
    cluster.start_formed().await;
    let node = cluster.node("n1");
    let id = "00000000-0000-4000-8000-000000000000";
    for path in [
        format!("/api/v1/orders/{id}"),
        format!("/api/v1/users/{id}/notifications"),
        format!("/api/v1/products/{id}"),
        "/admin/probe/k".to_string(),
    ] {
        let response = client()
            .get(node.url(&path))
            .bearer_auth(token(Role::Admin))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("not configured"), "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_swagger_ui_loads_entirely_from_the_node() {
    let mut cluster = TestCluster::new(1);
    cluster.start_all();
    let node = cluster.node("n1");
    let client = client();
    support::wait_until("the node to answer", Duration::from_secs(30), || async {
        client.get(node.url("/health/live")).send().await.is_ok()
    })
    .await;
    let redirect = client.get(node.url("/docs")).send().await.unwrap();
    assert!(redirect.status().is_redirection(), "{}", redirect.status());
    assert_eq!(redirect.headers()["location"], "/docs/");
    let page = client.get(node.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    let mut references = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for piece in html.split(attribute).skip(1) {
            references.push(piece.split('"').next().unwrap().to_string());
        }
    }
    assert!(references.len() >= 4, "{html}");
    for reference in references {
        assert!(!reference.contains("//"), "{reference} is not the node's");
        let url = node.url(&format!("/docs/{}", reference.trim_start_matches("./")));
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{url}");
    }
    let initializer = client
        .get(node.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("/openapi.json"), "{initializer}");
}

/// The shape check itself refuses what it should.
#[test]
fn the_shape_check_refuses_undocumented_missing_and_mistyped_fields() {
    let document = serde_json::json!({"components": {"schemas": {
        "Detail": {"type": "object", "required": ["code"], "properties": {
            "code": {"type": "string", "enum": ["a", "b"]},
            "request_id": {"type": ["string", "null"]}}},
        "Body": {"type": "object", "required": ["error"], "properties": {
            "error": {"$ref": "#/components/schemas/Detail"}}}}}});
    let schema = serde_json::json!({"$ref": "#/components/schemas/Body"});
    let check = |v: Value| conforms(&v, &schema, &document);
    check(serde_json::json!({"error": {"code": "a", "request_id": null}})).unwrap();
    check(serde_json::json!({"error": {"code": "a", "request_id": "x"}})).unwrap();
    for wrong in [
        serde_json::json!({"error": {"code": "a", "extra": 1}}),
        serde_json::json!({"error": {"code": "c"}}),
        serde_json::json!({"error": {"request_id": "x"}}),
        serde_json::json!({"error": {"code": "a", "request_id": 5}}),
        serde_json::json!({"error": []}),
    ] {
        assert!(check(wrong.clone()).is_err(), "{wrong}");
    }
}

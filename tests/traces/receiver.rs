//! A tiny OTLP/HTTP receiver for the traces test: records the spans of every JSON
//! `POST /v1/traces` on 127.0.0.1.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use serde_json::{Value, json};

/// One span as the receiver got it.
#[derive(Debug, Clone)]
pub(crate) struct Got {
    pub(crate) node: String,
    pub(crate) trace: String,
    pub(crate) span: String,
    pub(crate) parent: String,
    pub(crate) name: String,
    pub(crate) start: u128,
    pub(crate) attributes: HashMap<String, String>,
}

/// The spans posted to the receiver so far.
#[derive(Clone, Default)]
pub(crate) struct Received(Arc<Mutex<Vec<Got>>>);

impl Received {
    pub(crate) fn all(&self) -> Vec<Got> {
        self.0.lock().unwrap().clone()
    }

    pub(crate) fn trace(&self, trace: &str) -> Vec<Got> {
        self.all()
            .into_iter()
            .filter(|s| s.trace == trace)
            .collect()
    }
}

/// An OTLP/JSON scalar: a string, or a number (some encoders write 64-bit numbers as either).
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// An OTLP attribute's value as text (`{"stringValue": "x"}`, `{"intValue": "3"}`...).
fn attribute_value(value: &Value) -> String {
    value
        .as_object()
        .and_then(|o| o.values().next())
        .map(text)
        .unwrap_or_default()
}

fn attributes(list: &Value) -> HashMap<String, String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|kv| (text(&kv["key"]), attribute_value(&kv["value"])))
        .collect()
}

/// Decodes one OTLP/JSON `ExportTraceServiceRequest`.
fn decode(body: &Value) -> Vec<Got> {
    let mut spans = Vec::new();
    for resource in body["resourceSpans"].as_array().into_iter().flatten() {
        let resource_attributes = attributes(&resource["resource"]["attributes"]);
        assert_eq!(
            resource_attributes.get("service.name").map(String::as_str),
            Some("troupe"),
            "{resource_attributes:?}"
        );
        let node = resource_attributes
            .get("service.instance.id")
            .cloned()
            .unwrap_or_default();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                spans.push(Got {
                    node: node.clone(),
                    trace: text(&span["traceId"]),
                    span: text(&span["spanId"]),
                    parent: text(&span["parentSpanId"]),
                    name: text(&span["name"]),
                    start: text(&span["startTimeUnixNano"]).parse().unwrap_or(0),
                    attributes: attributes(&span["attributes"]),
                });
            }
        }
    }
    spans
}

/// Starts a receiver of `POST /v1/traces` on 127.0.0.1; its base URL and what it received.
pub(crate) async fn receiver() -> (String, Received) {
    let received = Received::default();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            post(|State(received): State<Received>, body: Bytes| async move {
                let value: Value = serde_json::from_slice(&body).expect("an OTLP/JSON body");
                received.0.lock().unwrap().extend(decode(&value));
                axum::Json(json!({}))
            }),
        )
        .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

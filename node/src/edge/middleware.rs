//! The edge middleware every request goes through: a request id (echoed if the client sent a
//! sane one, else a new UUID), one tracing span per request, its trace context (the client's
//! `traceparent` continued if valid, else a new trace; returned in the response's
//! `traceparent`) and its exported span, an access log line, and the reshaping of any
//! non-JSON error response into the JSON error shape.

use axum::body::to_bytes;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;
use tracing::Instrument;
use troupe_runtime::telemetry;

use super::error::{ApiError, REQUEST_ID};

pub(crate) mod trace;

/// The request id header.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest error text kept when a plain error body is reshaped.
const MAX_REASON_BYTES: usize = 1024;

/// A client's request id is echoed only if it is short printable ASCII; otherwise it could
/// break log lines or headers, and a fresh one is used instead.
fn client_request_id(request: &Request) -> Option<String> {
    let id = request.headers().get(&X_REQUEST_ID)?.to_str().ok()?;
    let sane = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
    sane.then(|| id.to_string())
}

/// The edge middleware; see the module docs.
pub async fn edge(request: Request, next: Next) -> Response {
    let request_id =
        client_request_id(&request).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let path = route
        .clone()
        .unwrap_or_else(|| request.uri().path().to_string());
    let method = request.method().clone();
    let span =
        tracing::info_span!("request", request_id = %request_id, method = %method, path = %path);
    let started = Instant::now();
    let (context, mut trace_span) = trace::begin(&request, &method, route.as_deref(), &path);
    let mut request = request;
    let user = trace_span.is_recording().then(|| {
        let user = trace::SpanUser::default();
        request.extensions_mut().insert(user.clone());
        user
    });

    let served = telemetry::scope(context, async {
        let response = REQUEST_ID
            .scope(request_id.clone(), async {
                let response = match super::head::check(&request) {
                    Ok(()) => next.run(request).await,
                    Err(refused) => refused.into_response(),
                };
                reshape_error(response, &method, &path).await
            })
            .instrument(span.clone())
            .await;

        let status = response.status().as_u16();
        let elapsed = started.elapsed();
        count(&method, route, status, elapsed.as_secs_f64());
        let elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let _enter = span.enter();
        if path.starts_with("/health/") {
            tracing::debug!(status, elapsed_us, "served");
        } else {
            tracing::info!(status, elapsed_us, "served");
        }
        drop(_enter);
        response
    });
    let mut response = served.await;
    trace::end(&mut trace_span, response.status().as_u16(), user);
    drop(trace_span);

    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    if let Ok(value) = HeaderValue::from_str(&context.to_traceparent()) {
        response
            .headers_mut()
            .insert(trace::TRACEPARENT.clone(), value);
    }
    response
}

/// Counts a served request in the node's metrics: by method, route template (never the raw
/// path, whose ids would make a series per resource) and status.
fn count(method: &axum::http::Method, route: Option<String>, status: u16, seconds: f64) {
    use crate::metrics::{HTTP_REQUEST_SECONDS, HTTP_REQUESTS};
    // A method outside the standard ones is one label value, not one per client's invention.
    let method = match *method {
        axum::http::Method::GET
        | axum::http::Method::POST
        | axum::http::Method::PUT
        | axum::http::Method::DELETE
        | axum::http::Method::PATCH
        | axum::http::Method::HEAD
        | axum::http::Method::OPTIONS => method.as_str().to_string(),
        _ => "other".to_string(),
    };
    let route = route.unwrap_or_else(|| "unmatched".to_string());
    let labels = [
        ("method", method),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_REQUEST_SECONDS, &labels).record(seconds);
}

/// Turns an error response that is not JSON into the JSON error shape, keeping its status and
/// using its text (if any) as the message.
async fn reshape_error(response: Response, method: &axum::http::Method, path: &str) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = to_bytes(body, MAX_REASON_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = match status.as_u16() {
        404 => format!("no route {method} {path}"),
        405 => format!("{path} does not accept {method}"),
        413 => "the request body is over the size limit".to_string(),
        408 | 503 if text.is_empty() || text.contains("timed out") => {
            "the request did not finish within its deadline".to_string()
        }
        _ if !text.is_empty() => text,
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase(),
    };
    let mut reshaped = ApiError::from_status(status, message).into_response();
    // Keep headers such as Allow (405) from the original response.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            reshaped.headers_mut().entry(name).or_insert(value.clone());
        }
    }
    reshaped
}

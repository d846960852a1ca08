//! The trace context and exported span of one HTTP request.
//!
//! A valid incoming `traceparent` is continued (the request's span is its child); a missing or
//! malformed one is ignored and a new trace starts: never a 4xx, since tracing is the
//! client's convenience, not part of the request. The response's `traceparent` names the
//! request's span.

use std::sync::{Arc, Mutex};

use axum::extract::Request;
use axum::http::{HeaderName, Method};
use troupe_runtime::telemetry::{KeyValue, Kind, Span, TraceContext};

/// The W3C trace context header.
pub(crate) static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Where the auth check leaves the authenticated user's id for the request's span (put in the
/// request's extensions only while spans are recorded). A std mutex: set once, read once.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpanUser(Arc<Mutex<Option<String>>>);

impl SpanUser {
    /// Records the authenticated caller.
    pub(crate) fn set(&self, user: &str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(user.to_string());
    }

    fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The request's trace context and its span (a root, or the child of the client's span).
pub(crate) fn begin(
    request: &Request,
    method: &Method,
    route: Option<&str>,
    path: &str,
) -> (TraceContext, Span) {
    let incoming = request
        .headers()
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(TraceContext::from_traceparent);
    let (context, parent) = match incoming {
        Some(parent) => (parent.child(), Some(parent.span_id)),
        None => (TraceContext::new_root(), None),
    };
    let span = Span::start(context, parent, Kind::Server, || {
        let route = route.unwrap_or("unmatched");
        let mut attributes = vec![
            KeyValue::new("http.request.method", method.as_str().to_string()),
            KeyValue::new("http.route", route.to_string()),
            KeyValue::new("url.path", path.to_string()),
        ];
        if let Some(node) = troupe_runtime::telemetry::export::node() {
            attributes.push(KeyValue::new("troupe.node", node.to_string()));
        }
        (format!("HTTP {method} {route}").into(), attributes)
    });
    (context, span)
}

/// Ends the request's span with its status and, if known, the user.
pub(crate) fn end(span: &mut Span, status: u16, user: Option<SpanUser>) {
    if !span.is_recording() {
        return;
    }
    span.set("http.response.status_code", i64::from(status));
    if let Some(user) = user.and_then(|u| u.take()) {
        span.set("enduser.id", user);
    }
    if status >= 500 {
        span.fail(format!("status {status}"));
    }
}

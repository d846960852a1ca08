//! The one JSON error shape of the edge (`API.md`), and the request id it carries.
//!
//! ```json
//! {"error": {"code": "not_found", "message": "no route GET /nope", "request_id": "..."}}
//! ```
//!
//! Handlers return [`ApiError`]. Errors produced outside handlers (axum's 405, the body limit's
//! 413, the timeout's 503) are reshaped into the same form by the edge middleware
//! ([`super::middleware`]), so that no client ever sees a plain-text error.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::time::Duration;

tokio::task_local! {
    /// The id of the request being served, set by the edge middleware for the request's task.
    pub(crate) static REQUEST_ID: String;
}

/// The id of the request this task is serving, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Seconds a client is told to wait before retrying a 503.
pub const RETRY_AFTER_SECS: u32 = 1;

/// An error a client sees.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed; the message names the field.
    #[error("{0}")]
    InvalidRequest(String),
    /// 401: no valid bearer token (missing, malformed, badly signed, expired...).
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: authenticated, but not allowed this.
    #[error("{0}")]
    Forbidden(String),
    /// 422: well-formed but impossible.
    #[error("{0}")]
    Unprocessable(String),
    /// 404: no such resource or route.
    #[error("{0}")]
    NotFound(String),
    /// 405: the route exists, not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: in conflict with the state of the resource (a benchmark already running).
    #[error("{0}")]
    Conflict(String),
    /// 413: the body is over the limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 414: the URI is over the edge's limit.
    #[error("{0}")]
    UriTooLong(String),
    /// 431: the header fields are too many or too large.
    #[error("{0}")]
    HeadersTooLarge(String),
    /// 415: the body is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 429: over a rate limit; the client may retry after `retry_after` (`Retry-After`, in
    /// whole seconds, at least 1).
    #[error("{message}")]
    RateLimited {
        /// What limit, and whose.
        message: String,
        /// When to try again.
        retry_after: Duration,
    },
    /// 503: not available now, and nothing was done; the client may retry after `Retry-After`.
    #[error("{0}")]
    Unavailable(String),
    /// 504: the request reached the service but no answer came in time: it may or may not
    /// have been applied. The client should look before it repeats a write.
    #[error("{0}")]
    OutcomeUnknown(String),
    /// 500: a bug. The message is logged, never sent.
    #[error("{0}")]
    Internal(String),
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
    request_id: Option<String>,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong(_) => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::OutcomeUnknown(_) => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code of the JSON body.
    pub fn code(&self) -> &'static str {
        code_for(self.status())
    }

    /// The error that stands for a bare status produced outside a handler.
    pub fn from_status(status: StatusCode, message: String) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::NotFound(message),
            StatusCode::UNAUTHORIZED => Self::Unauthenticated(message),
            StatusCode::FORBIDDEN => Self::Forbidden(message),
            StatusCode::UNPROCESSABLE_ENTITY => Self::Unprocessable(message),
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed(message),
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge(message),
            StatusCode::URI_TOO_LONG => Self::UriTooLong(message),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Self::HeadersTooLarge(message),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType(message),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => {
                Self::Unavailable(message)
            }
            s if s.is_client_error() => Self::InvalidRequest(message),
            _ => Self::Internal(message),
        }
    }
}

/// The code of the JSON error body for `status`.
pub(crate) fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "invalid_request",
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::GATEWAY_TIMEOUT => "outcome_unknown",
        s if s.is_client_error() => "invalid_request",
        _ => "internal",
    }
}

impl From<troupe_runtime::CallError> for ApiError {
    /// A failure that applied nothing is temporary (503, retry); one after the request reached
    /// the service may have applied it (504, outcome unknown); a service this cluster does not
    /// run is a 404; a message that does not encode or decode is a bug (500).
    fn from(e: troupe_runtime::CallError) -> Self {
        if let troupe_runtime::CallError::UnknownService(service) = &e {
            // A route whose service this cluster does not run: nothing to find here.
            return Self::NotFound(format!(
                "service {service} is not configured in this cluster"
            ));
        }
        match e.kind() {
            troupe_runtime::ErrorKind::Unavailable => Self::Unavailable(e.to_string()),
            troupe_runtime::ErrorKind::OutcomeUnknown => Self::OutcomeUnknown(format!(
                "{e}: the request may or may not have been applied; read before repeating it"
            )),
            _ => Self::Internal(e.to_string()),
        }
    }
}

impl ApiError {
    /// The error for a failed call that changes nothing (a read, an echo): when no answer
    /// came, repeating it is safe, so the client is told to retry (503) rather than that the
    /// outcome is unknown.
    pub fn from_idempotent(e: troupe_runtime::CallError) -> Self {
        match e.kind() {
            troupe_runtime::ErrorKind::OutcomeUnknown => Self::Unavailable(e.to_string()),
            _ => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "internal error"
            }
            other => {
                tracing::debug!(error = %other, status = status.as_u16(), "request refused");
                match other {
                    Self::InvalidRequest(m)
                    | Self::Unauthenticated(m)
                    | Self::Forbidden(m)
                    | Self::Unprocessable(m)
                    | Self::NotFound(m)
                    | Self::MethodNotAllowed(m)
                    | Self::Conflict(m)
                    | Self::RateLimited { message: m, .. }
                    | Self::PayloadTooLarge(m)
                    | Self::UriTooLong(m)
                    | Self::HeadersTooLarge(m)
                    | Self::UnsupportedMediaType(m)
                    | Self::Unavailable(m)
                    | Self::OutcomeUnknown(m)
                    | Self::Internal(m) => m.as_str(),
                }
            }
        };
        let body = Body {
            error: Detail {
                code: code_for(status),
                message,
                request_id: current_request_id(),
            },
        };
        let retry_after_secs = match &self {
            Self::RateLimited { retry_after, .. } => {
                Some(retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0))
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(u64::from(RETRY_AFTER_SECS)),
            _ => None,
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(secs) = retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

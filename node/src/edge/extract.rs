//! A JSON body extractor whose failures are [`ApiError`]s in the one error shape, naming the
//! field when serde can.

use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// `axum::Json` for the API's bodies, which are all JSON objects, with errors in the edge's
/// shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge("the request body is over the size limit".into())
                } else {
                    ApiError::InvalidRequest(format!(
                        "the body could not be read: {}",
                        e.body_text()
                    ))
                }
            })?;
        let req = Request::from_parts(parts, Body::from(bytes.clone()));
        match axum::Json::<T>::from_request(req, state).await {
            // serde would also take an array of the fields' values, in order, for a struct:
            // every body of the API is an object.
            Ok(_) if bytes.trim_ascii_start().first() != Some(&b'{') => Err(
                ApiError::InvalidRequest("body: must be a JSON object".into()),
            ),
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(rejected(rejection)),
        }
    }
}

fn rejected(rejection: JsonRejection) -> ApiError {
    let text = rejection.body_text();
    let detail = text
        .split_once(": ")
        .map_or(text.as_str(), |(_, rest)| rest)
        .to_string();
    match rejection {
        JsonRejection::JsonDataError(_) => ApiError::InvalidRequest(detail),
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::InvalidRequest(format!("malformed JSON: {detail}"))
        }
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "expected a body with Content-Type: application/json".into(),
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge("the request body is over the size limit".into())
        }
        other => ApiError::InvalidRequest(other.body_text()),
    }
}

/// A key from a path, checked to be 1 to `max` bytes (400 naming `key` otherwise).
pub(crate) fn key_within(key: &str, max: usize) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > max {
        return Err(ApiError::InvalidRequest(format!(
            "key: 1 to {max} bytes, got {}",
            key.len()
        )));
    }
    Ok(())
}

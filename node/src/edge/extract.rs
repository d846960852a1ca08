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
            Err(rejection @ JsonRejection::MissingJsonContentType(_)) => Err(rejected(rejection)),
            // Every body of the API is an object. serde would take an array of the fields'
            // values, in order, for a struct, and would explain anything else in Rust's words.
            _ if bytes.trim_ascii_start().first() != Some(&b'{') => Err(ApiError::InvalidRequest(
                "body: must be a JSON object".into(),
            )),
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
        JsonRejection::JsonDataError(_) => ApiError::InvalidRequest(in_json_words(&detail)),
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

/// serde's explanation with Rust's type names said as JSON's: `expected i64` becomes
/// `expected an integer from ... to ...`, `expected struct Item` becomes `expected an object`.
fn in_json_words(detail: &str) -> String {
    const TYPES: [(&str, &str); 6] = [
        (
            "expected i64",
            "expected an integer from -9223372036854775808 to 9223372036854775807",
        ),
        (
            "expected u64",
            "expected an integer from 0 to 18446744073709551615",
        ),
        (
            "expected i32",
            "expected an integer from -2147483648 to 2147483647",
        ),
        ("expected u32", "expected an integer from 0 to 4294967295"),
        ("expected u16", "expected an integer from 0 to 65535"),
        ("expected f64", "expected a number"),
    ];
    let mut text = TYPES.iter().fold(detail.to_string(), |text, (rust, json)| {
        text.replace(rust, json)
    });
    while let Some(at) = text.find("expected struct ") {
        let name_at = at + "expected struct ".len();
        let end = text[name_at..]
            .find(|c: char| !c.is_alphanumeric() && c != '_')
            .map_or(text.len(), |n| name_at + n);
        text.replace_range(at..end, "expected an object");
    }
    text
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

#[cfg(test)]
mod tests {
    use super::in_json_words;

    #[test]
    fn serde_explanations_name_json_types_not_rust_ones() {
        assert_eq!(
            in_json_words("quantity: invalid type: string \"1\", expected u64 at line 1 column 9"),
            "quantity: invalid type: string \"1\", expected an integer from 0 to \
             18446744073709551615 at line 1 column 9"
        );
        assert_eq!(
            in_json_words("items[0]: invalid type: null, expected struct ItemRequest at line 1"),
            "items[0]: invalid type: null, expected an object at line 1"
        );
        assert_eq!(
            in_json_words("invalid type: map, expected struct Item"),
            "invalid type: map, expected an object"
        );
        assert_eq!(in_json_words("missing field `sku`"), "missing field `sku`");
    }
}

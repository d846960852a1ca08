//! Limits on a request's head (its URI and header fields), refused in the API's JSON error
//! shape before anything else looks at the request: a URI over [`MAX_URI_BYTES`] gets 414,
//! more than [`MAX_HEADERS`] header fields or more than [`MAX_HEADER_BYTES`] of them get 431.
//! The HTTP server's own limits are set above these (`serve/http.rs`), so that it is the
//! edge, not hyper's bare empty answer, that refuses a head of any plausible size.

use axum::extract::Request;

use super::error::ApiError;

/// The longest URI taken, in bytes.
pub(crate) const MAX_URI_BYTES: usize = 8 * 1024;

/// The most header fields taken.
pub(crate) const MAX_HEADERS: usize = 100;

/// The most header bytes taken, names and values (and their `: ` and line end) together.
pub(crate) const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Whether `request`'s head is within the limits; the error the client gets if it is not.
pub(crate) fn check(request: &Request) -> Result<(), ApiError> {
    let uri = request.uri();
    let uri_bytes = uri.path_and_query().map_or(0, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return Err(ApiError::UriTooLong(format!(
            "the URI is {uri_bytes} bytes, over the limit of {MAX_URI_BYTES}"
        )));
    }
    let headers = request.headers();
    if headers.len() > MAX_HEADERS {
        return Err(ApiError::HeadersTooLarge(format!(
            "{} header fields, over the limit of {MAX_HEADERS}",
            headers.len()
        )));
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return Err(ApiError::HeadersTooLarge(format!(
            "the header fields are {header_bytes} bytes, over the limit of {MAX_HEADER_BYTES}"
        )));
    }
    Ok(())
}

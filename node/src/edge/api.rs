//! `/api/v1`: the business API of `API.md`, over the services of `troupe-actors`.
//!
//! Every route but registration and login needs a bearer token ([`super::guard::Caller`]); a
//! user reaches only their own resources, an admin everything. Each domain error becomes a
//! status through its kind ([`domain`]), never through its text.

pub(crate) mod feeds;
pub(crate) mod orders;
pub(crate) mod products;
pub(crate) mod time;
pub(crate) mod users;

use troupe_runtime::entity::{AskError, DomainError, DomainKind};

use super::AppState;
use super::error::ApiError;

/// The routes of `/api/v1`, with their documentation.
pub(crate) fn routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    users::routes()
        .merge(products::routes())
        .merge(orders::routes())
        .merge(feeds::routes())
}

/// A domain error as the client's, by its kind.
pub(crate) fn domain<D: DomainError>(e: &D) -> ApiError {
    let message = e.to_string();
    match e.kind() {
        DomainKind::InvalidInput => ApiError::InvalidRequest(message),
        DomainKind::NotFound => ApiError::NotFound(message),
        DomainKind::Conflict => ApiError::Conflict(message),
        DomainKind::Unprocessable => ApiError::Unprocessable(message),
        DomainKind::Unavailable => ApiError::Unavailable(message),
    }
}

/// A failed ask of a command that changes something: the domain's refusal by its kind, the
/// call's failure as what it says was done.
pub(crate) fn write_failed<D: DomainError>(e: AskError<D>) -> ApiError {
    match e {
        AskError::Domain(d) => domain(&d),
        AskError::Call(e) => e.into(),
        AskError::Store(e) => ApiError::Unavailable(format!("nothing was stored: {e}")),
    }
}

/// A failed ask of a read: as [`write_failed`], but an unknown outcome is only "try again".
pub(crate) fn read_failed<D: DomainError>(e: AskError<D>) -> ApiError {
    match e {
        AskError::Domain(d) => domain(&d),
        AskError::Call(e) => ApiError::from_idempotent(e),
        AskError::Store(e) => ApiError::Unavailable(format!("the read failed: {e}")),
    }
}

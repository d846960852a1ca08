//! Who may use a route: the bearer token of every protected request, checked on this node.
//!
//! `/admin/*` needs an admin's token: 401 without a valid one, 403 for a user's.
//! `/health/*` and `/metrics` stay open.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use super::error::ApiError;
use crate::auth::{Claims, Role};

/// The claims of the request's bearer token, checked.
fn bearer(state: &AppState, parts: &Parts) -> Result<Claims, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthenticated("a bearer token is needed".into()))?;
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        // The scheme is case-insensitive (RFC 7235 2.1): `bearer` is `Bearer`.
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthenticated("the Authorization header is not \"Bearer <token>\"".into())
        })?;
    let claims = state.tokens().check(token).map_err(|e| {
        tracing::debug!(error = %e, "token refused");
        ApiError::Unauthenticated("the token is not valid".into())
    })?;
    if let Some(user) = parts.extensions.get::<super::middleware::trace::SpanUser>() {
        user.set(&claims.sub);
    }
    Ok(claims)
}

/// The authenticated caller of a route: its handler takes this to need a valid token.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) Claims);

impl Caller {
    /// Whether the caller may act on user `id`'s resources: their own, or any as an admin.
    pub(crate) fn may_act_for(&self, id: &str) -> bool {
        self.0.role == Role::Admin || self.0.sub == id
    }

    /// The user the token names; 403 for a token that names none (an operator's).
    pub(crate) fn user_id(&self) -> Result<troupe_actors::ids::Id, ApiError> {
        self.0.sub.parse().map_err(|_| {
            ApiError::Forbidden(format!(
                "the token's subject {:?} is not a user: log in as one",
                self.0.sub
            ))
        })
    }

    /// Ok for an admin; 403 naming `what` for anyone else.
    pub(crate) fn require_admin(&self, what: &str) -> Result<(), ApiError> {
        if self.0.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("{what} is for administrators")))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        bearer(state, parts).map(Caller)
    }
}

/// Middleware of the admin routes: an admin's token or nothing.
pub(crate) async fn admin_only(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    Caller(bearer(&state, &parts)?).require_admin(parts.uri.path())?;
    Ok(next.run(Request::from_parts(parts, body)).await)
}

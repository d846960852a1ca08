//! Registration, login, users and wallets (`API.md`: Auth; Users, wallets).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tokio::time::Duration;
use troupe_actors::ids::{Id, now_ms};
use troupe_actors::payments::{Balance, Deposit, Open, PaymentError, Wallet};
use troupe_actors::users::{self, Create, Credentials, Emails, Get, Profile, Role, User, emails};
use troupe_runtime::entity::AskError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::super::AppState;
use super::super::error::ApiError;
use super::super::extract::Json;
use super::super::guard::Caller;
use super::time::rfc3339;
use super::{domain, read_failed, write_failed};
use crate::auth::password::{self, GateError};

/// The shortest and the longest password, in characters.
const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=128;
/// How long a registration's or login's calls may take each.
const TIMEOUT: Duration = Duration::from_secs(5);
/// What login says for a wrong email and a wrong password alike.
const BAD_LOGIN: &str = "wrong email or password";

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(user))
        .routes(routes!(wallet))
        .routes(routes!(deposit))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Registration {
    email: String,
    name: String,
    password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct UserView {
    id: String,
    email: String,
    name: String,
    created_at: String,
}

impl From<Profile> for UserView {
    fn from(p: Profile) -> Self {
        Self {
            id: p.id.to_string(),
            email: p.email,
            name: p.name,
            created_at: rfc3339(p.created_at_ms),
        }
    }
}

/// A password's length checked, in characters.
fn check_password(password: &str) -> Result<(), ApiError> {
    let chars = password.chars().count();
    if PASSWORD_CHARS.contains(&chars) {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest(format!(
            "password: {} to {} characters, got {chars}",
            PASSWORD_CHARS.start(),
            PASSWORD_CHARS.end()
        )))
    }
}

/// Runs a password hash or check off the runtime's workers.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    state.passwords().run(f).await.map_err(|e| match e {
        GateError::Busy => ApiError::Unavailable(e.to_string()),
        GateError::Failed(_) => ApiError::Internal(e.to_string()),
    })
}

/// `POST /api/v1/users`: reserve the email, create the user, confirm the email (see
/// `troupe_actors::users`).
#[utoipa::path(post, path = "/api/v1/users", tag = "auth", request_body = Registration,
    responses(
        (status = 201, description = "Registered", body = UserView),
        (status = 400, description = "`email` does not look like an address, `name` is not 1 to 100 characters, or `password` not 8 to 128"),
        (status = 409, description = "The email is taken (across the whole cluster)"),
        (status = 503, description = "Too many password hashes under way on this node, or a service unavailable: nothing was done; retry after `Retry-After`"),
        (status = 504, description = "No answer in time: the user may or may not exist")))]
async fn register(
    State(state): State<AppState>,
    Json(request): Json<Registration>,
) -> Result<(StatusCode, axum::Json<UserView>), ApiError> {
    let email = users::normalize_email(&request.email).map_err(|e| domain(&e))?;
    let name = users::normalize_name(&request.name).map_err(|e| domain(&e))?;
    check_password(&request.password)?;
    let password = request.password;
    let hash = blocking(&state, move || password::hash(&password))
        .await?
        .map_err(ApiError::Internal)?;
    let profile = create(&state, email, name, hash, Role::User).await?;
    Ok((StatusCode::CREATED, axum::Json(profile.into())))
}

/// Registers a user with a fresh id; 409 if another user holds the email.
pub(crate) async fn create(
    state: &AppState,
    email: String,
    name: String,
    password_hash: String,
    role: Role,
) -> Result<Profile, ApiError> {
    let runtime = state.runtime();
    let id = Id::new();
    let address = runtime
        .entity::<Emails>(email.clone())
        .with_timeout(TIMEOUT);
    match address.ask(emails::Reserve { user_id: id }).await {
        Ok(()) => {}
        Err(AskError::Domain(taken)) => {
            // Perhaps held by a registration a crash left unfinished: repaired here.
            if !reclaimed(state, &email, id).await? {
                return Err(domain(&taken));
            }
        }
        Err(e) => return Err(write_failed(e)),
    }
    let user = runtime.entity::<User>(id).with_timeout(TIMEOUT);
    let command = Create {
        email: email.clone(),
        name,
        password_hash,
        role,
    };
    let mut outcome = user.ask(command.clone()).await;
    // An unknown outcome: ask again (creating is idempotent), never release the address of a
    // user that may exist.
    for _ in 0..2 {
        match &outcome {
            Err(AskError::Call(e)) if !e.not_applied() => {
                outcome = user.ask(command.clone()).await;
            }
            _ => break,
        }
    }
    match outcome {
        Ok(profile) => {
            address
                .ask(emails::Confirm { user_id: id })
                .await
                .map_err(write_failed)?;
            Ok(profile)
        }
        Err(e @ AskError::Domain(_)) => {
            let _ = address.ask(emails::Release { user_id: id }).await;
            Err(write_failed(e))
        }
        Err(e) => {
            if matches!(&e, AskError::Call(c) if c.not_applied()) {
                let _ = address.ask(emails::Release { user_id: id }).await;
            }
            Err(write_failed(e))
        }
    }
}

/// Whether the address held against `id` was a registration left unfinished long enough ago,
/// now taken over for `id` (false: another user really holds it).
async fn reclaimed(state: &AppState, email: &str, id: Id) -> Result<bool, ApiError> {
    let runtime = state.runtime();
    let address = runtime
        .entity::<Emails>(email.to_string())
        .with_timeout(TIMEOUT);
    let Some(held) = address.ask(emails::Holder).await.map_err(read_failed)? else {
        return Ok(false);
    };
    if !held.is_reclaimable(now_ms()) {
        return Ok(false);
    }
    match runtime
        .entity::<User>(held.user_id)
        .with_timeout(TIMEOUT)
        .ask(Get)
        .await
    {
        // The user exists: its registration only missed its last step.
        Ok(_) => {
            address
                .ask(emails::Confirm {
                    user_id: held.user_id,
                })
                .await
                .map_err(write_failed)?;
            Ok(false)
        }
        Err(AskError::Domain(_)) => {
            address
                .ask(emails::Reclaim {
                    user_id: id,
                    stale_user_id: held.user_id,
                })
                .await
                .map_err(write_failed)?;
            Ok(true)
        }
        Err(e) => Err(read_failed(e)),
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    email: String,
    password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Token {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
}

/// `POST /api/v1/auth/login`: a wrong email and a wrong password get the same 401.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = Login,
    responses(
        (status = 200, description = "A bearer token (JWT)", body = Token),
        (status = 401, description = "Wrong email or password (the same message, and the same work, for both)"),
        (status = 503, description = "Too many password checks under way on this node, or a service unavailable: retry after `Retry-After`")))]
async fn login(
    State(state): State<AppState>,
    Json(request): Json<Login>,
) -> Result<axum::Json<Token>, ApiError> {
    let refused = || ApiError::Unauthenticated(BAD_LOGIN.into());
    let Ok(email) = users::normalize_email(&request.email) else {
        return Err(refused());
    };
    let runtime = state.runtime();
    let password = request.password;
    let Some(id) = runtime
        .entity::<Emails>(email)
        .with_timeout(TIMEOUT)
        .ask(emails::Lookup)
        .await
        .map_err(read_failed)?
    else {
        return refused_after_a_check(&state, password).await;
    };
    let (hash, role) = match runtime
        .entity::<User>(id)
        .with_timeout(TIMEOUT)
        .ask(Credentials)
        .await
    {
        Ok(credentials) => credentials,
        Err(AskError::Domain(_)) => return refused_after_a_check(&state, password).await,
        Err(e) => return Err(read_failed(e)),
    };
    if !blocking(&state, move || password::verify(&password, &hash)).await? {
        return Err(refused());
    }
    let role = match role {
        Role::Admin => crate::auth::Role::Admin,
        Role::User => crate::auth::Role::User,
    };
    let tokens = state.tokens();
    let access_token = tokens
        .issue(&id.to_string(), role)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(axum::Json(Token {
        access_token,
        token_type: "Bearer",
        expires_in: tokens.ttl().as_secs(),
    }))
}

/// The refusal of a login whose user was not found, after the work of checking a password:
/// its time tells nothing about which addresses are registered.
async fn refused_after_a_check(
    state: &AppState,
    password: String,
) -> Result<axum::Json<Token>, ApiError> {
    blocking(state, move || password::verify_nobody(&password)).await?;
    Err(ApiError::Unauthenticated(BAD_LOGIN.into()))
}

/// The user id of a path, which the caller must be (or an admin).
pub(super) fn owned(caller: &Caller, id: &str) -> Result<Id, ApiError> {
    let id: Id = id
        .parse()
        .map_err(|_| ApiError::InvalidRequest(format!("id: {id:?} is not a UUID")))?;
    if !caller.may_act_for(&id.to_string()) {
        return Err(ApiError::Forbidden(format!(
            "user {id} is not yours to see"
        )));
    }
    Ok(id)
}

/// `GET /api/v1/users/{id}`.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "The user id (UUID)")),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 400, description = "`id` is not a UUID"),
        (status = 403, description = "Another user (only an admin may read any)"),
        (status = 404, description = "No such user")))]
async fn user(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<UserView>, ApiError> {
    let id = owned(&caller, &id)?;
    let profile = state
        .runtime()
        .entity::<User>(id)
        .with_timeout(TIMEOUT)
        .ask(Get)
        .await
        .map_err(read_failed)?;
    Ok(axum::Json(profile.into()))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct WalletView {
    user_id: String,
    balance_cents: u64,
}

/// The wallet of user `id`, opened now with the opening balance if the user exists and the
/// event that opens it has not arrived yet (opening is idempotent: the event does nothing
/// then).
async fn balance(state: &AppState, id: Id) -> Result<u64, ApiError> {
    let runtime = state.runtime();
    let wallet = runtime.entity::<Wallet>(id).with_timeout(TIMEOUT);
    match wallet.ask(Balance).await {
        Ok(cents) => Ok(cents),
        Err(AskError::Domain(PaymentError::NotFound(_))) => {
            // Only a user's wallet opens: an unknown user is a 404.
            runtime
                .entity::<User>(id)
                .with_timeout(TIMEOUT)
                .ask(Get)
                .await
                .map_err(read_failed)?;
            wallet
                .ask(Open {
                    opening_balance_cents: crate::bootstrap::opening_balance_cents(),
                })
                .await
                .map_err(write_failed)
        }
        Err(e) => Err(read_failed(e)),
    }
}

/// `GET /api/v1/users/{id}/wallet`.
#[utoipa::path(get, path = "/api/v1/users/{id}/wallet", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "The user id (UUID)")),
    responses(
        (status = 200, description = "The wallet (a new user's opens with the configured balance)", body = WalletView),
        (status = 400, description = "`id` is not a UUID"),
        (status = 403, description = "Another user's wallet"),
        (status = 404, description = "No such user")))]
async fn wallet(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<WalletView>, ApiError> {
    let id = owned(&caller, &id)?;
    let balance_cents = balance(&state, id).await?;
    Ok(axum::Json(WalletView {
        user_id: id.to_string(),
        balance_cents,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DepositRequest {
    amount_cents: i64,
}

/// `POST /api/v1/users/{id}/wallet/deposits` (admin).
#[utoipa::path(post, path = "/api/v1/users/{id}/wallet/deposits", tag = "users",
    security(("bearer" = [])), request_body = DepositRequest,
    params(("id" = String, Path, description = "The user id (UUID)")),
    responses(
        (status = 200, description = "The wallet after the deposit", body = WalletView),
        (status = 400, description = "`id` is not a UUID"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "No such user"),
        (status = 422, description = "`amount_cents` is 0 or negative"),
        (status = 504, description = "No answer in time: the deposit may or may not be made")))]
async fn deposit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<DepositRequest>, ApiError>,
) -> Result<axum::Json<WalletView>, ApiError> {
    // Who may comes before what they sent: a user's body is not looked at.
    caller.require_admin("depositing")?;
    let Json(request) = body?;
    let id = owned(&caller, &id)?;
    let amount_cents = u64::try_from(request.amount_cents)
        .ok()
        .filter(|a| *a > 0)
        .ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "amount_cents: must be greater than 0, got {}",
                request.amount_cents
            ))
        })?;
    // Opened first if need be (the user must exist).
    balance(&state, id).await?;
    let balance_cents = state
        .runtime()
        .entity::<Wallet>(id)
        .with_timeout(TIMEOUT)
        .ask(Deposit { amount_cents })
        .await
        .map_err(write_failed)?;
    Ok(axum::Json(WalletView {
        user_id: id.to_string(),
        balance_cents,
    }))
}

//! Sagas for operators: `GET /admin/sagas?state=` lists the order sagas across the cluster by
//! state (running, compensating, stuck past a step's deadline, finished...), and
//! `POST /admin/sagas/{id}/retry` and `/compensate` act on one, each recorded in its history.

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use tokio::time::Duration;
use troupe_actors::ids::Id;
use troupe_actors::orders::{Order, OrderData, OrderSaga};
use troupe_runtime::saga::{Operate, OperatorAction, Phase, Saga, SagaState};

use super::AppState;
use super::api::feeds::Query;
use super::api::orders::SagaJson;
use super::api::time::rfc3339;
use super::api::write_failed;
use super::error::ApiError;
use super::guard::Caller;

/// How long an operator's request to one saga may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Sagas listed when the client does not say.
const DEFAULT_LIMIT: usize = 100;
/// The most sagas one listing returns.
const MAX_LIMIT: usize = 1000;
/// The most sagas one listing reads to find those in the state asked for (it answers where to
/// continue): a listing's cost stays bounded however many sagas there are.
const MAX_SCANNED: usize = 5_000;
/// Sagas read per page of the scan (at most).
const PAGE: usize = 200;

/// Which sagas to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Wanted {
    /// Going forward.
    Running,
    /// Undoing what was done.
    Compensating,
    /// Running or compensating with the current step past its deadline.
    Stuck,
    /// Completed.
    Completed,
    /// Compensated.
    Compensated,
    /// Completed or compensated.
    Finished,
    /// Every saga.
    All,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SagaQuery {
    /// Which sagas (default `all`).
    #[param(inline)]
    state: Option<Wanted>,
    /// At most this many, 1 to 1000 (default 100).
    limit: Option<i64>,
    /// A saga id: the listing continues after it.
    after: Option<String>,
}

/// One saga in a listing.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SagaLine {
    id: String,
    /// `running`, `compensating`, `completed` or `compensated`.
    state: String,
    /// Why it compensated.
    reason: Option<String>,
    /// The step it is on (running or compensating).
    step: Option<String>,
    /// How many times that step's current work was sent.
    attempts: u32,
    /// Whether that step has been tried for longer than its deadline.
    stuck: bool,
    /// The step's last failure.
    last_error: Option<String>,
    created_at: String,
    updated_at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SagaList {
    sagas: Vec<SagaLine>,
    /// Where to continue (`after`); null when every saga was read.
    next_after: Option<String>,
    /// How many sagas this listing read.
    scanned: usize,
    /// The shards that could not answer (their node is down): their sagas are not listed.
    unavailable_shards: Vec<u32>,
}

fn now_ms() -> u64 {
    troupe_actors::ids::now_ms()
}

/// Whether `saga`'s current work has been tried for longer than a step's deadline.
fn stuck(saga: &SagaState<OrderData>, now: u64) -> bool {
    let started = saga.work_started_ms();
    let deadline = u64::try_from(OrderSaga::STEP_DEADLINE.as_millis()).unwrap_or(u64::MAX);
    saga.work().is_some() && started > 0 && now.saturating_sub(started) > deadline
}

fn matches(wanted: Wanted, saga: &SagaState<OrderData>, now: u64) -> bool {
    match wanted {
        Wanted::Running => matches!(saga.phase, Phase::Running { .. }),
        Wanted::Compensating => matches!(saga.phase, Phase::Compensating { .. }),
        Wanted::Stuck => stuck(saga, now),
        Wanted::Completed => saga.phase == Phase::Completed,
        Wanted::Compensated => matches!(saga.phase, Phase::Compensated { .. }),
        Wanted::Finished => saga.phase.is_final(),
        Wanted::All => true,
    }
}

fn line(id: Id, saga: &SagaState<OrderData>, now: u64) -> SagaLine {
    let json = SagaJson::of(id, saga);
    let current = match saga.work() {
        Some(troupe_runtime::saga::Work::Act(n) | troupe_runtime::saga::Work::Compensate(n)) => {
            saga.steps.get(n)
        }
        None => None,
    };
    SagaLine {
        id: id.to_string(),
        state: saga.phase.as_str().to_string(),
        reason: json.reason().map(str::to_string),
        step: current.map(|s| s.spec.name.clone()),
        attempts: saga.attempt(),
        stuck: stuck(saga, now),
        last_error: current.and_then(|s| s.last_error.clone()),
        created_at: rfc3339(saga.created_at_ms),
        updated_at: rfc3339(saga.updated_at_ms),
    }
}

/// `GET /admin/sagas`.
#[utoipa::path(get, path = "/admin/sagas", tag = "admin", security(("bearer" = [])),
    params(SagaQuery),
    responses(
        (status = 200, description = "The order sagas in the state asked for, by id, across \
            the cluster; `next_after` says where to continue; the shards whose node is down \
            are named in `unavailable_shards`", body = SagaList),
        (status = 400, description = "A bad `state`, `limit` or `after`")))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(query): Query<SagaQuery>,
) -> Result<axum::Json<SagaList>, ApiError> {
    let wanted = query.state.unwrap_or(Wanted::All);
    let limit = match query.limit {
        None => DEFAULT_LIMIT,
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::InvalidRequest(format!("limit: 1 to {MAX_LIMIT}, got {n}")))?,
    };
    let mut after: Option<Id> = query
        .after
        .as_deref()
        .map(|a| {
            a.parse()
                .map_err(|_| ApiError::InvalidRequest(format!("after: {a:?} is not a UUID")))
        })
        .transpose()?;
    let now = now_ms();
    let mut sagas = Vec::new();
    let mut scanned = 0;
    let mut exhausted = false;
    let mut unavailable = std::collections::BTreeSet::new();
    // Every saga matches "all": read just the page; otherwise read in larger pages.
    let page_size = if wanted == Wanted::All { limit } else { PAGE };
    while sagas.len() < limit && scanned < MAX_SCANNED {
        let page = state
            .runtime()
            .list_page::<Order>(after.as_ref(), page_size)
            .await
            .map_err(ApiError::from_idempotent)?;
        unavailable.extend(page.unavailable.into_iter().map(|(shard, _)| shard));
        for (id, saga) in &page.entries {
            scanned += 1;
            after = Some(*id);
            if matches(wanted, saga, now) {
                sagas.push(line(*id, saga, now));
                if sagas.len() == limit {
                    break;
                }
            }
        }
        if !page.more {
            exhausted = sagas.len() < limit || after.is_none();
            break;
        }
    }
    Ok(axum::Json(SagaList {
        sagas,
        next_after: if exhausted {
            None
        } else {
            after.map(|a| a.to_string())
        },
        scanned,
        unavailable_shards: unavailable.into_iter().collect(),
    }))
}

async fn operate(
    state: &AppState,
    caller: &Caller,
    id: &str,
    action: OperatorAction,
) -> Result<axum::Json<SagaJson>, ApiError> {
    let id: Id = id
        .parse()
        .map_err(|_| ApiError::InvalidRequest(format!("id: {id:?} is not a UUID")))?;
    let saga = state
        .runtime()
        .entity::<Order>(id)
        .with_timeout(TIMEOUT)
        .ask(Operate {
            action,
            by: format!("admin {}", caller.0.sub),
        })
        .await
        .map_err(write_failed)?;
    tracing::info!(saga = %id, ?action, by = %caller.0.sub, "an operator acted on a saga");
    Ok(axum::Json(SagaJson::of(id, &saga)))
}

/// `POST /admin/sagas/{id}/retry`: sends the saga's current step again now.
#[utoipa::path(post, path = "/admin/sagas/{id}/retry", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "The saga id (the order id)")),
    responses(
        (status = 200, description = "The saga, its step sent again (in its history)",
            body = super::openapi::orders::Saga),
        (status = 400, description = "`id` is not a UUID"),
        (status = 404, description = "No such saga"),
        (status = 409, description = "The saga has finished"),
        (status = 504, description = "No answer in time: read the saga before repeating")))]
pub(crate) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<SagaJson>, ApiError> {
    operate(&state, &caller, &id, OperatorAction::Retry).await
}

/// `POST /admin/sagas/{id}/compensate`: gives up and undoes what the saga did.
#[utoipa::path(post, path = "/admin/sagas/{id}/compensate", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The saga id (the order id)")),
    responses(
        (status = 200, description = "The saga, compensating (in its history)",
            body = super::openapi::orders::Saga),
        (status = 400, description = "`id` is not a UUID"),
        (status = 404, description = "No such saga"),
        (status = 409, description = "The saga has finished, or is past a step that cannot \
            be undone"),
        (status = 504, description = "No answer in time: read the saga before repeating")))]
pub(crate) async fn compensate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<SagaJson>, ApiError> {
    operate(&state, &caller, &id, OperatorAction::Compensate).await
}

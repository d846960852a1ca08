//! The event bus at the edge: `GET /admin/events` (what this node's relays did, and the dead
//! letters of every sharded service), `POST /admin/events/dead-letters/{id}/redrive`, and the
//! built-in probe pair, `POST /admin/probe/{key}` (emit the next number) and
//! `GET /admin/probe/{key}` (the probe's number beside what its tally applied).

use axum::extract::{Path, State};
use serde::Serialize;
use tokio::time::Duration;
use troupe_runtime::entity::AskError;
use troupe_runtime::events::Stats;
use troupe_runtime::probe::{Emit, Emitted, MAX_KEY_BYTES, Probe, ProbeError, Read, Tally};

use super::AppState;
use super::error::ApiError;

/// How long a probe request may take before it fails as unavailable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EmittedNumber {
    key: String,
    n: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ProbeView {
    key: String,
    /// The probe's number: every number up to it was committed.
    emitted: u64,
    /// Events its tally applied.
    applied: u64,
    /// The number of the last one applied.
    last: u64,
    /// Applied events that did not follow the one before.
    out_of_order: u64,
}

fn check_key(key: &str) -> Result<(), ApiError> {
    super::extract::key_within(key, MAX_KEY_BYTES)
}

fn refused(e: ProbeError) -> ApiError {
    ApiError::InvalidRequest(e.to_string())
}

/// `POST /admin/probe/{key}`: answers once the new number and its event are durable.
#[utoipa::path(post, path = "/admin/probe/{key}", tag = "admin", security(("bearer" = [])),
    params(("key" = String, Path, description = "The probe's key")),
    responses(
        (status = 200, description = "The next number, durable with its event", body = EmittedNumber),
        (status = 400, description = "The key is empty or too long"),
        (status = 504, description = "No answer in time: the number may or may not have been emitted")))]
pub(crate) async fn emit(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<axum::Json<EmittedNumber>, ApiError> {
    check_key(&key)?;
    let n = state
        .runtime()
        .entity::<Probe>(key.clone())
        .with_timeout(PROBE_TIMEOUT)
        .ask(Emit)
        .await
        .map_err(|e| match e {
            AskError::Domain(e) => refused(e),
            AskError::Call(e) => e.into(),
            AskError::Store(e) => ApiError::Unavailable(format!("nothing was stored: {e}")),
        })?;
    Ok(axum::Json(EmittedNumber { key, n }))
}

/// `GET /admin/probe/{key}`.
#[utoipa::path(get, path = "/admin/probe/{key}", tag = "admin", security(("bearer" = [])),
    params(("key" = String, Path, description = "The probe's key")),
    responses(
        (status = 200, description = "The probe's number beside what its tally applied", body = ProbeView),
        (status = 400, description = "The key is empty or too long")))]
pub(crate) async fn view(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<axum::Json<ProbeView>, ApiError> {
    check_key(&key)?;
    let read_failed = |e: AskError<ProbeError>| match e {
        AskError::Domain(e) => refused(e),
        AskError::Call(e) => ApiError::from_idempotent(e),
        AskError::Store(e) => ApiError::Unavailable(format!("the read failed: {e}")),
    };
    let runtime = state.runtime();
    let emitted = runtime
        .entity::<Probe>(key.clone())
        .with_timeout(PROBE_TIMEOUT)
        .ask(Emitted)
        .await
        .map_err(read_failed)?;
    let counts = runtime
        .entity::<Tally>(key.clone())
        .with_timeout(PROBE_TIMEOUT)
        .ask(Read)
        .await
        .map_err(read_failed)?;
    Ok(axum::Json(ProbeView {
        key,
        emitted,
        applied: counts.applied,
        last: counts.last,
        out_of_order: counts.out_of_order,
    }))
}

/// One dead letter, for operators.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct DeadLetterView {
    event_id: String,
    service: String,
    shard: u32,
    subscription: String,
    seq: u64,
    topic: String,
    attempts: u32,
    last_error: String,
    at_ms: u64,
}

/// A service whose dead letters could not be read now.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Unread {
    service: String,
    error: String,
}

/// `GET /admin/events`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct EventsView {
    #[serde(flatten)]
    #[schema(value_type = super::openapi::EventStatsSchema)]
    stats: Stats,
    /// The dead letters of every sharded service, wherever their shards are.
    dead_letters: Vec<DeadLetterView>,
    /// Services whose shards did not answer (their node is down): their dead letters are not
    /// listed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(required = false)]
    dead_letters_unavailable: Vec<Unread>,
}

/// Every dead letter of every sharded service, and the services that did not answer.
async fn all_dead_letters(state: &AppState) -> (Vec<DeadLetterView>, Vec<Unread>) {
    let runtime = state.runtime();
    let mut letters = Vec::new();
    let mut unread = Vec::new();
    for service in runtime.services() {
        if runtime.shard_map(&service.name).is_empty() {
            continue;
        }
        match runtime.dead_letters(&service.name).await {
            Ok(found) => letters.extend(found.into_iter().map(|(shard, l)| DeadLetterView {
                event_id: uuid::Uuid::from_bytes(l.event.event).to_string(),
                service: service.name.clone(),
                shard,
                subscription: l.subscription,
                seq: l.seq,
                topic: l.event.topic,
                attempts: l.attempts,
                last_error: l.last_error,
                at_ms: l.at_ms,
            })),
            Err(e) => unread.push(Unread {
                service: service.name.clone(),
                error: e.to_string(),
            }),
        }
    }
    (letters, unread)
}

/// `GET /admin/events`: what this node's relays did (per topic and subscription, the backlog
/// of its shards), and the dead letters of every sharded service.
#[utoipa::path(get, path = "/admin/events", tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "Per topic and subscription: published, delivered, \
        refused, retried and dead-lettered counts; the outbox backlog per shard; the dead letters",
        body = EventsView)))]
pub(crate) async fn events(State(state): State<AppState>) -> axum::Json<EventsView> {
    let (dead_letters, dead_letters_unavailable) = all_dead_letters(&state).await;
    axum::Json(EventsView {
        stats: state.runtime().bus().stats(),
        dead_letters,
        dead_letters_unavailable,
    })
}

/// One dead letter sent again.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RedrivenLetter {
    service: String,
    shard: u32,
    subscription: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Redriven {
    event_id: String,
    redriven: Vec<RedrivenLetter>,
}

/// `POST /admin/events/dead-letters/{id}/redrive`: sends event `id` back to every subscription
/// that set it aside; each applies it once. 404 if no dead letter has that id (any more).
#[utoipa::path(post, path = "/admin/events/dead-letters/{id}/redrive", tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The event id (UUID)")),
    responses(
        (status = 200, description = "Sent again to every subscription that set it aside", body = Redriven),
        (status = 400, description = "`id` is not a UUID"),
        (status = 404, description = "No dead letter with this event id"),
        (status = 503, description = "Not found, but a service did not answer: retry later")))]
pub(crate) async fn redrive(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Redriven>, ApiError> {
    let event_id = uuid::Uuid::parse_str(&id)
        .map_err(|e| ApiError::InvalidRequest(format!("id: not a UUID: {e}")))?
        .to_string();
    let (letters, unread) = all_dead_letters(&state).await;
    let mut redriven = Vec::new();
    for letter in letters.into_iter().filter(|l| l.event_id == event_id) {
        let done = state
            .runtime()
            .redrive(
                &letter.service,
                letter.shard,
                &letter.subscription,
                letter.seq,
            )
            .await
            .map_err(ApiError::from)?;
        if done {
            redriven.push(RedrivenLetter {
                service: letter.service,
                shard: letter.shard,
                subscription: letter.subscription,
            });
        }
    }
    if redriven.is_empty() {
        return Err(match unread.first() {
            // It may be in a shard that did not answer: the client may retry.
            Some(u) => ApiError::Unavailable(format!(
                "no dead letter {event_id} found, but service {} did not answer: {}",
                u.service, u.error
            )),
            None => ApiError::NotFound(format!("no dead letter with event id {event_id}")),
        });
    }
    Ok(axum::Json(Redriven { event_id, redriven }))
}

//! The event bus at the edge: `GET /admin/events` (what this node's relays did), the dead
//! letters of a service's shards and their redrive, and the built-in probe pair, `POST /admin/probe/{key}` (emit the next number) and
//! `GET /admin/probe/{key}` (the probe's number beside what its tally applied).

use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use tokio::time::Duration;
use troupe_runtime::CallError;
use troupe_runtime::entity::AskError;
use troupe_runtime::events::Stats;
use troupe_runtime::probe::{Emit, Emitted, MAX_KEY_BYTES, Probe, ProbeError, Read, Tally};

use super::AppState;
use super::error::ApiError;
use super::extract::Json;

/// How long a probe request may take before it fails as unavailable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /admin/events`.
pub(crate) async fn events(State(state): State<AppState>) -> axum::Json<Stats> {
    axum::Json(state.runtime().bus().stats())
}

#[derive(Serialize)]
pub(crate) struct EmittedNumber {
    key: String,
    n: u64,
}

#[derive(Serialize)]
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
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(ApiError::InvalidRequest(format!(
            "key: 1 to {MAX_KEY_BYTES} bytes, got {}",
            key.len()
        )));
    }
    Ok(())
}

fn refused(e: ProbeError) -> ApiError {
    ApiError::InvalidRequest(e.to_string())
}

/// `POST /admin/probe/{key}`: answers once the new number and its event are durable.
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
#[derive(Serialize)]
pub(crate) struct DeadLetterView {
    shard: u32,
    subscription: String,
    seq: u64,
    event_id: String,
    topic: String,
    attempts: u32,
    last_error: String,
    at_ms: u64,
}

#[derive(Serialize)]
pub(crate) struct DeadLetters {
    service: String,
    dead_letters: Vec<DeadLetterView>,
}

/// `GET /admin/events/{service}/dead-letters`: the events a subscriber refused too often, kept
/// in the shards of `service` that published them.
pub(crate) async fn dead_letters(
    State(state): State<AppState>,
    Path(service): Path<String>,
) -> Result<axum::Json<DeadLetters>, ApiError> {
    let letters = state
        .runtime()
        .dead_letters(&service)
        .await
        .map_err(|e| match e {
            CallError::UnknownService(_) => {
                ApiError::NotFound(format!("no sharded service {service:?}"))
            }
            other => ApiError::from_idempotent(other),
        })?;
    let dead_letters = letters
        .into_iter()
        .map(|(shard, l)| DeadLetterView {
            shard,
            subscription: l.subscription,
            seq: l.seq,
            event_id: uuid::Uuid::from_bytes(l.event.event).to_string(),
            topic: l.event.topic,
            attempts: l.attempts,
            last_error: l.last_error,
            at_ms: l.at_ms,
        })
        .collect();
    Ok(axum::Json(DeadLetters {
        service,
        dead_letters,
    }))
}

/// What to send again.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedriveRequest {
    shard: u32,
    subscription: String,
    seq: u64,
}

#[derive(Serialize)]
pub(crate) struct Redriven {
    redriven: bool,
}

/// `POST /admin/events/{service}/redrive`: sends one dead letter back to its subscription,
/// which applies it once; 404 if there is no such dead letter (any more).
pub(crate) async fn redrive(
    State(state): State<AppState>,
    Path(service): Path<String>,
    Json(request): Json<RedriveRequest>,
) -> Result<axum::Json<Redriven>, ApiError> {
    let shards = state.runtime().shard_map(&service).len();
    if shards == 0 {
        return Err(ApiError::NotFound(format!(
            "no sharded service {service:?}"
        )));
    }
    if request.shard as usize >= shards {
        return Err(ApiError::InvalidRequest(format!(
            "shard: {service} has shards 0 to {}",
            shards - 1
        )));
    }
    let redriven = state
        .runtime()
        .redrive(&service, request.shard, &request.subscription, request.seq)
        .await
        .map_err(ApiError::from)?;
    if !redriven {
        return Err(ApiError::NotFound(format!(
            "no dead letter {} of {} in shard {}",
            request.seq, request.subscription, request.shard
        )));
    }
    Ok(axum::Json(Redriven { redriven }))
}

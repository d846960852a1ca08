//! The event bus at the edge: `GET /admin/events` (what this node's relays did) and the
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

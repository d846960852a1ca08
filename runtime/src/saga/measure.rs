//! A saga's metrics: instances started and finished (by outcome and the kind of reason), and
//! how long each step's work took from its first sending to a report of it (see
//! [`crate::metrics`] for the series). Recorded by the instance's commands, on the node that
//! hosts the instance.

use super::state::{Outcome, Phase, SagaState, Work};
use crate::metrics::{SAGA_STEP_SECONDS, SAGAS_FINISHED, SAGAS_STARTED, kind};

/// The reason an operator's forced compensation gives starts with this (see
/// [`super::Operate`]).
pub(super) const FORCED: &str = "compensation forced by";

/// An instance of `saga` started.
pub(super) fn started(saga: &'static str) {
    metrics::counter!(SAGAS_STARTED, "saga" => saga).increment(1);
}

/// An instance of `saga` finished as `state` says (nothing if it has not).
pub(super) fn finished<D>(saga: &'static str, state: &SagaState<D>) {
    let reason = match &state.phase {
        Phase::Completed => "none",
        Phase::Compensated { reason } if reason.starts_with(FORCED) => "forced",
        Phase::Compensated { reason } => kind(reason),
        Phase::Running { .. } | Phase::Compensating { .. } => return,
    };
    metrics::counter!(
        SAGAS_FINISHED,
        "saga" => saga,
        "outcome" => state.phase.as_str(),
        "reason" => reason.to_string()
    )
    .increment(1);
}

/// A report of `work` with `outcome` came for `state` (before it is applied) at `now_ms`.
pub(super) fn reported<D>(
    saga: &'static str,
    state: &SagaState<D>,
    work: Work,
    outcome: &Outcome,
    now_ms: u64,
) {
    let (n, what) = match work {
        Work::Act(n) => (n, "act"),
        Work::Compensate(n) => (n, "compensate"),
    };
    let (Some(step), started) = (state.steps.get(n), state.work_started_ms()) else {
        return;
    };
    if started == 0 {
        return;
    }
    let outcome = match outcome {
        Outcome::Done => "done",
        Outcome::Refused(_) => "refused",
        Outcome::Retry(_) => "retry",
    };
    #[allow(clippy::cast_precision_loss)] // milliseconds: exact far beyond any step's time
    let seconds = now_ms.saturating_sub(started) as f64 / 1000.0;
    metrics::histogram!(
        SAGA_STEP_SECONDS,
        "saga" => saga,
        "step" => kind(&step.spec.name).to_string(),
        "work" => what,
        "outcome" => outcome
    )
    .record(seconds);
}

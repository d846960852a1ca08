//! The commands of a saga instance: start, the runner's reports, the timers that send work
//! again, aborting, and what operators ask.

use serde::{Deserialize, Serialize};

use super::runner::{Run, SagaRunner};
use super::state::{Outcome, SagaState, Work};
use super::{Saga, SagaEntity, backoff};
use crate::entity::{Command, Commands, Context, Entity};
use crate::service::encode;

impl<S: Saga> Entity for SagaEntity<S> {
    const NAME: &'static str = S::NAME;
    type Id = S::Id;
    type State = SagaState<S::Data>;
    type Error = S::Error;

    fn commands(commands: &mut Commands<Self>) {
        commands
            .add::<Start<S::Start>>()
            .add::<Get>()
            .add::<Kick>()
            .add::<Report>()
            .add::<Abort>()
            .add::<Operate>()
            .add::<Crash>();
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Sends the current work to the runner and arms its watchdog; or, if the instance just
/// finished, runs the saga's milestone hook. Stores the state.
fn advance<S: Saga>(cx: &mut Context<'_, SagaEntity<S>>, mut state: SagaState<S::Data>) {
    let now = now_ms();
    if let Some(watchdog) = state.watchdog.take() {
        // What it watched was answered, or is sent again now with a watchdog of its own.
        cx.cancel_timer(&watchdog);
    }
    if state.phase.is_final() {
        super::measure::finished(S::NAME, &state);
        S::milestone(cx, &state);
        cx.set(state);
        return;
    }
    if let Some((work, attempt)) = state.dispatched(now) {
        match (encode(cx.id()), encode(&state.data)) {
            (Ok(id), Ok(data)) => cx.tell_service::<SagaRunner<S>>(&Run {
                id,
                data,
                work,
                attempt,
            }),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(saga = S::NAME, error = %e, "cannot encode a saga's work");
            }
        }
        state.watchdog = Some(cx.schedule_durable(S::ATTEMPT_TIMEOUT, Kick { work, attempt }));
    }
    cx.set(state);
}

/// Starts the instance (see [`super::Saga::same_start`] for starting it again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start<T>(pub T);

/// What starting answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started<D> {
    /// The instance as it stands.
    pub state: SagaState<D>,
    /// Whether this command started it.
    pub new: bool,
}

impl<S: Saga> Command<SagaEntity<S>> for Start<S::Start> {
    const NAME: &'static str = "saga.start";
    type Reply = Started<S::Data>;

    fn handle(self, cx: &mut Context<'_, SagaEntity<S>>) -> Result<Self::Reply, S::Error> {
        let id = cx.id().clone();
        if let Some(state) = cx.state() {
            return if S::same_start(&state.data, &self.0) {
                Ok(Started {
                    state: state.clone(),
                    new: false,
                })
            } else {
                Err(S::conflict(
                    &id,
                    "it was started by another request".to_string(),
                ))
            };
        }
        let now = now_ms();
        let data = S::begin(&id, self.0, now)?;
        let steps = S::steps(&data);
        let state = SagaState::new(data, steps, now);
        super::measure::started(S::NAME);
        if !state.phase.is_final() {
            // Started (a saga without steps is finished at once: one milestone).
            S::milestone(cx, &state);
        }
        advance(cx, state.clone());
        let state = cx.state().cloned().unwrap_or(state);
        Ok(Started { state, new: true })
    }
}

/// The instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Get;

impl<S: Saga> Command<SagaEntity<S>> for Get {
    const NAME: &'static str = "saga.get";
    const IDEMPOTENT: bool = true;
    type Reply = SagaState<S::Data>;

    fn handle(self, cx: &mut Context<'_, SagaEntity<S>>) -> Result<Self::Reply, S::Error> {
        let id = cx.id().clone();
        cx.state().cloned().ok_or_else(|| S::not_found(&id))
    }
}

/// A timer: send `work` again if attempt `attempt` is still its latest (a watchdog after
/// [`Saga::ATTEMPT_TIMEOUT`], or a retry after a backoff).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kick {
    /// The work it is for.
    pub work: Work,
    /// The attempt it follows.
    pub attempt: u32,
}

/// Whether `state`'s current step has failed for longer than its deadline and may be undone.
fn past_deadline<S: Saga>(state: &SagaState<S::Data>, now: u64) -> bool {
    let Some(Work::Act(n)) = state.work() else {
        return false;
    };
    let started = state.work_started_ms();
    let deadline = u64::try_from(S::STEP_DEADLINE.as_millis()).unwrap_or(u64::MAX);
    state.steps[n].spec.compensable && started > 0 && now.saturating_sub(started) > deadline
}

/// Gives up on the current step at its deadline (compensating), else sends it again.
fn retry<S: Saga>(cx: &mut Context<'_, SagaEntity<S>>, mut state: SagaState<S::Data>) {
    let now = now_ms();
    if past_deadline::<S>(&state, now) {
        let reason = format!(
            "deadline: {} kept failing",
            state.describe().trim_start_matches("running:")
        );
        if state.abort(&reason, now).is_ok() {
            tracing::warn!(saga = S::NAME, id = %cx.id(), %reason, "a saga step passed its deadline: compensating");
        }
    }
    advance(cx, state);
}

impl<S: Saga> Command<SagaEntity<S>> for Kick {
    const NAME: &'static str = "saga.kick";
    const IDEMPOTENT: bool = true;
    type Reply = ();

    fn handle(self, cx: &mut Context<'_, SagaEntity<S>>) -> Result<(), S::Error> {
        let Some(state) = cx.state() else {
            return Ok(());
        };
        if state.work() != Some(self.work) || state.attempt() != self.attempt {
            // Answered, or sent again since: this timer is stale.
            return Ok(());
        }
        let state = state.clone();
        retry(cx, state);
        Ok(())
    }
}

/// The runner's answer to attempt `attempt` of `work`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The work.
    pub work: Work,
    /// Which sending of it.
    pub attempt: u32,
    /// What happened.
    pub outcome: Outcome,
}

impl<S: Saga> Command<SagaEntity<S>> for Report {
    const NAME: &'static str = "saga.report";
    const IDEMPOTENT: bool = true;
    type Reply = ();

    fn handle(self, cx: &mut Context<'_, SagaEntity<S>>) -> Result<(), S::Error> {
        let Some(state) = cx.state() else {
            return Ok(());
        };
        if state.work() != Some(self.work) {
            return Ok(());
        }
        let mut state = state.clone();
        let current = state.attempt() == self.attempt;
        let now = now_ms();
        super::measure::reported(S::NAME, &state, self.work, &self.outcome, now);
        if state.answer(self.work, &self.outcome, now) {
            if let (Work::Act(n), Outcome::Done) = (self.work, &self.outcome)
                && let Some(how) = failpoint::armed(S::NAME, &state.steps[n].spec.name)
            {
                // Right after this step is recorded (the timer fires once it is durable).
                cx.schedule(std::time::Duration::ZERO, Crash { how });
            }
            advance(cx, state);
        } else if current {
            // Failed for now: sent again after a backoff (a durable timer), unless the step
            // is past its deadline.
            if past_deadline::<S>(&state, now) {
                retry(cx, state);
            } else {
                cx.schedule_durable(
                    backoff::<S>(self.attempt),
                    Kick {
                        work: self.work,
                        attempt: self.attempt,
                    },
                );
                cx.set(state);
            }
        }
        Ok(())
    }
}

/// Give up going forward because of `reason` (a user's cancel): undo what was done. Answers
/// the instance; a conflict once a step that cannot be undone has started, or when completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Abort {
    /// Why (what the compensated instance keeps as its reason).
    pub reason: String,
}

impl<S: Saga> Command<SagaEntity<S>> for Abort {
    const NAME: &'static str = "saga.abort";
    const IDEMPOTENT: bool = true;
    type Reply = SagaState<S::Data>;

    fn handle(self, cx: &mut Context<'_, SagaEntity<S>>) -> Result<Self::Reply, S::Error> {
        let id = cx.id().clone();
        let mut state = cx.state().cloned().ok_or_else(|| S::not_found(&id))?;
        match state.abort(&self.reason, now_ms()) {
            Ok(true) => {
                advance(cx, state);
                Ok(cx.state().cloned().ok_or_else(|| S::not_found(&id))?)
            }
            Ok(false) => Ok(state),
            Err(why) => Err(S::conflict(&id, why)),
        }
    }
}

/// What an operator asks of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperatorAction {
    /// Send the current work again now (a stuck step).
    Retry,
    /// Give up and undo what was done.
    Compensate,
}

/// An operator's request, recorded in the history. Answers the instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operate {
    /// What to do.
    pub action: OperatorAction,
    /// Who asked (for the history).
    pub by: String,
}

impl<S: Saga> Command<SagaEntity<S>> for Operate {
    const NAME: &'static str = "saga.operate";
    type Reply = SagaState<S::Data>;

    fn handle(self, cx: &mut Context<'_, SagaEntity<S>>) -> Result<Self::Reply, S::Error> {
        let id = cx.id().clone();
        let mut state = cx.state().cloned().ok_or_else(|| S::not_found(&id))?;
        if state.phase.is_final() {
            return Err(S::conflict(&id, format!("it has {}", state.phase.as_str())));
        }
        let now = now_ms();
        match self.action {
            OperatorAction::Retry => {
                state.note(now, format!("retried now by {}", self.by));
            }
            OperatorAction::Compensate => {
                let reason = format!("{} {}", super::measure::FORCED, self.by);
                state
                    .abort(&reason, now)
                    .map_err(|why| S::conflict(&id, why))?;
            }
        }
        advance(cx, state);
        cx.state().cloned().ok_or_else(|| S::not_found(&id))
    }
}

/// Failure injection for tests: `TROUPE_SAGA_FAILPOINT=<saga>:<step prefix>:<panic|abort>`
/// makes this process fail, once, right after an instance of `<saga>` recorded a step whose
/// name starts with `<step prefix>`: `panic` kills the instance's shard actor (its supervisor
/// starts it again), `abort` kills the whole node as abruptly as SIGKILL. Unset, nothing
/// happens (and a [`Crash`] sent from elsewhere does nothing).
pub(crate) mod failpoint {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, Ordering};

    use serde::{Deserialize, Serialize};

    /// The variable that arms it.
    pub(crate) const VAR: &str = "TROUPE_SAGA_FAILPOINT";

    /// How the process fails.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub(crate) enum How {
        /// The shard actor panics.
        Panic,
        /// The process aborts.
        Abort,
    }

    static CONFIG: OnceLock<Option<(String, String, How)>> = OnceLock::new();
    static FIRED: AtomicBool = AtomicBool::new(false);

    fn config() -> &'static Option<(String, String, How)> {
        CONFIG.get_or_init(|| {
            let text = std::env::var(VAR).ok()?;
            let mut parts = text.splitn(3, ':');
            let (saga, step, how) = (parts.next()?, parts.next()?, parts.next()?);
            let how = match how {
                "panic" => How::Panic,
                "abort" => How::Abort,
                _ => return None,
            };
            tracing::warn!(saga, step, ?how, "a saga failpoint is armed");
            Some((saga.to_string(), step.to_string(), how))
        })
    }

    /// How to fail after `saga` recorded `step`, if the failpoint is armed for it and has
    /// not fired yet.
    pub(crate) fn armed(saga: &str, step: &str) -> Option<How> {
        let (s, prefix, how) = config().as_ref()?;
        (s == saga && step.starts_with(prefix.as_str()) && !FIRED.swap(true, Ordering::SeqCst))
            .then_some(*how)
    }

    /// Whether a failpoint is armed in this process.
    pub(crate) fn enabled() -> bool {
        config().is_some()
    }
}

/// Fails the process as the failpoint says (see [`failpoint`]); nothing unless it is armed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Crash {
    how: failpoint::How,
}

impl<S: Saga> Command<SagaEntity<S>> for Crash {
    const NAME: &'static str = "saga.crash";
    const IDEMPOTENT: bool = true;
    type Reply = ();

    fn handle(self, cx: &mut Context<'_, SagaEntity<S>>) -> Result<(), S::Error> {
        if !failpoint::enabled() {
            return Ok(());
        }
        tracing::warn!(saga = S::NAME, id = %cx.id(), how = ?self.how, "saga failpoint: failing now");
        match self.how {
            failpoint::How::Abort => std::process::abort(),
            failpoint::How::Panic => panic!("saga failpoint {}", failpoint::VAR),
        }
    }
}

//! A saga instance's state and the pure transitions between its phases: what the commands of
//! [`super::SagaEntity`] apply, kept apart so that they are tested without a store.

use serde::{Deserialize, Serialize};

/// How many history entries an instance keeps (the first ones and the newest ones).
pub const MAX_HISTORY: usize = 200;

/// One step as declared by the saga for an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSpec {
    /// Its name, unique within the instance (`reserve:<product>`); part of its idempotency
    /// key.
    pub name: String,
    /// Whether it can be undone. Once a step that cannot starts, the saga only goes forward:
    /// its failures are retried until they succeed, and it can no longer be aborted.
    pub compensable: bool,
}

impl StepSpec {
    /// A step that can be undone.
    pub fn compensable(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            compensable: true,
        }
    }

    /// A step past the point of no return.
    pub fn final_step(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            compensable: false,
        }
    }
}

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// Sent, not answered yet (or answered "try again").
    Running,
    /// Done.
    Done,
    /// Refused for a business reason: nothing was applied.
    Failed,
    /// Being undone.
    Compensating,
    /// Undone.
    Compensated,
}

impl StepStatus {
    /// Its name in the API (`running`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Compensating => "compensating",
            Self::Compensated => "compensated",
        }
    }
}

/// One step of an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// As declared.
    pub spec: StepSpec,
    /// Where it stands.
    pub status: StepStatus,
    /// How many times its action was sent.
    pub attempts: u32,
    /// How many times its compensation was sent.
    pub compensations: u32,
    /// When its current work (action or compensation) was first sent, in milliseconds since
    /// the Unix epoch (0: never).
    pub started_at_ms: u64,
    /// When it last changed.
    pub updated_at_ms: u64,
    /// The last failure it met, if any.
    pub last_error: Option<String>,
}

/// Where an instance stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Carrying out step `step`.
    Running {
        /// The current step.
        step: usize,
    },
    /// Undoing step `step`, then the ones before it, because of `reason`.
    Compensating {
        /// The step being undone.
        step: usize,
        /// Why the saga gave up (a step's refusal, an abort, a deadline).
        reason: String,
    },
    /// Every step done.
    Completed,
    /// Every step that was done is undone.
    Compensated {
        /// Why.
        reason: String,
    },
}

impl Phase {
    /// Its name in the API (`running`, `compensating`, `completed`, `compensated`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Running { .. } => "running",
            Self::Compensating { .. } => "compensating",
            Self::Completed => "completed",
            Self::Compensated { .. } => "compensated",
        }
    }

    /// Whether the instance is done (completed or compensated).
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Completed | Self::Compensated { .. })
    }
}

/// One entry of an instance's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The phase before (`running:reserve:p1`).
    pub from: String,
    /// The phase after.
    pub to: String,
    /// What happened.
    pub note: String,
}

/// What the runner is asked to do for an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Work {
    /// Carry out step `n`.
    Act(usize),
    /// Undo step `n`.
    Compensate(usize),
}

/// One instance: its data, steps, phase and history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaState<D> {
    /// The saga's own data (an order).
    pub data: D,
    /// Its steps, in order.
    pub steps: Vec<StepRecord>,
    /// Where it stands.
    pub phase: Phase,
    /// What happened, oldest first (at most [`MAX_HISTORY`] entries: the first ones and the
    /// newest ones).
    pub history: Vec<Transition>,
    /// When it started.
    pub created_at_ms: u64,
    /// When its phase last changed.
    pub updated_at_ms: u64,
    /// The watchdog of the work sent last, while it may still fire (cancelled when the work
    /// is answered or sent again).
    pub watchdog: Option<crate::entity::TimerId>,
}

/// A step's answer, as the runner reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Done (or done before: the action is idempotent by its key).
    Done,
    /// Refused for a business reason (`out_of_stock`): nothing was applied.
    Refused(String),
    /// Failed for now (unavailable, timed out, outcome unknown): to be sent again with the
    /// same key.
    Retry(String),
}

impl<D> SagaState<D> {
    /// A new instance at its first step (compensated at once if it has none).
    pub fn new(data: D, steps: Vec<StepSpec>, now_ms: u64) -> Self {
        let phase = if steps.is_empty() {
            Phase::Completed
        } else {
            Phase::Running { step: 0 }
        };
        let mut state = Self {
            data,
            steps: steps
                .into_iter()
                .map(|spec| StepRecord {
                    spec,
                    status: StepStatus::Pending,
                    attempts: 0,
                    compensations: 0,
                    started_at_ms: 0,
                    updated_at_ms: now_ms,
                    last_error: None,
                })
                .collect(),
            phase,
            history: Vec::new(),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            watchdog: None,
        };
        let to = state.describe();
        state.record(now_ms, "new".into(), to, "started".into());
        state
    }

    /// The phase and its step, as history names them (`running:reserve:p1`).
    pub fn describe(&self) -> String {
        match &self.phase {
            Phase::Running { step } => format!("running:{}", self.steps[*step].spec.name),
            Phase::Compensating { step, .. } => {
                format!("compensating:{}", self.steps[*step].spec.name)
            }
            other => other.as_str().to_string(),
        }
    }

    /// The work the instance waits for, if it is not finished.
    pub fn work(&self) -> Option<Work> {
        match self.phase {
            Phase::Running { step } => Some(Work::Act(step)),
            Phase::Compensating { step, .. } => Some(Work::Compensate(step)),
            _ => None,
        }
    }

    /// How many times the current work was sent.
    pub fn attempt(&self) -> u32 {
        match self.work() {
            Some(Work::Act(n)) => self.steps[n].attempts,
            Some(Work::Compensate(n)) => self.steps[n].compensations,
            None => 0,
        }
    }

    /// Since when the current work has been tried (0 if never sent).
    pub fn work_started_ms(&self) -> u64 {
        match self.work() {
            Some(Work::Act(n) | Work::Compensate(n)) => self.steps[n].started_at_ms,
            None => 0,
        }
    }

    fn record(&mut self, at_ms: u64, from: String, to: String, note: String) {
        if self.history.len() >= MAX_HISTORY {
            // Keep how it began; drop the oldest of the rest.
            self.history.remove(MAX_HISTORY / 4);
        }
        self.history.push(Transition {
            at_ms,
            from,
            to,
            note,
        });
        self.updated_at_ms = at_ms;
    }

    /// Notes a sending of the current work: its attempt number.
    pub fn dispatched(&mut self, now_ms: u64) -> Option<(Work, u32)> {
        let work = self.work()?;
        let step = match work {
            Work::Act(n) | Work::Compensate(n) => &mut self.steps[n],
        };
        if step.started_at_ms == 0 {
            step.started_at_ms = now_ms;
        }
        step.updated_at_ms = now_ms;
        let attempt = match work {
            Work::Act(_) => {
                step.status = StepStatus::Running;
                step.attempts += 1;
                step.attempts
            }
            Work::Compensate(_) => {
                step.status = StepStatus::Compensating;
                step.compensations += 1;
                step.compensations
            }
        };
        Some((work, attempt))
    }

    /// Applies the answer to `work`; returns whether the phase changed. A definite answer
    /// (done, refused) counts from any attempt of the current work; anything for other work
    /// is stale and ignored.
    pub fn answer(&mut self, work: Work, outcome: &Outcome, now_ms: u64) -> bool {
        if self.work() != Some(work) {
            return false;
        }
        let from = self.describe();
        match (work, outcome) {
            (Work::Act(n), Outcome::Done) => {
                self.mark(n, StepStatus::Done, None, now_ms);
                self.phase = if n + 1 < self.steps.len() {
                    Phase::Running { step: n + 1 }
                } else {
                    Phase::Completed
                };
                let to = self.describe();
                self.record(
                    now_ms,
                    from,
                    to,
                    format!("{} done", self.steps[n].spec.name),
                );
                true
            }
            (Work::Act(n), Outcome::Refused(reason)) if self.steps[n].spec.compensable => {
                self.mark(n, StepStatus::Failed, Some(reason.clone()), now_ms);
                let note = format!("{} refused: {reason}", self.steps[n].spec.name);
                self.compensate_below(n, reason.clone(), now_ms, from, note);
                true
            }
            (Work::Act(n), Outcome::Refused(why) | Outcome::Retry(why)) => {
                self.mark(n, StepStatus::Running, Some(why.clone()), now_ms);
                false
            }
            (Work::Compensate(n), Outcome::Done) => {
                self.mark(n, StepStatus::Compensated, None, now_ms);
                let reason = match &self.phase {
                    Phase::Compensating { reason, .. } => reason.clone(),
                    _ => String::new(),
                };
                let note = format!("{} undone", self.steps[n].spec.name);
                self.compensate_below(n, reason, now_ms, from, note);
                true
            }
            (Work::Compensate(n), Outcome::Refused(why) | Outcome::Retry(why)) => {
                self.mark(n, StepStatus::Compensating, Some(why.clone()), now_ms);
                false
            }
        }
    }

    fn mark(&mut self, n: usize, status: StepStatus, error: Option<String>, now_ms: u64) {
        let step = &mut self.steps[n];
        step.status = status;
        step.updated_at_ms = now_ms;
        if error.is_some() {
            step.last_error = error;
        }
        if matches!(status, StepStatus::Done | StepStatus::Compensated) {
            // The next work on this step (its compensation) counts its own time.
            step.started_at_ms = 0;
        }
    }

    /// Undoes the steps before `n` that were started, newest first; compensated when none is
    /// left.
    fn compensate_below(
        &mut self,
        n: usize,
        reason: String,
        now_ms: u64,
        from: String,
        note: String,
    ) {
        self.phase = match (0..n).rev().find(|s| self.needs_undoing(*s)) {
            Some(step) => Phase::Compensating { step, reason },
            None => Phase::Compensated { reason },
        };
        let to = self.describe();
        self.record(now_ms, from, to, note);
    }

    fn needs_undoing(&self, n: usize) -> bool {
        let step = &self.steps[n];
        step.spec.compensable
            && step.attempts > 0
            && !matches!(step.status, StepStatus::Failed | StepStatus::Compensated)
    }

    /// Gives up going forward because of `reason`: the current step (which may have been
    /// applied) and every one before it that was started are undone. Refused (answers why)
    /// once a step that cannot be undone has started, or when finished.
    pub fn abort(&mut self, reason: &str, now_ms: u64) -> Result<bool, String> {
        let from = self.describe();
        match self.phase.clone() {
            Phase::Running { step } if self.steps[step].spec.compensable => {
                let note = format!("aborted: {reason}");
                self.compensate_below(step + 1, reason.to_string(), now_ms, from, note);
                Ok(true)
            }
            Phase::Running { step } => Err(format!(
                "step {} cannot be undone: the saga can only finish",
                self.steps[step].spec.name
            )),
            Phase::Compensating { .. } | Phase::Compensated { .. } => Ok(false),
            Phase::Completed => Err("the saga has completed".into()),
        }
    }

    /// Notes in the history that an operator asked for something.
    pub fn note(&mut self, now_ms: u64, note: String) {
        let now = self.describe();
        self.record(now_ms, now.clone(), now, note);
    }
}

#[cfg(test)]
mod tests;

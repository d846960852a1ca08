//! Sagas: distributed transactions as persistent state machines, built on entities.
//!
//! A saga type ([`Saga`]) declares, for each instance, its steps in order ([`StepSpec`]): an
//! action and its compensation, each sent with the idempotency key `<saga id>/<step name>`
//! (the same key for every attempt, so a resent step has no second effect). An instance is an
//! entity of [`SagaEntity<S>`] (by saga id, in the sharded service `S::NAME`): every
//! transition is durable before the next work is sent.
//!
//! How work is carried out: each transition asks the runner (the stateless service
//! `S::RUNNER`, hosted on every node) to do the current step's work, and arms a durable
//! watchdog timer. The runner reports the [`Outcome`] back to the instance. A step refused
//! for a business reason makes the saga undo, newest first, every step that was started
//! before it; a transient failure is sent again after a backoff (a durable timer: a crash does
//! not forget it) until the step's deadline ([`Saga::STEP_DEADLINE`]), after which the saga
//! undoes that step too (it may have been applied) and the ones before it. A compensation is
//! retried until it succeeds; so is a step past the point of no return
//! ([`StepSpec::final_step`]). If the runner, its node or the instance's node dies, the
//! watchdog (armed again when the shard opens) sends the work again: recovery needs no scan.
//!
//! The saga's own hook ([`Saga::milestone`]) runs inside the instance's commits when it
//! starts, completes and is compensated: an order saga publishes its order events there, in
//! the same batch as the transition.
//!
//! Operators: [`Runtime::host_saga`] hosts both services; the instance answers [`Get`];
//! [`Operate`] retries the current work now or forces compensation, each recorded in the
//! history; [`crate::Runtime::list`] lists instances across the cluster.

mod commands;
mod measure;
mod runner;
pub mod state;

use std::fmt::Debug;
use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Duration;

pub use commands::{Abort, Get, Kick, Operate, OperatorAction, Report, Start, Started};
pub use runner::{Run, SagaRunner};
pub use state::{Outcome, Phase, SagaState, StepRecord, StepSpec, StepStatus, Transition, Work};

use crate::Runtime;
use crate::entity::{Context, DomainError, EntityId};

/// A kind of saga: its instances' data, steps and hooks, and how each step is done and undone.
pub trait Saga: Send + Sync + Sized + 'static {
    /// The sharded service of its instances (`[services.<NAME>]`).
    const NAME: &'static str;
    /// The stateless service that carries out its steps (hosted on every node unless
    /// configured otherwise).
    const RUNNER: &'static str;
    /// How long one attempt may go unanswered before it is sent again.
    const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
    /// How long a step may keep failing for now before the saga gives up and compensates.
    const STEP_DEADLINE: Duration = Duration::from_secs(30);
    /// The first wait before a failed attempt is sent again (doubling, at most
    /// [`Saga::MAX_BACKOFF`]).
    const FIRST_BACKOFF: Duration = Duration::from_millis(50);
    /// The longest wait between attempts.
    const MAX_BACKOFF: Duration = Duration::from_secs(5);

    /// An instance's id.
    type Id: EntityId;
    /// What an instance carries (an order).
    type Data: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static;
    /// What starts an instance (a placed order, with the client's idempotency fingerprint).
    type Start: Serialize + DeserializeOwned + Clone + Debug + Send + 'static;
    /// What its commands refuse with.
    type Error: DomainError;

    /// The data of a new instance `id` from its start request, or why it cannot start.
    fn begin(id: &Self::Id, start: Self::Start, now_ms: u64) -> Result<Self::Data, Self::Error>;

    /// Whether `start` is the request that began `data`: starting again with it answers the
    /// instance as it stands and starts nothing; anything else is [`Saga::conflict`].
    fn same_start(data: &Self::Data, start: &Self::Start) -> bool;

    /// The steps of an instance, in order.
    fn steps(data: &Self::Data) -> Vec<StepSpec>;

    /// No instance `id`.
    fn not_found(id: &Self::Id) -> Self::Error;

    /// Instance `id` cannot do what was asked (`why`).
    fn conflict(id: &Self::Id, why: String) -> Self::Error;

    /// Runs inside the commit of a milestone (started, completed, compensated): publish here.
    fn milestone(cx: &mut Context<'_, SagaEntity<Self>>, state: &SagaState<Self::Data>);

    /// Carries out step `step` of instance `id` with idempotency key `key`.
    fn act(
        &self,
        runtime: &Runtime,
        id: &Self::Id,
        data: &Self::Data,
        step: usize,
        key: &str,
    ) -> impl Future<Output = Outcome> + Send;

    /// Undoes step `step` (idempotent by `key`; undoing a step that was never applied must
    /// succeed and keep it from applying later).
    fn compensate(
        &self,
        runtime: &Runtime,
        id: &Self::Id,
        data: &Self::Data,
        step: usize,
        key: &str,
    ) -> impl Future<Output = Outcome> + Send;
}

/// The entity of a saga's instances.
#[derive(Debug)]
pub struct SagaEntity<S>(std::marker::PhantomData<S>);

/// The idempotency key of step `step` of instance `id`.
pub fn step_key(id: &impl std::fmt::Display, step: &str) -> String {
    format!("{id}/{step}")
}

/// The wait before attempt `attempt + 1` of a work that failed for now.
pub(crate) fn backoff<S: Saga>(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    S::FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(S::MAX_BACKOFF)
}

impl Runtime {
    /// Hosts saga `S` on this node: its instances' shards (if configured here) and its runner.
    /// Instances left unfinished by a crash resume on their own (their watchdog timers are
    /// armed again when their shard opens).
    pub async fn host_saga<S: Saga>(&self, saga: S) -> crate::Result<()> {
        let saga = std::sync::Arc::new(saga);
        self.host(SagaRunner::new(self.clone(), saga)).await?;
        self.host(crate::entity::EntityService::<SagaEntity<S>>::new())
            .await?;
        Ok(())
    }
}

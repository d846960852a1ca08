//! The runner: the stateless service that carries out a saga's steps and reports back.
//!
//! Each request is one attempt of one step's action or compensation. The member hands it to a
//! task of its own and takes the next request at once (a step may wait seconds for a node that
//! is down); the task reports the outcome to the instance. A report that is lost, like a
//! runner that dies, is covered by the instance's watchdog timer: the work is sent again.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::time::Duration;

use super::commands::Report;
use super::state::{Outcome, Work};
use super::{Saga, SagaEntity};
use crate::Runtime;
use crate::service::{MemberInfo, RequestContext, Service, ServiceError, decode};

/// How long a report to the instance may take.
const REPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// One attempt of one step's work for an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// The instance's id, encoded.
    pub id: Vec<u8>,
    /// Its data, encoded.
    pub data: Vec<u8>,
    /// What to do.
    pub work: Work,
    /// Which sending of it.
    pub attempt: u32,
}

/// The runner of saga `S`.
pub struct SagaRunner<S> {
    runtime: Runtime,
    saga: Arc<S>,
}

impl<S: Saga> std::fmt::Debug for SagaRunner<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaRunner")
            .field("saga", &S::NAME)
            .finish()
    }
}

impl<S> SagaRunner<S> {
    /// The runner of `saga`, asking through `runtime`.
    pub fn new(runtime: Runtime, saga: Arc<S>) -> Self {
        Self { runtime, saga }
    }
}

impl<S: Saga> Service for SagaRunner<S> {
    const NAME: &'static str = S::RUNNER;
    type Request = Run;
    type Response = ();
    type State = ();

    async fn init(&self, _member: &MemberInfo) -> Result<(), ServiceError> {
        Ok(())
    }

    async fn handle(&self, _state: &mut (), run: Run, _cx: &RequestContext<'_>) {
        let (Ok(id), Ok(data)) = (decode::<S::Id>(&run.id), decode::<S::Data>(&run.data)) else {
            tracing::error!(saga = S::NAME, "a saga's work did not decode: dropped");
            return;
        };
        let runtime = self.runtime.clone();
        let saga = Arc::clone(&self.saga);
        tokio::spawn(async move {
            let steps = S::steps(&data);
            let outcome = match run.work {
                Work::Act(n) | Work::Compensate(n) if n >= steps.len() => {
                    Outcome::Retry(format!("no step {n}"))
                }
                Work::Act(n) => {
                    let key = super::step_key(&id, &steps[n].name);
                    saga.act(&runtime, &id, &data, n, &key).await
                }
                Work::Compensate(n) => {
                    let key = super::step_key(&id, &steps[n].name);
                    saga.compensate(&runtime, &id, &data, n, &key).await
                }
            };
            tracing::debug!(saga = S::NAME, %id, work = ?run.work, attempt = run.attempt, ?outcome, "saga work done");
            let report = Report {
                work: run.work,
                attempt: run.attempt,
                outcome,
            };
            let instance = runtime
                .entity::<SagaEntity<S>>(id.clone())
                .with_timeout(REPORT_TIMEOUT);
            if let Err(e) = instance.ask(report).await {
                // The watchdog sends the work again.
                tracing::debug!(saga = S::NAME, %id, error = %e, "a saga report was not taken");
            }
        });
    }
}

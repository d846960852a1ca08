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
        // The step's span, a child of this message's: what the step asks joins the trace.
        let traced =
            crate::telemetry::Span::child_of_current(crate::telemetry::Kind::Internal, || {
                step_span::<S>(&data, &run)
            });
        let (context, span) = traced.unzip();
        let work = async move {
            let mut span = span.unwrap_or_default();
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
            span.set("troupe.saga.outcome", outcome_name(&outcome));
            if let Outcome::Retry(why) = &outcome {
                span.fail(why);
            }
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
            drop(span);
        };
        match context {
            Some(context) => tokio::spawn(crate::telemetry::scope(context, work)),
            None => tokio::spawn(work),
        };
    }
}

/// The name and attributes of a step's span.
fn step_span<S: Saga>(
    data: &S::Data,
    run: &Run,
) -> (
    std::borrow::Cow<'static, str>,
    Vec<crate::telemetry::KeyValue>,
) {
    use crate::telemetry::KeyValue;
    let (work, n) = match run.work {
        Work::Act(n) => ("act", n),
        Work::Compensate(n) => ("compensate", n),
    };
    let step = S::steps(data)
        .get(n)
        .map_or_else(|| format!("step {n}"), |s| s.name.clone());
    (
        // The step's kind in the name (`reserve`, not `reserve:<product id>`): span names
        // are for grouping; the step itself is an attribute.
        format!("saga {} {work} {}", S::NAME, crate::metrics::kind(&step)).into(),
        vec![
            KeyValue::new("troupe.saga.type", S::NAME),
            KeyValue::new("troupe.saga.step", step),
            KeyValue::new("troupe.saga.step_index", n as i64),
            KeyValue::new("troupe.saga.work", work),
            KeyValue::new("troupe.saga.attempt", i64::from(run.attempt)),
        ],
    )
}

fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Done => "done",
        Outcome::Refused(_) => "refused",
        Outcome::Retry(_) => "retry",
    }
}

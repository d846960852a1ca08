//! Supervision with restart strategies, which ractor leaves to us.
//!
//! # The model (Erlang/OTP's, with Akka's backoff)
//!
//! A [`Supervisor`] owns a list of children, each described by a [`ChildSpec`] that knows how to
//! build the child again. When a child panics, returns an error from a handler, or is killed,
//! the supervisor decides with the pure function [`RestartPolicy::decide`]:
//!
//! - a child that had been running for at least `stable_after` is restarted **at once**: an
//!   occasional crash costs one spawn, not a backoff;
//! - a child that dies again soon after its restart is restarted after an exponential backoff
//!   with jitter (10 ms, 20 ms, … up to `max_backoff`), so a crash loop does not spin; a child
//!   killed from outside (failure injection) did not fail by itself and restarts at once;
//! - more than `max_restarts` restarts within `within` (across all children) means the
//!   supervisor cannot help: it **gives up**. What that means is the supervisor's
//!   [`OnGiveUp`]: by default it stops its children and fails, which **escalates** to its own
//!   supervisor; a supervisor with no parent (a service's root) instead **cools down**: it
//!   stops its children, waits (5 s, then longer after each give-up in a row, up to 30 s for a
//!   service), and starts them all again, so that no storm of failures removes a service from a
//!   node for good. Observers are told of both, so that readiness can report a service that is
//!   cooling down.
//!
//! With [`Strategy::OneForOne`] only the dead child is restarted; with [`Strategy::OneForAll`]
//! its siblings are stopped and every child is started again in order.
//!
//! Messages in a child's mailbox when it dies are dropped with it. A caller waiting on a reply
//! sees its reply channel close at once and gets a retryable error; a sender that tries the dead
//! child before the registry forgets it gets its message back and can try another member. One-way
//! messages already queued are lost: they are at-most-once by nature.
//!
//! Every restart is published as a [`SupervisorEvent`] (with the time it took) to an optional
//! [`SupervisorObserver`], which is also told when each child starts and stops so that a registry
//! can follow the live children.

mod cooling;
mod policy;
mod spec;

use std::collections::VecDeque;
use std::fmt;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};
use tokio::time::{Duration, Instant};

pub use cooling::{CoolingDown, CoolingObserver};
pub use policy::{Decision, RestartPolicy};
pub use spec::{
    ChildInfo, ChildSpec, OnGiveUp, StartFuture, Strategy, SupervisorArgs, SupervisorEvent,
    SupervisorMsg, SupervisorObserver,
};

/// The exit reason ractor gives an actor that was killed.
const KILLED: &str = "killed";

/// The supervisor actor.
#[derive(Debug, Default)]
pub struct Supervisor;

struct Child {
    spec: ChildSpec,
    cell: Option<ActorCell>,
    started_at: Instant,
    /// Consecutive deaths shortly after a start: the backoff exponent.
    num_rapid_failures: u32,
    /// Bumped at every death, so that a stale `Restart` message is ignored.
    generation: u64,
    num_restarts: u64,
}

/// The supervisor's state.
pub struct SupervisorState {
    args: SupervisorArgs,
    children: Vec<Child>,
    recent_restarts: VecDeque<Instant>,
    /// Give-ups so far, to match a `Resume` to the give-up it ends.
    num_give_ups: u64,
    /// Give-ups in a row: the cool-down's backoff exponent.
    num_recent_give_ups: u32,
    /// When the children were last resumed after a cool-down.
    resumed_at: Option<Instant>,
}

impl fmt::Debug for SupervisorState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorState")
            .field("name", &self.args.name)
            .finish_non_exhaustive()
    }
}

impl SupervisorState {
    fn index_of(&self, cell: &ActorCell) -> Option<usize> {
        let id = cell.get_id();
        self.children
            .iter()
            .position(|c| c.cell.as_ref().is_some_and(|c| c.get_id() == id))
    }

    fn emit(&self, event: SupervisorEvent) {
        match &event {
            SupervisorEvent::Restarted {
                child,
                reason,
                took,
                ..
            } => {
                tracing::info!(supervisor = %self.args.name, child = %child, reason = %reason, took_us = took.as_micros() as u64, "child restarted");
            }
            SupervisorEvent::StartFailed { child, error, .. } => {
                tracing::warn!(supervisor = %self.args.name, child = %child, error = %error, "child failed to start");
            }
            SupervisorEvent::Escalated { restarts, .. } => {
                tracing::error!(supervisor = %self.args.name, restarts, "restart intensity exceeded: escalating");
            }
            SupervisorEvent::CoolingDown {
                restarts, pause, ..
            } => {
                tracing::error!(supervisor = %self.args.name, restarts, pause_ms = pause.as_millis() as u64, "restart intensity exceeded: cooling down before starting again");
            }
        }
        if let Some(observer) = &self.args.observer {
            observer.event(&event);
        }
    }

    async fn start_child(&mut self, index: usize, myself: &ActorCell) -> Result<(), SpawnErr> {
        let child = &mut self.children[index];
        let cell = (child.spec.start)(myself.clone()).await?;
        child.cell = Some(cell.clone());
        child.started_at = Instant::now();
        if let Some(observer) = &self.args.observer {
            observer.child_started(index, &child.spec.name, &cell);
        }
        Ok(())
    }

    /// Marks child `index` dead; returns whether it was running.
    fn forget(&mut self, index: usize) -> bool {
        let child = &mut self.children[index];
        child.generation += 1;
        match child.cell.take() {
            Some(cell) => {
                if let Some(observer) = &self.args.observer {
                    observer.child_stopped(index, &child.spec.name, &cell);
                }
                true
            }
            None => false,
        }
    }

    async fn on_death(
        &mut self,
        index: usize,
        reason: String,
        myself: &ActorRef<SupervisorMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let now = Instant::now();
        // A child killed from outside (`kill`, as failure injection does) did not fail by
        // itself: it restarts at once, as if it had been stable. It still counts towards the
        // restart intensity.
        let lived = if reason == KILLED {
            Duration::MAX
        } else {
            now.saturating_duration_since(self.children[index].started_at)
        };
        self.forget(index);
        let decision = self.args.policy.decide(
            &mut self.recent_restarts,
            &mut self.children[index].num_rapid_failures,
            lived,
            now,
            rand::random::<f64>(),
        );
        let backoff = match decision {
            Decision::Restart { after } => after,
            Decision::Escalate => {
                let restarts = self.recent_restarts.len();
                if let OnGiveUp::CoolDown(backoff) = self.args.on_give_up {
                    self.cool_down(backoff, restarts, now, myself).await;
                    return Ok(());
                }
                self.emit(SupervisorEvent::Escalated {
                    supervisor: self.args.name.clone(),
                    restarts,
                });
                self.stop_children().await;
                return Err(format!(
                    "supervisor {} gave up after {restarts} restarts within {:?}",
                    self.args.name, self.args.policy.within
                )
                .into());
            }
        };
        let indices: Vec<usize> = match self.args.strategy {
            Strategy::OneForOne => vec![index],
            Strategy::OneForAll => {
                for (i, child) in self.children.iter_mut().enumerate() {
                    if i != index {
                        child.generation += 1;
                    }
                }
                for i in 0..self.children.len() {
                    if i == index {
                        continue;
                    }
                    if let Some(cell) = self.children[i].cell.clone() {
                        self.forget(i);
                        let _ = cell
                            .stop_and_wait(
                                Some("sibling died".into()),
                                Some(Duration::from_secs(5)),
                            )
                            .await;
                    }
                }
                (0..self.children.len()).collect()
            }
        };
        for i in indices {
            let generation = self.children[i].generation;
            let msg = SupervisorMsg::Restart {
                index: i,
                generation,
                died_at: now,
                reason: reason.clone(),
                backoff,
            };
            if backoff.is_zero() {
                self.restart(msg, myself).await;
            } else {
                myself.send_after(backoff, move || msg);
            }
        }
        Ok(())
    }

    async fn restart(&mut self, msg: SupervisorMsg, myself: &ActorRef<SupervisorMsg>) {
        let SupervisorMsg::Restart {
            index,
            generation,
            died_at,
            reason,
            backoff,
        } = msg
        else {
            return;
        };
        let Some(child) = self.children.get(index) else {
            return;
        };
        if child.generation != generation || child.cell.is_some() {
            return;
        }
        match self.start_child(index, &myself.get_cell()).await {
            Ok(()) => {
                let child = &mut self.children[index];
                child.num_restarts += 1;
                self.emit(SupervisorEvent::Restarted {
                    supervisor: self.args.name.clone(),
                    child: self.children[index].spec.name.clone(),
                    reason,
                    backoff,
                    took: died_at.elapsed(),
                });
            }
            Err(e) => {
                self.emit(SupervisorEvent::StartFailed {
                    supervisor: self.args.name.clone(),
                    child: self.children[index].spec.name.clone(),
                    error: e.to_string(),
                });
                // A failed start counts as a death of a child that never ran.
                let child = &mut self.children[index];
                child.started_at = Instant::now();
                let generation = child.generation;
                let delay = self.args.policy.backoff_after_rapid_failure(
                    &mut self.children[index].num_rapid_failures,
                    rand::random::<f64>(),
                );
                myself.send_after(delay, move || SupervisorMsg::Restart {
                    index,
                    generation,
                    died_at,
                    reason: format!("start failed: {e}"),
                    backoff: delay,
                });
            }
        }
    }

    async fn stop_children(&mut self) {
        for i in (0..self.children.len()).rev() {
            let cell = self.children[i].cell.clone();
            self.forget(i);
            if let Some(cell) = cell {
                let _ = cell
                    .stop_and_wait(
                        Some("supervisor stopping".into()),
                        Some(Duration::from_secs(10)),
                    )
                    .await;
            }
        }
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let now = Instant::now();
        let children = args
            .children
            .iter()
            .map(|spec| Child {
                spec: spec.clone(),
                cell: None,
                started_at: now,
                num_rapid_failures: 0,
                generation: 0,
                num_restarts: 0,
            })
            .collect();
        let mut state = SupervisorState {
            args,
            children,
            recent_restarts: VecDeque::new(),
            num_give_ups: 0,
            num_recent_give_ups: 0,
            resumed_at: None,
        };
        for index in 0..state.children.len() {
            if let Err(e) = state.start_child(index, &myself.get_cell()).await {
                state.stop_children().await;
                return Err(format!(
                    "supervisor {}: child {} failed to start: {e}",
                    state.args.name, state.children[index].spec.name
                )
                .into());
            }
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            restart @ SupervisorMsg::Restart { .. } => state.restart(restart, &myself).await,
            SupervisorMsg::Resume { give_up } => state.resume(give_up, &myself).await,
            SupervisorMsg::Children(reply) => {
                let children = state
                    .children
                    .iter()
                    .enumerate()
                    .map(|(index, c)| ChildInfo {
                        index,
                        name: c.spec.name.clone(),
                        cell: c.cell.clone(),
                        restarts: c.num_restarts,
                    })
                    .collect();
                let _ = reply.send(children);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, reason) = match event {
            SupervisionEvent::ActorTerminated(cell, last_state, reason) => {
                // ractor hands a stopped (or killed) child's state to its supervisor. Drop it
                // before restarting: it may hold what the successor needs (a keyspace claim),
                // and the restart below waits for the successor's start.
                drop(last_state);
                (cell, reason.unwrap_or_else(|| "stopped".into()))
            }
            SupervisionEvent::ActorFailed(cell, error) => (cell, format!("failed: {error}")),
            _ => return Ok(()),
        };
        match state.index_of(&cell) {
            Some(index) => state.on_death(index, reason, &myself).await,
            None => Ok(()),
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.stop_children().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests;

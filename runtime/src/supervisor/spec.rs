//! The supervisor's vocabulary: how a child is built, the strategy, what to do on giving up,
//! the events observers hear, and the supervisor's messages.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ractor::{ActorCell, RpcReplyPort, SpawnErr};
use ractor_cluster::RactorMessage;
use tokio::time::{Duration, Instant};

use super::RestartPolicy;
use crate::backoff::Backoff;

/// Which children restart when one dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Only the child that died.
    #[default]
    OneForOne,
    /// Every child: its siblings are stopped and all are started again in order.
    OneForAll,
}

/// The future a [`ChildSpec`] returns: the started child, linked to the supervisor it is given.
pub type StartFuture = Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>>;

/// What a supervisor does when its children restart more often than its policy allows.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum OnGiveUp {
    /// Stop the children and fail, which escalates to this supervisor's own supervisor.
    #[default]
    Escalate,
    /// Stop the children, wait, and start them all again: for a supervisor without a parent,
    /// so that giving up is never for good. The pause is `backoff.delay(n)` after the `n`-th
    /// give-up in a row; the count starts again once the children ran for the policy's
    /// `within` window without a give-up.
    CoolDown(Backoff),
}

/// How to (re)build one child: a function of the supervisor to link it to.
#[derive(Clone)]
pub struct ChildSpec {
    /// The child's name in logs, events and metrics (`echo/0`).
    pub name: String,
    pub(super) start: Arc<dyn Fn(ActorCell) -> StartFuture + Send + Sync>,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ChildSpec {
    /// A child named `name`, built by `start` (which must spawn it linked to the given cell).
    pub fn new(
        name: impl Into<String>,
        start: impl Fn(ActorCell) -> StartFuture + Send + Sync + 'static,
    ) -> Self {
        Self {
            name: name.into(),
            start: Arc::new(start),
        }
    }
}

/// What happened to a child, for observers.
#[derive(Debug, Clone)]
pub enum SupervisorEvent {
    /// A child died and was started again.
    Restarted {
        /// The supervisor's name.
        supervisor: String,
        /// The child's name.
        child: String,
        /// Why it died.
        reason: String,
        /// The backoff waited before restarting.
        backoff: Duration,
        /// From the death being noticed to the new child running, backoff included.
        took: Duration,
    },
    /// A child could not be started again: it will be retried after a backoff.
    StartFailed {
        /// The supervisor's name.
        supervisor: String,
        /// The child's name.
        child: String,
        /// The spawn error.
        error: String,
    },
    /// Too many restarts: the supervisor stopped its children and failed.
    Escalated {
        /// The supervisor's name.
        supervisor: String,
        /// Restarts counted in the window.
        restarts: usize,
    },
    /// Too many restarts: the supervisor stopped its children and starts them again after
    /// `pause` ([`OnGiveUp::CoolDown`]).
    CoolingDown {
        /// The supervisor's name.
        supervisor: String,
        /// Restarts counted in the window.
        restarts: usize,
        /// How long until the children start again.
        pause: Duration,
    },
}

/// Told of every child start and stop, and of every [`SupervisorEvent`].
pub trait SupervisorObserver: Send + Sync + 'static {
    /// A child (re)started.
    fn child_started(&self, index: usize, name: &str, cell: &ActorCell);
    /// A child stopped or died (before any restart).
    fn child_stopped(&self, index: usize, name: &str, cell: &ActorCell);
    /// A restart, a failed start or an escalation.
    fn event(&self, event: &SupervisorEvent);
}

/// Startup input of a [`Supervisor`](super::Supervisor).
pub struct SupervisorArgs {
    /// Its name in logs and events.
    pub name: String,
    /// The restart strategy.
    pub strategy: Strategy,
    /// The restart policy.
    pub policy: RestartPolicy,
    /// The children, started in order.
    pub children: Vec<ChildSpec>,
    /// Told of starts, stops and restarts.
    pub observer: Option<Arc<dyn SupervisorObserver>>,
    /// Escalate, or cool down, when the restart intensity is exceeded.
    pub on_give_up: OnGiveUp,
}

impl fmt::Debug for SupervisorArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorArgs")
            .field("name", &self.name)
            .field("strategy", &self.strategy)
            .field("children", &self.children)
            .field("on_give_up", &self.on_give_up)
            .finish_non_exhaustive()
    }
}

/// A live child, as reported by [`SupervisorMsg::Children`].
#[derive(Debug, Clone)]
pub struct ChildInfo {
    /// Its position in the supervisor's list.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// The running actor, if it is running (not waiting out a backoff).
    pub cell: Option<ActorCell>,
    /// How many times it was restarted.
    pub restarts: u64,
}

/// Messages to a [`Supervisor`](super::Supervisor).
#[derive(RactorMessage, Debug)]
pub enum SupervisorMsg {
    /// Start child `index` again (sent by the supervisor to itself after a backoff).
    Restart {
        /// The child.
        index: usize,
        /// Ignored unless it matches the child's generation (a newer death supersedes it).
        generation: u64,
        /// When the death was noticed, to measure the restart.
        died_at: Instant,
        /// Why it died.
        reason: String,
        /// The backoff that was waited.
        backoff: Duration,
    },
    /// Start every child again after a cool-down (sent by the supervisor to itself).
    Resume {
        /// Ignored unless it matches the supervisor's count of give-ups (a newer one wins).
        give_up: u64,
    },
    /// The children as they are now.
    Children(RpcReplyPort<Vec<ChildInfo>>),
}

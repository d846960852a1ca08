//! Cooling down: what a supervisor without a parent does instead of failing when its children
//! restart too often ([`OnGiveUp::CoolDown`](super::OnGiveUp::CoolDown)), and [`CoolingDown`],
//! the node's list of services that gave up and are waiting to start again, which readiness
//! reports.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ractor::{ActorCell, ActorRef};
use tokio::time::{Duration, Instant};

use super::{SupervisorEvent, SupervisorMsg, SupervisorObserver, SupervisorState};
use crate::backoff::Backoff;

impl SupervisorState {
    /// Gives up for a while: stops every child and schedules a [`SupervisorMsg::Resume`].
    pub(super) async fn cool_down(
        &mut self,
        backoff: Backoff,
        restarts: usize,
        now: Instant,
        myself: &ActorRef<SupervisorMsg>,
    ) {
        self.stop_children().await;
        let pause = cool_down_pause(
            &backoff,
            &mut self.num_recent_give_ups,
            self.resumed_at,
            self.args.policy.within,
            now,
            rand::random::<f64>(),
        );
        self.num_give_ups += 1;
        self.emit(SupervisorEvent::CoolingDown {
            supervisor: self.args.name.clone(),
            restarts,
            pause,
        });
        let give_up = self.num_give_ups;
        myself.send_after(pause, move || SupervisorMsg::Resume { give_up });
    }

    /// Starts every child again after a cool-down, with a fresh restart history.
    pub(super) async fn resume(&mut self, give_up: u64, myself: &ActorRef<SupervisorMsg>) {
        if give_up != self.num_give_ups {
            return;
        }
        let now = Instant::now();
        self.resumed_at = Some(now);
        self.recent_restarts.clear();
        for index in 0..self.children.len() {
            let child = &mut self.children[index];
            child.num_rapid_failures = 0;
            let msg = SupervisorMsg::Restart {
                index,
                generation: child.generation,
                died_at: now,
                reason: "resumed after a cool-down".into(),
                backoff: Duration::ZERO,
            };
            self.restart(msg, myself).await;
        }
    }
}

/// The pause of a cool-down at `now`: the next step of `backoff` after `num_recent_give_ups`
/// (counted here), from the first step again when the children ran for `within` since they
/// were last resumed (`resumed_at`). `unit` is a random draw for jitter.
pub(super) fn cool_down_pause(
    backoff: &Backoff,
    num_recent_give_ups: &mut u32,
    resumed_at: Option<Instant>,
    within: Duration,
    now: Instant,
    unit: f64,
) -> Duration {
    if resumed_at.is_some_and(|t| now.saturating_duration_since(t) >= within) {
        *num_recent_give_ups = 0;
    }
    let pause = backoff.delay(*num_recent_give_ups, unit);
    *num_recent_give_ups = num_recent_give_ups.saturating_add(1);
    pause
}

/// The services of this node whose root supervisor gave up and is cooling down.
#[derive(Debug, Default)]
pub struct CoolingDown {
    /// Service name -> (restarts that made it give up, when it starts again). A std `Mutex`:
    /// held only to copy or change an entry, never across an `.await`.
    services: Mutex<BTreeMap<String, (usize, Instant)>>,
}

impl CoolingDown {
    /// One line per service that is cooling down, naming it; empty when none is.
    pub fn reasons(&self) -> Vec<String> {
        let now = Instant::now();
        self.services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(service, (restarts, until))| {
                let left = until.saturating_duration_since(now);
                let when = if left.is_zero() {
                    "is starting again".to_string()
                } else {
                    format!("starts again in {:.1} s", left.as_secs_f64())
                };
                format!(
                    "service {service} stopped on this node after restarting too often \
                     ({restarts} restarts of its supervisor) and {when}"
                )
            })
            .collect()
    }

    fn set(&self, service: &str, restarts: usize, pause: Duration) {
        self.services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(service.to_string(), (restarts, Instant::now() + pause));
    }

    fn clear(&self, service: &str) {
        self.services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(service);
    }
}

/// Observes a service's root supervisor: records its cool-downs in a [`CoolingDown`] until its
/// children start again.
#[derive(Debug)]
pub struct CoolingObserver {
    service: String,
    cooling: Arc<CoolingDown>,
}

impl CoolingObserver {
    /// An observer for the root supervisor of `service`.
    pub fn new(service: impl Into<String>, cooling: Arc<CoolingDown>) -> Self {
        Self {
            service: service.into(),
            cooling,
        }
    }
}

impl SupervisorObserver for CoolingObserver {
    fn child_started(&self, _index: usize, _name: &str, _cell: &ActorCell) {
        self.cooling.clear(&self.service);
    }

    fn child_stopped(&self, _index: usize, _name: &str, _cell: &ActorCell) {}

    fn event(&self, event: &SupervisorEvent) {
        if let SupervisorEvent::CoolingDown {
            restarts, pause, ..
        } = event
        {
            self.cooling.set(&self.service, *restarts, *pause);
        }
    }
}

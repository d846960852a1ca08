//! `troupe.system`: the built-in service every node hosts, for operations that must run on a
//! given node, such as killing a member there for failure injection.
//!
//! Kills are rate-limited per node, on the node whose members die (whichever node the request
//! came through): at most [`KILLS_PER_SECOND`] per second, with bursts of as many. That is
//! chaos enough for any failure test (each kill is a restart), and it keeps a storm of
//! requests from turning failure injection into a denial of service. Beyond the rate a kill
//! is refused, not queued, and the caller is told when a kill will be taken again.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};

use crate::registry::Registry;
use crate::service::{CallError, MemberInfo, RequestContext, Service, ServiceError};

/// The most chaos kills a node takes per second (and in one burst).
pub const KILLS_PER_SECOND: u32 = 20;

/// Why a kill was not done.
#[derive(Debug, thiserror::Error)]
pub enum KillError {
    /// The node could not be asked.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The node took [`KILLS_PER_SECOND`] kills in the last second already.
    #[error(
        "node {node} takes at most {KILLS_PER_SECOND} chaos kills per second; retry in {} ms",
        retry_after.as_millis()
    )]
    RateLimited {
        /// The node.
        node: String,
        /// When it takes a kill again.
        retry_after: Duration,
    },
}

/// A rate limit of `per_second` with bursts of as many, as the generic cell rate algorithm
/// (a token bucket kept as one instant, in exact integer time). Time is an argument.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    /// The time between two events at the steady rate.
    interval: Duration,
    /// How far ahead of now `next` may run: a burst of `per_second`.
    tolerance: Duration,
    /// When the next event would be due if every event so far had come at the steady rate.
    next: Instant,
}

impl Bucket {
    pub(crate) fn new(per_second: u32, now: Instant) -> Self {
        let per_second = per_second.max(1);
        let interval = Duration::from_secs(1) / per_second;
        Self {
            interval,
            tolerance: interval * (per_second - 1),
            next: now,
        }
    }

    /// Takes one event, or says how long until one is allowed.
    pub(crate) fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let next = self.next.max(now);
        let ahead = next - now;
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        self.next = next + self.interval;
        Ok(())
    }
}

/// A member killed on purpose (failure injection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KilledMember {
    /// The service.
    pub service: String,
    /// The node it ran on.
    pub node: String,
    /// Its slot.
    pub index: u32,
    /// Its actor id (the restarted member gets a new one).
    pub pid: u64,
}

/// Node-local operations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum SystemRequest {
    /// Kill member `pid` of `service` on this node (or a random one), abruptly.
    Kill {
        /// The service.
        service: String,
        /// The member, or any.
        pid: Option<u64>,
    },
}

/// Answers to [`SystemRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum SystemResponse {
    /// The members killed (none if there was no such member).
    Killed(Vec<KilledMember>),
    /// Nothing was killed: over [`KILLS_PER_SECOND`]; a kill is taken again after this.
    RateLimited {
        /// Milliseconds until the next kill is taken.
        retry_after_ms: u64,
    },
}

/// The system service.
pub(crate) struct System {
    registry: Arc<Registry>,
}

impl System {
    pub(crate) fn new(registry: Arc<Registry>) -> Self {
        Self { registry }
    }
}

impl Service for System {
    const NAME: &'static str = "troupe.system";
    type Request = SystemRequest;
    type Response = SystemResponse;
    /// The kill rate limiter (one member per node, so one per node).
    type State = Bucket;

    async fn init(&self, _member: &MemberInfo) -> Result<Bucket, ServiceError> {
        Ok(Bucket::new(KILLS_PER_SECOND, Instant::now()))
    }

    async fn handle(
        &self,
        kills: &mut Bucket,
        request: SystemRequest,
        _cx: &RequestContext<'_>,
    ) -> SystemResponse {
        match request {
            SystemRequest::Kill { service, pid } => {
                if let Err(wait) = kills.take(Instant::now()) {
                    tracing::warn!(service = %service, retry_after_ms = wait.as_millis() as u64, "chaos kill refused: over the rate");
                    return SystemResponse::RateLimited {
                        retry_after_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1),
                    };
                }
                let members = self.registry.local_cells(&service);
                let chosen = match pid {
                    Some(pid) => members.into_iter().find(|(slot, _)| slot.pid == pid),
                    None if members.is_empty() => None,
                    None => {
                        let i = rand::random_range(0..members.len());
                        members.into_iter().nth(i)
                    }
                };
                let Some((slot, cell)) = chosen else {
                    return SystemResponse::Killed(Vec::new());
                };
                tracing::warn!(service = %service, index = slot.index, pid = slot.pid, "killing a member on request (failure injection)");
                cell.kill();
                ::metrics::counter!(crate::metrics::CHAOS_KILLS, "service" => service.clone())
                    .increment(1);
                SystemResponse::Killed(vec![KilledMember {
                    service,
                    node: self.registry.node().to_string(),
                    index: slot.index,
                    pid: slot.pid,
                }])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn the_bucket_takes_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = Bucket::new(20, start);
        for _ in 0..20 {
            assert_eq!(bucket.take(start), Ok(()));
        }
        let wait = bucket.take(start).unwrap_err();
        assert_eq!(wait, ms(50), "one token every 50 ms");
        assert!(bucket.take(start + ms(49)).is_err());
        assert_eq!(bucket.take(start + ms(50)), Ok(()));
        // A second later it holds a full burst again, and no more.
        let later = start + Duration::from_secs(10);
        let taken = (0..100).filter(|_| bucket.take(later).is_ok()).count();
        assert_eq!(taken, 20);
    }
}

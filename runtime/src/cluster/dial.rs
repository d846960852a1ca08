//! Dialling the peers this node is responsible for: when to dial, and how long to wait after a
//! failure, as plain data over time; plus the task that does one dial.
//!
//! A dial has two phases with their own deadlines: the TCP connect
//! ([`ReconnectSettings::connect_timeout`]) and the authentication that follows
//! ([`ReconnectSettings::dial_timeout`] for the whole dial). A connect that times out means the
//! peer's host does not answer at all, as behind a network partition; since the timeout itself
//! already spaced the attempts, the next dial starts after the shortest backoff rather than a
//! growing one, so that a healed partition is noticed within about one connect timeout. A
//! refused or failed dial backs off exponentially, as a peer that is down needs no hurry.

use std::net::SocketAddr;

use ractor::ActorRef;
use ractor_cluster::NodeServerMessage;
use tokio::time::{Duration, Instant};

use super::NodeId;
use super::membership::MembershipMsg;
use super::settings::ReconnectSettings;
use crate::backoff::Backoff;

/// Where dialling a peer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dial {
    /// The peer dials us.
    TheirJob,
    /// Not connected: dial at `at`; `attempt` failures so far.
    Due { at: Instant, attempt: u32 },
    /// A dial started at `since` and has not authenticated or failed yet.
    InFlight { since: Instant, attempt: u32 },
    /// An authenticated session is open.
    Connected,
}

/// How a dial failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The TCP connect did not complete in time: the peer's host does not answer.
    Unanswered,
    /// Anything else: refused, reset, closed before authenticating, too slow to authenticate.
    Failed,
}

impl Dial {
    /// The first state: due at once if this node dials the peer.
    pub(crate) fn initial(we_dial: bool, now: Instant) -> Self {
        if we_dial {
            Self::Due {
                at: now,
                attempt: 0,
            }
        } else {
            Self::TheirJob
        }
    }

    /// If a dial is due at `now`, marks it in flight and returns its attempt number.
    pub(crate) fn start_if_due(&mut self, now: Instant) -> Option<u32> {
        match *self {
            Self::Due { at, attempt } if at <= now => {
                *self = Self::InFlight {
                    since: now,
                    attempt,
                };
                Some(attempt)
            }
            _ => None,
        }
    }

    /// If the dial in flight has not authenticated within `dial_timeout`, counts it as failed
    /// and returns its attempt number.
    pub(crate) fn give_up_if_stuck(
        &mut self,
        now: Instant,
        reconnect: &ReconnectSettings,
        backoff: &Backoff,
        unit: f64,
    ) -> Option<u32> {
        match *self {
            Self::InFlight { since, attempt }
                if now.saturating_duration_since(since) >= reconnect.dial_timeout =>
            {
                self.failed(now, Failure::Failed, backoff, unit);
                Some(attempt)
            }
            _ => None,
        }
    }

    /// The dial in flight failed at `now`: schedules the next one and returns its delay and
    /// the failed attempt's number (None if no dial was in flight).
    pub(crate) fn failed(
        &mut self,
        now: Instant,
        failure: Failure,
        backoff: &Backoff,
        unit: f64,
    ) -> Option<(Duration, u32)> {
        let Self::InFlight { attempt, .. } = *self else {
            return None;
        };
        let delay = match failure {
            Failure::Unanswered => backoff.delay(0, unit),
            Failure::Failed => backoff.delay(attempt, unit),
        };
        *self = Self::Due {
            at: now + delay,
            attempt: attempt.saturating_add(1),
        };
        Some((delay, attempt))
    }

    /// A session with the peer authenticated.
    pub(crate) fn connected(&mut self) {
        if *self != Self::TheirJob {
            *self = Self::Connected;
        }
    }

    /// The last session with the peer closed at `now`: dial again after the shortest delay. A
    /// dial already due or in flight (one that replaces a session given up for silence) stays
    /// as it is.
    pub(crate) fn session_lost(&mut self, now: Instant, backoff: &Backoff, unit: f64) {
        if *self == Self::Connected {
            *self = Self::Due {
                at: now + backoff.delay(0, unit),
                attempt: 1,
            };
        }
    }

    /// The peer was heard from some other way at `now`: a dial waiting out its backoff starts
    /// at once. Returns whether it was brought forward.
    pub(crate) fn peer_heard(&mut self, now: Instant) -> bool {
        match self {
            Self::Due { at, .. } if *at > now => {
                *at = now;
                true
            }
            _ => false,
        }
    }

    /// Whether a dial is in flight (to match a session that closed before authenticating).
    pub(crate) fn in_flight(&self) -> bool {
        matches!(self, Self::InFlight { .. })
    }
}

/// Dials `addr` in the background: a TCP connect bounded by `connect_timeout`, then
/// `ractor_cluster`'s handshake, which reports through session events. A failure before any
/// session exists is reported to `membership`.
pub(crate) fn spawn_dial(
    server: ActorRef<NodeServerMessage>,
    membership: ActorRef<MembershipMsg>,
    peer: NodeId,
    addr: SocketAddr,
    connect_timeout: Duration,
) {
    tokio::spawn(async move {
        let result = tokio::time::timeout(
            connect_timeout,
            ractor_cluster::client_connect(&server, addr),
        )
        .await;
        let (failure, error) = match result {
            Ok(Ok(())) => return,
            Ok(Err(e)) => (Failure::Failed, e.to_string()),
            Err(_) => (Failure::Unanswered, "connect timed out".to_string()),
        };
        let _ = membership.cast(MembershipMsg::DialFailed {
            peer,
            failure,
            error,
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn settings() -> (ReconnectSettings, Backoff) {
        let reconnect = ReconnectSettings::default();
        let backoff = Backoff::new(reconnect.min_backoff, reconnect.max_backoff, 0.2);
        (reconnect, backoff)
    }

    /// Drives one peer's dialling through a network partition from `t0` to `t0 + partition`,
    /// on a paused clock: every dial started while the partition lasts goes unanswered and
    /// times out after `connect_timeout`; the first dial started after it heals connects.
    /// Returns how long after the heal that dial started. `unit` is the jitter draw.
    async fn heal_after(partition: Duration, unit: f64) -> Duration {
        let (reconnect, backoff) = settings();
        let t0 = Instant::now();
        let healed = t0 + partition;
        // Connected before the partition; the session is lost at its start (the failure
        // detector closes a silent session), which is the worst case for the backoff.
        let mut dial = Dial::initial(true, t0);
        dial.start_if_due(t0);
        dial.connected();
        dial.session_lost(t0, &backoff, unit);
        loop {
            let Dial::Due { at, .. } = dial else {
                panic!("not due: {dial:?}");
            };
            tokio::time::sleep_until(at).await;
            let now = Instant::now();
            assert_eq!(dial.start_if_due(now).map(|_| ()), Some(()));
            if now >= healed {
                return now - healed;
            }
            // Unanswered: the connect times out, unless the partition heals first (a SYN lost
            // in the partition is not retransmitted before the timeout).
            tokio::time::sleep(reconnect.connect_timeout).await;
            let now = Instant::now();
            assert_eq!(dial.give_up_if_stuck(now, &reconnect, &backoff, unit), None);
            dial.failed(now, Failure::Unanswered, &backoff, unit);
        }
    }

    /// A dial into a partition no longer holds up the next one for 3 s: whatever the
    /// partition's length and the jitter, a new dial starts within connect timeout plus the
    /// shortest backoff (with its jitter) of the heal, well inside the 2 s target.
    #[tokio::test(start_paused = true)]
    async fn a_healed_partition_is_dialled_within_one_connect_timeout() {
        let (reconnect, backoff) = settings();
        let bound = reconnect.connect_timeout + backoff.delay(0, 1.0);
        assert!(bound <= ms(560), "{bound:?}");
        let mut worst = Duration::ZERO;
        for partition_ms in (0..7000).step_by(37) {
            for unit in [0.0, 0.5, 1.0] {
                let late = heal_after(ms(partition_ms), unit).await;
                assert!(
                    late <= bound,
                    "partition {partition_ms} ms: dialled {late:?} after the heal"
                );
                worst = worst.max(late);
            }
        }
        assert!(
            worst > ms(400),
            "the simulation reaches the bound: {worst:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn refused_dials_back_off_and_stuck_ones_are_given_up() {
        let (reconnect, backoff) = settings();
        let t0 = Instant::now();
        let mut dial = Dial::initial(true, t0);
        let mut delays = Vec::new();
        for _ in 0..6 {
            let Dial::Due { at, .. } = dial else { panic!() };
            let now = at;
            dial.start_if_due(now).unwrap();
            delays.push(dial.failed(now, Failure::Failed, &backoff, 0.5).unwrap().0);
        }
        assert_eq!(
            delays,
            [ms(50), ms(100), ms(200), ms(400), ms(800), ms(1000)]
        );
        // A dial that connects but never authenticates is given up after dial_timeout.
        let Dial::Due { at, .. } = dial else { panic!() };
        dial.start_if_due(at).unwrap();
        assert_eq!(
            dial.give_up_if_stuck(
                at + reconnect.dial_timeout - ms(1),
                &reconnect,
                &backoff,
                0.5
            ),
            None
        );
        assert_eq!(
            dial.give_up_if_stuck(at + reconnect.dial_timeout, &reconnect, &backoff, 0.5),
            Some(6)
        );
        assert!(matches!(dial, Dial::Due { .. }));
        // Hearing from the peer brings the waiting dial forward.
        let now = at + reconnect.dial_timeout;
        assert!(dial.peer_heard(now));
        assert_eq!(dial.start_if_due(now), Some(7));
        assert!(!Dial::TheirJob.peer_heard(now));
        let mut theirs = Dial::initial(false, t0);
        theirs.connected();
        theirs.session_lost(now, &backoff, 0.5);
        assert_eq!(theirs, Dial::TheirJob);
    }
}

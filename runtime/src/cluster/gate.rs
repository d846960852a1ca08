//! The gate of the cluster port: which sessions have not authenticated yet, and which of them
//! to drop.
//!
//! `ractor_cluster` gives a session as long as it likes to authenticate and accepts any number
//! of unauthenticated sessions, each of which may buffer up to one frame. A stranger who opens
//! many connections and sends large frames slowly (or nothing at all) would hold that memory
//! for as long as it keeps them open. The gate bounds both: a session that has not
//! authenticated within [`AUTH_DEADLINE`] is dropped, and when more than
//! [`MAX_UNAUTHENTICATED`] incoming sessions wait at once, the oldest is dropped. Dropping the
//! oldest rather than refusing the newest keeps the door open for real peers, whose handshake
//! takes milliseconds: an attacker would have to open more than the cap within that time to
//! push one out, and the dialling peer then simply tries again.
//!
//! The gate is plain data driven by the membership actor, which sees every session open,
//! authenticate and close, and which does the dropping (killing the session actor closes its
//! socket and frees its buffer).

use tokio::time::{Duration, Instant};

/// How long a session may take to authenticate. A real peer needs a few round trips, a few
/// milliseconds on a LAN; the rest is room for a busy machine.
pub(crate) const AUTH_DEADLINE: Duration = Duration::from_secs(2);

/// How many incoming sessions may be unauthenticated at once. Each buffers at most one frame
/// (see [`super::pulse::MAX_FRAME_BYTES`]): 16 of them hold at most 16 MiB.
pub(crate) const MAX_UNAUTHENTICATED: usize = 16;

/// Why the gate drops a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// It did not authenticate within the deadline.
    Deadline,
    /// Too many incoming sessions were unauthenticated at once and it was the oldest.
    Crowded,
}

impl DropReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Deadline => "not authenticated within the deadline",
            Self::Crowded => "too many unauthenticated connections",
        }
    }
}

struct Waiting<K, V> {
    key: K,
    value: V,
    since: Instant,
    incoming: bool,
}

/// Sessions waiting to authenticate, oldest first.
pub(crate) struct Gate<K, V> {
    waiting: Vec<Waiting<K, V>>,
    deadline: Duration,
    max_incoming: usize,
}

impl<K: PartialEq, V> Gate<K, V> {
    /// A gate with the given deadline and cap on incoming sessions.
    pub(crate) fn new(deadline: Duration, max_incoming: usize) -> Self {
        Self {
            waiting: Vec::new(),
            deadline,
            max_incoming,
        }
    }

    /// A session opened at `now`. Returns the sessions to drop because there are now too many
    /// incoming ones waiting (the oldest first; outgoing ones, our own dials, never count).
    pub(crate) fn opened(
        &mut self,
        key: K,
        value: V,
        incoming: bool,
        now: Instant,
    ) -> Vec<(V, DropReason)> {
        self.waiting.push(Waiting {
            key,
            value,
            since: now,
            incoming,
        });
        let mut dropped = Vec::new();
        while self.waiting.iter().filter(|w| w.incoming).count() > self.max_incoming {
            if let Some(oldest) = self.waiting.iter().position(|w| w.incoming) {
                dropped.push((self.waiting.remove(oldest).value, DropReason::Crowded));
            }
        }
        dropped
    }

    /// The session authenticated or closed: it no longer waits. Returns whether it did.
    pub(crate) fn settled(&mut self, key: &K) -> bool {
        let before = self.waiting.len();
        self.waiting.retain(|w| w.key != *key);
        self.waiting.len() != before
    }

    /// The sessions whose deadline has passed at `now`; they no longer wait.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<(V, DropReason)> {
        let deadline = self.deadline;
        let (late, on_time): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| now.saturating_duration_since(w.since) >= deadline);
        self.waiting = on_time;
        late.into_iter()
            .map(|w| (w.value, DropReason::Deadline))
            .collect()
    }

    /// How many sessions wait.
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_session_that_does_not_authenticate_in_time_is_dropped() {
        let t0 = Instant::now();
        let mut gate = Gate::new(ms(2000), 4);
        assert!(gate.opened(1, "a", true, t0).is_empty());
        assert!(gate.opened(2, "b", false, t0 + ms(500)).is_empty());
        assert!(gate.opened(3, "c", true, t0 + ms(600)).is_empty());
        assert!(gate.settled(&3), "authenticated");
        assert!(!gate.settled(&3));
        assert!(gate.expired(t0 + ms(1999)).is_empty());
        assert_eq!(gate.expired(t0 + ms(2000)), [("a", DropReason::Deadline)]);
        assert_eq!(gate.expired(t0 + ms(2500)), [("b", DropReason::Deadline)]);
        assert_eq!(gate.len(), 0);
    }

    #[test]
    fn too_many_incoming_sessions_push_out_the_oldest_and_dials_do_not_count() {
        let t0 = Instant::now();
        let mut gate = Gate::new(ms(2000), 2);
        assert!(gate.opened(0, 0, false, t0).is_empty(), "our own dial");
        assert!(gate.opened(1, 1, true, t0).is_empty());
        assert!(gate.opened(2, 2, true, t0 + ms(1)).is_empty());
        assert_eq!(
            gate.opened(3, 3, true, t0 + ms(2)),
            [(1, DropReason::Crowded)]
        );
        assert_eq!(gate.len(), 3);
        gate.settled(&2);
        assert!(gate.opened(4, 4, true, t0 + ms(3)).is_empty());
        assert_eq!(
            gate.expired(t0 + ms(2001)),
            [(0, DropReason::Deadline)],
            "the dial still has its deadline"
        );
    }
}

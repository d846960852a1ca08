//! The failure detector's judgement of one peer, as plain data and pure functions of time.
//!
//! A peer is judged from two signals: whether its session is open (a closed socket is certain
//! death) and when it was last heard from (silence is only suspicion until `down_after`).

use tokio::time::Instant;

use super::NodeStatus;
use super::settings::DetectorSettings;

/// What this node knows of one peer's health.
#[derive(Debug, Clone, Default)]
pub(crate) struct PeerHealth {
    /// Whether an authenticated session with the peer is open.
    session_up: bool,
    /// When the last heartbeat arrived over the current session.
    last_heard: Option<Instant>,
    /// The peer's incarnation from its last heartbeat.
    incarnation: Option<u64>,
    /// Whether the peer was ever up since this node started.
    ever_up: bool,
}

/// What a heartbeat told us beyond "alive".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Heard {
    /// The first heartbeat from this incarnation of the peer.
    NewIncarnation { previous: Option<u64> },
    /// Another heartbeat from the incarnation we know.
    Same,
    /// A heartbeat with no open session: ignored, the session event will follow.
    Ignored,
}

impl PeerHealth {
    /// An authenticated session with the peer opened. It is not up until it is heard from.
    pub(crate) fn session_opened(&mut self) {
        self.session_up = true;
        self.last_heard = None;
    }

    /// The session closed: the peer is down until a new session opens and it is heard from.
    pub(crate) fn session_closed(&mut self) {
        self.session_up = false;
        self.last_heard = None;
    }

    /// A heartbeat arrived at `now`.
    pub(crate) fn heard(&mut self, now: Instant, incarnation: u64) -> Heard {
        if !self.session_up {
            return Heard::Ignored;
        }
        self.last_heard = Some(now);
        let previous = self.incarnation.replace(incarnation);
        if previous == Some(incarnation) {
            Heard::Same
        } else {
            Heard::NewIncarnation { previous }
        }
    }

    /// The peer's status at `now`.
    pub(crate) fn assess(&self, now: Instant, settings: &DetectorSettings) -> NodeStatus {
        match (self.session_up, self.last_heard) {
            (true, Some(at)) => {
                let silence = now.saturating_duration_since(at);
                if silence < settings.suspect_after {
                    NodeStatus::Up
                } else if silence < settings.down_after {
                    NodeStatus::Suspect
                } else {
                    NodeStatus::Down
                }
            }
            _ => NodeStatus::Down,
        }
    }

    /// Records that the peer was judged up; returns whether this is the first time.
    pub(crate) fn mark_up(&mut self) -> bool {
        !std::mem::replace(&mut self.ever_up, true)
    }

    pub(crate) fn ever_up(&self) -> bool {
        self.ever_up
    }

    pub(crate) fn last_heard(&self) -> Option<Instant> {
        self.last_heard
    }

    pub(crate) fn incarnation(&self) -> Option<u64> {
        self.incarnation
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Duration;

    use super::*;

    fn settings() -> DetectorSettings {
        DetectorSettings {
            heartbeat_interval: Duration::from_millis(200),
            suspect_after: Duration::from_millis(1000),
            down_after: Duration::from_millis(2000),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn silence_turns_up_into_suspect_then_down() {
        let t0 = Instant::now();
        let s = settings();
        let mut p = PeerHealth::default();
        assert_eq!(p.assess(t0, &s), NodeStatus::Down, "never heard from");
        p.session_opened();
        assert_eq!(p.assess(t0, &s), NodeStatus::Down, "connected but silent");
        assert_eq!(p.heard(t0, 7), Heard::NewIncarnation { previous: None });
        assert_eq!(p.assess(t0 + ms(999), &s), NodeStatus::Up);
        assert_eq!(p.assess(t0 + ms(1000), &s), NodeStatus::Suspect);
        assert_eq!(p.assess(t0 + ms(1999), &s), NodeStatus::Suspect);
        assert_eq!(p.assess(t0 + ms(2000), &s), NodeStatus::Down);
        assert_eq!(p.heard(t0 + ms(5000), 7), Heard::Same);
        assert_eq!(
            p.assess(t0 + ms(5000), &s),
            NodeStatus::Up,
            "back after a freeze"
        );
    }

    #[test]
    fn a_closed_session_is_down_at_once_and_late_beats_do_not_revive_it() {
        let t0 = Instant::now();
        let s = settings();
        let mut p = PeerHealth::default();
        p.session_opened();
        p.heard(t0, 1);
        p.session_closed();
        assert_eq!(p.assess(t0, &s), NodeStatus::Down);
        assert_eq!(p.heard(t0 + ms(1), 1), Heard::Ignored);
        assert_eq!(p.assess(t0 + ms(1), &s), NodeStatus::Down);
    }

    #[test]
    fn a_restart_shows_as_a_new_incarnation() {
        let t0 = Instant::now();
        let mut p = PeerHealth::default();
        p.session_opened();
        p.heard(t0, 1);
        p.session_closed();
        p.session_opened();
        assert_eq!(
            p.heard(t0 + ms(10), 2),
            Heard::NewIncarnation { previous: Some(1) }
        );
        assert!(p.mark_up());
        assert!(!p.mark_up());
    }
}

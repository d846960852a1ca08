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
    /// When the current session authenticated.
    session_since: Option<Instant>,
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
    /// An authenticated session with the peer opened at `now`. It is not up until it is heard
    /// from.
    pub(crate) fn session_opened(&mut self, now: Instant) {
        self.session_up = true;
        self.session_since = Some(now);
        self.last_heard = None;
    }

    /// The session closed: the peer is down until a new session opens and it is heard from.
    pub(crate) fn session_closed(&mut self) {
        self.session_up = false;
        self.session_since = None;
        self.last_heard = None;
    }

    /// Whether the open session has carried nothing for `down_after`: since its last heartbeat,
    /// or since it opened if it never carried one. Such a session is closed and dialled afresh:
    /// a peer behind a partition, or one whose heartbeats never started flowing over this
    /// session, is not waited for forever.
    pub(crate) fn silent_session(&self, now: Instant, settings: &DetectorSettings) -> bool {
        match (self.session_up, self.last_heard.or(self.session_since)) {
            (true, Some(since)) => now.saturating_duration_since(since) >= settings.down_after,
            _ => false,
        }
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
        p.session_opened(t0);
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
        p.session_opened(t0);
        p.heard(t0, 1);
        p.session_closed();
        assert_eq!(p.assess(t0, &s), NodeStatus::Down);
        assert_eq!(p.heard(t0 + ms(1), 1), Heard::Ignored);
        assert_eq!(p.assess(t0 + ms(1), &s), NodeStatus::Down);
    }

    #[test]
    fn a_session_that_never_carries_a_beat_is_given_up_after_down_after() {
        let t0 = Instant::now();
        let s = settings();
        let mut p = PeerHealth::default();
        assert!(!p.silent_session(t0 + ms(10_000), &s), "no session");
        p.session_opened(t0);
        assert!(!p.silent_session(t0 + ms(1999), &s));
        assert!(p.silent_session(t0 + ms(2000), &s), "never heard over it");
        p.heard(t0 + ms(1500), 1);
        assert!(!p.silent_session(t0 + ms(3000), &s), "heard since");
        assert!(p.silent_session(t0 + ms(3500), &s), "silent since the beat");
        p.session_closed();
        assert!(!p.silent_session(t0 + ms(9000), &s), "closed");
    }

    #[test]
    fn a_restart_shows_as_a_new_incarnation() {
        let t0 = Instant::now();
        let mut p = PeerHealth::default();
        p.session_opened(t0);
        p.heard(t0, 1);
        p.session_closed();
        p.session_opened(t0);
        assert_eq!(
            p.heard(t0 + ms(10), 2),
            Heard::NewIncarnation { previous: Some(1) }
        );
        assert!(p.mark_up());
        assert!(!p.mark_up());
    }

    /// Properties over arbitrary sessions, heartbeats and silences.
    mod proptests {
        use proptest::prelude::*;

        use super::*;

        #[derive(Debug, Clone)]
        enum Event {
            Opened,
            Closed,
            Heard { incarnation: u64 },
        }

        fn events() -> impl Strategy<Value = Vec<(u64, Event)>> {
            let event = prop_oneof![
                1 => Just(Event::Opened),
                1 => Just(Event::Closed),
                4 => (0u64..3).prop_map(|incarnation| Event::Heard { incarnation }),
            ];
            prop::collection::vec((0u64..3000, event), 0..40)
        }

        fn severity(s: NodeStatus) -> u8 {
            match s {
                NodeStatus::Up => 0,
                NodeStatus::Suspect => 1,
                _ => 2,
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// A peer is up only over an open session heard from within `suspect_after`; with
            /// no news its status only worsens as time passes; a closed session is down.
            #[test]
            fn status_follows_the_session_and_the_silence(
                events in events(),
                suspect in 1u64..1500,
                more in 1u64..1500,
                probes in prop::collection::vec(0u64..5000, 1..10),
            ) {
                let s = DetectorSettings {
                    heartbeat_interval: ms(100),
                    suspect_after: ms(suspect),
                    down_after: ms(suspect + more),
                };
                let mut p = PeerHealth::default();
                let mut now = Instant::now();
                let mut open = false;
                let mut last: Option<Instant> = None;
                let mut since: Option<Instant> = None;
                for (gap, event) in events {
                    now += ms(gap);
                    match event {
                        Event::Opened => {
                            p.session_opened(now);
                            (open, last, since) = (true, None, Some(now));
                        }
                        Event::Closed => {
                            p.session_closed();
                            (open, last, since) = (false, None, None);
                        }
                        Event::Heard { incarnation } => {
                            let heard = p.heard(now, incarnation);
                            prop_assert_eq!(heard == Heard::Ignored, !open);
                            if open {
                                last = Some(now);
                            }
                        }
                    }
                    let mut probes = probes.clone();
                    probes.sort_unstable();
                    let mut worst = 0;
                    for probe in probes {
                        let at = now + ms(probe);
                        let status = p.assess(at, &s);
                        prop_assert!(severity(status) >= worst, "{:?} after worse", status);
                        worst = severity(status);
                        let silent = last.map(|l| at.duration_since(l));
                        match status {
                            NodeStatus::Up => prop_assert!(open && silent < Some(s.suspect_after)),
                            NodeStatus::Suspect => prop_assert!(open && silent < Some(s.down_after)),
                            _ => prop_assert!(!open || silent.is_none_or(|d| d >= s.down_after)),
                        }
                        // A session is given up only when it is open and has carried nothing
                        // for `down_after` (since it opened, if it never carried a beat).
                        let quiet = last.or(since).map(|l| at.duration_since(l));
                        prop_assert_eq!(
                            p.silent_session(at, &s),
                            open && quiet.is_some_and(|d| d >= s.down_after)
                        );
                    }
                }
            }
        }
    }
}

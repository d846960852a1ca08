//! Heartbeats: this node's, as peers pull it, and the peers', pulled over their own sessions
//! and bound to them (see [`crate::cluster::pulse`] for why they are pulled).

use ractor::{ActorId, ActorRef};
use tokio::time::Instant;

use super::{MembershipMsg, State};
use crate::cluster::NodeId;
use crate::cluster::detector::Heard;
use crate::cluster::gossip::MAX_PAYLOAD_BYTES;
use crate::cluster::pulse::{Beat, MAX_BEAT_BYTES, PULSE_GROUP, PULSE_SCOPE, PulseMsg};

/// Why a pulled heartbeat is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// The session it came over is no longer authenticated (it closed meanwhile).
    NoSession,
    /// It claims another node than the one its session authenticated as.
    Misbound,
}

/// Binds a heartbeat to its session: `session_peer` is the node the session it arrived over
/// authenticated as, `claimed` the node the heartbeat says it is from.
pub(super) fn bind(session_peer: Option<&NodeId>, claimed: &str) -> Result<(), Refused> {
    match session_peer {
        None => Err(Refused::NoSession),
        Some(peer) if peer.as_str() == claimed => Ok(()),
        Some(_) => Err(Refused::Misbound),
    }
}

impl State {
    /// Encodes this node's heartbeat afresh, for the peers' next pulls.
    pub(super) fn refresh_beat(&mut self, now: Instant) {
        self.seq += 1;
        self.last_beat_sent = Some(now);
        let payload = self.gossip.payload();
        let payload_len = payload.len();
        let beat = Beat {
            from: self.settings.self_id().to_string(),
            incarnation: self.incarnation,
            seq: self.seq,
            payload,
            store_bytes: self.store_bytes.as_ref().map(|f| f()),
        }
        .encode();
        // A payload within its bound always fits (see `gossip`); the whole beat is checked too.
        if payload_len > MAX_PAYLOAD_BYTES || beat.len() > MAX_BEAT_BYTES {
            // Peers would refuse it (and their cluster port would drop the connection): say so
            // once, and answer no pulls, so that peers see this node suspect rather than
            // silently out of date.
            if !std::mem::replace(&mut self.beat_too_large, true) {
                tracing::error!(
                    len = beat.len(),
                    payload_len,
                    max = MAX_BEAT_BYTES,
                    "heartbeat too large to send: its gossip payload is too large"
                );
            }
            self.beat.clear();
            return;
        }
        self.beat_too_large = false;
        self.beat = beat;
    }

    /// The pulse actors of connected peers (remote stand-ins, one per session).
    fn remote_pulses() -> Vec<ActorRef<PulseMsg>> {
        ractor::pg::get_scoped_members(&PULSE_SCOPE.to_string(), &PULSE_GROUP.to_string())
            .into_iter()
            .filter(|m| !m.get_id().is_local())
            .map(ActorRef::from)
            .collect()
    }

    /// Asks every connected peer for its heartbeat; each answer comes back as
    /// [`MembershipMsg::Pulled`], tagged with the session it came over.
    pub(super) fn pull_all(&mut self, myself: &ActorRef<MembershipMsg>) {
        // An answer later than `suspect_after` is no sign of life anyway.
        let timeout = self.settings.detector().suspect_after;
        let seq = self.seq;
        for pulse in Self::remote_pulses() {
            let ActorId::Remote { node_id, .. } = pulse.get_id() else {
                continue;
            };
            let myself = myself.clone();
            tokio::spawn(async move {
                // A closed session, a timeout or a dropped reply all mean silence, which the
                // failure detector judges.
                let Ok(ractor::rpc::CallResult::Success(bytes)) = pulse
                    .call(|reply| PulseMsg::Pull(seq, reply), Some(timeout))
                    .await
                else {
                    return;
                };
                let _ = myself.cast(MembershipMsg::Pulled {
                    session: node_id,
                    beat: Beat::decode(&bytes),
                    len: bytes.len(),
                });
            });
        }
    }

    /// Tells every connected peer that this node's gossip payload changed, so that they pull
    /// now.
    pub(super) fn poke_all(&self) {
        for pulse in Self::remote_pulses() {
            // A peer whose session is closing refuses the cast; its status follows from that.
            let _ = pulse.cast(PulseMsg::Poke(self.seq));
        }
    }

    /// A peer answered a pull over the session whose `ractor_cluster` node id is `session`.
    pub(super) fn on_pulled(&mut self, session: u64, beat: Option<Beat>, len: usize, now: Instant) {
        let Some(beat) = beat else {
            self.bad_beats += 1;
            tracing::warn!(
                len,
                total = self.bad_beats,
                "dropped a heartbeat that does not decode"
            );
            return;
        };
        let index = self
            .sessions
            .values()
            .find(|s| s.node == session)
            .map(|s| s.peer);
        let session_peer = index.map(|i| &self.peers[i].spec.id);
        match bind(session_peer, &beat.from) {
            Ok(()) => {}
            Err(Refused::NoSession) => return,
            Err(Refused::Misbound) => {
                self.num_misbound_beats += 1;
                tracing::warn!(
                    session_peer = ?session_peer,
                    claimed = %beat.from,
                    total = self.num_misbound_beats,
                    "dropped a heartbeat that claims another node than its session's"
                );
                return;
            }
        }
        let Some(index) = index else { return };
        let peer = &mut self.peers[index];
        let heard = peer.health.heard(now, beat.incarnation);
        if let Heard::NewIncarnation {
            previous: Some(previous),
        } = heard
        {
            tracing::info!(peer = %peer.spec.id, previous, incarnation = beat.incarnation, "peer restarted");
        }
        if heard != Heard::Ignored {
            peer.store_bytes = beat.store_bytes;
            self.gossip
                .peer_payload(&peer.spec.id, beat.incarnation, &beat.payload);
        }
        if self.peers[index].status != crate::cluster::NodeStatus::Up {
            self.judge(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_beat_is_accepted_only_from_the_node_its_session_authenticated_as() {
        let n2 = NodeId::try_new("n2").unwrap();
        assert_eq!(bind(Some(&n2), "n2"), Ok(()));
        assert_eq!(bind(Some(&n2), "n3"), Err(Refused::Misbound));
        assert_eq!(bind(Some(&n2), ""), Err(Refused::Misbound));
        assert_eq!(bind(None, "n2"), Err(Refused::NoSession));
    }
}

//! Sessions and dials: what the membership actor does when a session opens, authenticates or
//! closes, when a dial is due or fails, when an unauthenticated session outstays the gate, and
//! when the node server has a session whose events this actor missed.

use ractor::ActorRef;
use ractor_cluster::NodeServerMessage;
use ractor_cluster::node::NodeServerSessionInformation;
use tokio::time::{Duration, Instant};

use crate::cluster::NodeStatus;

use super::{MembershipMsg, Session, SessionChange, State, node_id_of};
use crate::cluster::dial::{Failure, spawn_dial};
use crate::cluster::gate::DropReason;

impl State {
    /// Starts every dial that is due and gives up those stuck authenticating.
    pub(super) fn dial_due(&mut self, now: Instant, myself: &ActorRef<MembershipMsg>) {
        let Some(server) = self.server.clone() else {
            return;
        };
        let reconnect = self.settings.reconnect();
        let backoff = self.settings.backoff();
        for peer in &mut self.peers {
            if let Some(attempt) = peer.dial.start_if_due(now) {
                tracing::debug!(peer = %peer.spec.id, addr = %peer.spec.cluster_addr, attempt, "dialling peer");
                spawn_dial(
                    server.clone(),
                    myself.clone(),
                    peer.spec.id.clone(),
                    peer.spec.cluster_addr,
                    reconnect.connect_timeout,
                );
            } else if let Some(attempt) =
                peer.dial
                    .give_up_if_stuck(now, &reconnect, &backoff, rand::random())
            {
                tracing::warn!(peer = %peer.spec.id, attempt, "dial did not authenticate in time");
            }
        }
    }

    pub(super) fn dial_failed(&mut self, index: usize, now: Instant, failure: Failure, why: &str) {
        let backoff = self.settings.backoff();
        let peer = &mut self.peers[index];
        let Some((delay, attempt)) = peer.dial.failed(now, failure, &backoff, rand::random())
        else {
            return;
        };
        // The first failures are normal while a cluster starts; repeat ones are worth a warning.
        let retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        if attempt >= 3 {
            tracing::warn!(peer = %peer.spec.id, attempt, reason = why, retry_in_ms, "cannot reach peer");
        } else {
            tracing::debug!(peer = %peer.spec.id, attempt, reason = why, retry_in_ms, "cannot reach peer yet");
        }
    }

    /// Another layer heard from the peer: a dial waiting out its backoff starts at once.
    pub(super) fn peer_heard(&mut self, index: usize, now: Instant) {
        let peer = &mut self.peers[index];
        if peer.dial.peer_heard(now) {
            tracing::debug!(peer = %peer.spec.id, "peer heard from: dialling now");
        }
    }

    /// Drops the unauthenticated sessions whose deadline has passed.
    pub(super) fn drop_late_sessions(&mut self, now: Instant) {
        let late = self.gate.expired(now);
        self.drop_sessions(late);
    }

    fn drop_sessions(
        &mut self,
        sessions: Vec<(
            ActorRef<ractor_cluster::node::NodeSessionMessage>,
            DropReason,
        )>,
    ) {
        for (session, reason) in sessions {
            self.num_gate_drops += 1;
            // Each entry goes when its session's close is reported; the bound only guards
            // against a close that never is.
            if self.gate_dropped.len() >= 4096 {
                self.gate_dropped.clear();
            }
            self.gate_dropped.insert(session.get_id());
            // Killing the session actor stops its reader mid-frame, which frees the frame's
            // buffer and closes the socket.
            session.kill();
            tracing::warn!(
                reason = reason.as_str(),
                total = self.num_gate_drops,
                waiting = self.gate.len(),
                "dropped an unauthenticated cluster connection"
            );
        }
    }

    pub(super) fn on_session(
        &mut self,
        change: SessionChange,
        info: NodeServerSessionInformation,
        now: Instant,
    ) {
        let session = info.actor.get_id();
        match change {
            SessionChange::Opened => {
                tracing::debug!(peer_addr = %info.peer_addr, incoming = info.is_server, "cluster connection opened");
                let crowded = self
                    .gate
                    .opened(session, info.actor.clone(), info.is_server, now);
                self.drop_sessions(crowded);
            }
            SessionChange::Authenticated => {
                self.gate.settled(&session);
                if self.sessions.contains_key(&session) {
                    // Known already (adopted from the server's list before its event came).
                    return;
                }
                let claimed = node_id_of(&info).unwrap_or("<unnamed>").to_string();
                let index = self
                    .peer_index(&claimed)
                    .filter(|_| claimed != self.settings.self_id().as_str());
                let Some(index) = index else {
                    tracing::warn!(peer_addr = %info.peer_addr, claimed_id = %claimed,
                        "refusing a node that is not in the cluster configuration");
                    info.actor.stop(Some("unknown node id".into()));
                    return;
                };
                self.sessions.insert(
                    session,
                    Session {
                        peer: index,
                        actor: info.actor.clone(),
                        node: info.node_id,
                    },
                );
                let peer = &mut self.peers[index];
                peer.num_sessions += 1;
                peer.health.session_opened(now);
                peer.dial.connected();
                tracing::info!(peer = %peer.spec.id, peer_addr = %info.peer_addr, incoming = info.is_server, "session authenticated");
            }
            SessionChange::Disconnected => {
                self.gate.settled(&session);
                let dropped_by_gate = self.gate_dropped.remove(&session);
                if let Some(Session { peer: index, .. }) = self.sessions.remove(&session) {
                    let backoff = self.settings.backoff();
                    let peer = &mut self.peers[index];
                    peer.num_sessions = peer.num_sessions.saturating_sub(1);
                    tracing::info!(peer = %peer.spec.id, remaining = peer.num_sessions, "session closed");
                    if peer.num_sessions == 0 {
                        peer.health.session_closed();
                        // An established session dropped: retry from the shortest delay.
                        peer.dial.session_lost(now, &backoff, rand::random());
                    }
                    self.judge(now);
                    return;
                }
                // Closed before authenticating: a wrong cookie, not a troupe node at all, or
                // dropped by the gate (already logged).
                let claimed = node_id_of(&info).map(str::to_string);
                if !dropped_by_gate {
                    tracing::warn!(peer_addr = %info.peer_addr, claimed_id = ?claimed, incoming = info.is_server,
                        "connection closed before authenticating (wrong cluster cookie?)");
                }
                if !info.is_server {
                    let dialled = self.peers.iter().position(|p| {
                        p.dial.in_flight()
                            && (p.spec.cluster_addr.to_string() == info.peer_addr
                                || claimed.as_deref() == Some(p.spec.id.as_str()))
                    });
                    if let Some(index) = dialled {
                        self.dial_failed(
                            index,
                            now,
                            Failure::Failed,
                            "closed before authenticating",
                        );
                    }
                }
            }
        }
    }
}

impl State {
    /// Adopts the authenticated sessions the node server has and this actor never heard of:
    /// a peer that connected between the server starting to listen and this actor
    /// subscribing to its events would otherwise stay down here forever, its session open
    /// (seen: a 3-node cluster that never formed, one node never hearing of the dialler's
    /// session).
    pub(super) fn adopt_sessions(
        &mut self,
        sessions: Vec<NodeServerSessionInformation>,
        now: Instant,
    ) {
        for info in sessions {
            if self.sessions.contains_key(&info.actor.get_id()) {
                continue;
            }
            tracing::warn!(peer_addr = %info.peer_addr, incoming = info.is_server,
                "adopting a session whose events were missed");
            self.on_session(SessionChange::Authenticated, info, now);
        }
    }
}

/// How often the node server's sessions are compared with the ones known here, while some
/// peer is not up.
const SESSION_CHECK: Duration = Duration::from_secs(1);

impl State {
    /// While a peer is not up, asks the node server now and then for its sessions, so that one
    /// whose events were missed is adopted ([`State::adopt_sessions`]).
    pub(super) fn check_server_sessions(&mut self, now: Instant, myself: &ActorRef<MembershipMsg>) {
        if self.peers.iter().all(|p| p.status == NodeStatus::Up)
            || self
                .last_session_check
                .is_some_and(|at| now.saturating_duration_since(at) < SESSION_CHECK)
        {
            return;
        }
        let Some(server) = self.server.clone() else {
            return;
        };
        self.last_session_check = Some(now);
        let myself = myself.clone();
        tokio::spawn(async move {
            if let Ok(sessions) = ractor::call_t!(server, NodeServerMessage::GetSessions, 1_000) {
                let _ = myself.cast(MembershipMsg::ServerSessions(
                    sessions.into_values().collect(),
                ));
            }
        });
    }
}

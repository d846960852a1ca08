//! The membership actor: owns the view of every peer, dials the peers this node is responsible
//! for, pulls and answers heartbeats, runs the failure detector on a tick and publishes every
//! change. It also guards the cluster port: it sees every session open and drops those that do
//! not authenticate in time ([`super::gate`]), and it closes a session whose peer fell silent,
//! so that a peer back from a network partition is reached over a fresh connection at once
//! rather than when TCP's retransmission backoff next tries the old one.

mod beats;
mod sessions;

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use ractor_cluster::node::{NodeServerSessionInformation, NodeSessionMessage};
use ractor_cluster::{NodeEventSubscription, NodeServerMessage, RactorMessage};
use tokio::sync::{broadcast, watch};
use tokio::time::{Duration, Instant};

use super::detector::PeerHealth;
use super::dial::{Dial, Failure};
use super::gate::{AUTH_DEADLINE, Gate, MAX_UNAUTHENTICATED};
use super::gossip::{Gossip, PayloadChanged};
use super::pulse::{Beat, Pulse, PulseMsg};
use super::{
    ClusterEvent, ClusterSettings, ClusterView, NodeId, NodeSpec, NodeStatus, PeerView, StoreSize,
};

/// The detector's resolution: statuses are re-judged and dials scheduled this often.
const TICK: Duration = Duration::from_millis(50);

/// How long a change of the gossip payload waits before it is sent, so that many changes in
/// quick succession (a service starting thousands of members) share one heartbeat.
const PAYLOAD_DELAY: Duration = Duration::from_millis(2);

pub(crate) struct Membership;

pub(crate) struct MembershipArgs {
    pub(crate) settings: ClusterSettings,
    pub(crate) gossip: Arc<dyn Gossip>,
    pub(crate) store_bytes: Option<StoreSize>,
    pub(crate) events: broadcast::Sender<ClusterEvent>,
    pub(crate) view: watch::Sender<ClusterView>,
}

/// A session change reported by the node server.
#[derive(Debug)]
pub(crate) enum SessionChange {
    Opened,
    Authenticated,
    Disconnected,
}

#[derive(RactorMessage)]
pub(crate) enum MembershipMsg {
    /// The node server is listening; dialling may start.
    ServerStarted(ActorRef<NodeServerMessage>),
    /// Time to send heartbeats, judge peers and dial.
    Tick,
    /// This node's gossip payload changed: send it soon rather than at the next heartbeat.
    PayloadChanged,
    /// Send the changed payload now (changes in quick succession share one heartbeat).
    SendPayload,
    /// A peer asks for this node's heartbeat.
    Pull(ractor::RpcReplyPort<Vec<u8>>),
    /// A peer's gossip payload changed: pull heartbeats now.
    PullNow,
    /// A peer answered a pull over the session `session` (`ractor_cluster`'s node id):
    /// its heartbeat, None if it did not decode (then `len` is its size).
    Pulled {
        session: u64,
        beat: Option<Beat>,
        len: usize,
    },
    /// A session opened, authenticated or closed.
    Session {
        change: SessionChange,
        info: NodeServerSessionInformation,
    },
    /// A dial failed before any session existed (connection refused, unreachable).
    DialFailed {
        peer: NodeId,
        failure: Failure,
        error: String,
    },
    /// Another layer heard from `peer`: a dial waiting out its backoff starts now.
    PeerHeard(NodeId),
    /// The node server's authenticated sessions, to adopt any whose events were missed.
    ServerSessions(Vec<NodeServerSessionInformation>),
}

struct Peer {
    spec: NodeSpec,
    /// What its last heartbeat said of its store.
    store_bytes: Option<u64>,
    health: PeerHealth,
    status: NodeStatus,
    dial: Dial,
    /// Authenticated sessions with this peer (normally zero or one).
    num_sessions: usize,
}

/// An authenticated session.
struct Session {
    /// The peer it authenticated as (an index into `peers`).
    peer: usize,
    /// The session actor, to close it when the peer falls silent.
    actor: ActorRef<NodeSessionMessage>,
    /// `ractor_cluster`'s node id of the session: remote actors reached over it carry it.
    node: u64,
}

pub(crate) struct State {
    settings: ClusterSettings,
    /// What heartbeats carry for the modules above (see [`super::gossip`]).
    gossip: Arc<dyn Gossip>,
    store_bytes: Option<StoreSize>,
    incarnation: u64,
    seq: u64,
    server: Option<ActorRef<NodeServerMessage>>,
    pulse: ActorRef<PulseMsg>,
    peers: Vec<Peer>,
    /// Authenticated sessions: the peer's index and the session, to close it when the peer
    /// falls silent.
    sessions: HashMap<ActorId, Session>,
    /// Sessions that have not authenticated yet.
    gate: Gate<ActorId, ActorRef<NodeSessionMessage>>,
    /// Sessions the gate dropped, so that their closing is not mistaken for a refusal.
    gate_dropped: std::collections::HashSet<ActorId>,
    /// How many unauthenticated sessions the gate dropped since start.
    num_gate_drops: u64,
    /// This node's latest heartbeat, encoded, as peers pull it (empty if too large to send).
    beat: Vec<u8>,
    /// Whether the last heartbeat was too large to send (logged once per episode).
    beat_too_large: bool,
    /// Heartbeats refused because they claimed another node than their session's.
    num_misbound_beats: u64,
    last_beat_sent: Option<Instant>,
    /// When the node server's sessions were last compared with the ones known here.
    last_session_check: Option<Instant>,
    /// A payload change waits to be sent (see [`PAYLOAD_DELAY`]).
    payload_pending: bool,
    formed: bool,
    bad_beats: u64,
    events: broadcast::Sender<ClusterEvent>,
    view: watch::Sender<ClusterView>,
}

/// The view before anything is known: every peer down.
pub(crate) fn initial_view(settings: &ClusterSettings) -> ClusterView {
    ClusterView {
        node: settings.self_id().clone(),
        nodes: settings
            .nodes()
            .iter()
            .map(|n| PeerView {
                id: n.id.clone(),
                status: if n.id == *settings.self_id() {
                    NodeStatus::Up
                } else {
                    NodeStatus::Down
                },
                cluster_addr: n.cluster_addr,
                last_heard_ms: None,
                incarnation: None,
                store_bytes: None,
            })
            .collect(),
        formed: settings.nodes().len() == 1,
    }
}

/// The node id in a `ractor_cluster` node name (`id@host`).
fn node_id_of(ses: &NodeServerSessionInformation) -> Option<&str> {
    let name = &ses.peer_name.as_ref()?.name;
    Some(name.split_once('@').map_or(name.as_str(), |(id, _)| id))
}

impl State {
    fn peer_index(&self, id: &str) -> Option<usize> {
        self.peers.iter().position(|p| p.spec.id.as_str() == id)
    }

    /// Re-judges every peer at `now`, publishing each change.
    fn judge(&mut self, now: Instant) {
        let detector = self.settings.detector();
        let backoff = self.settings.backoff();
        for (index, peer) in self.peers.iter_mut().enumerate() {
            if peer.num_sessions > 0 && peer.health.silent_session(now, &detector) {
                // Nothing heard over the open session for `down_after`: a frozen process, a
                // network partition, or heartbeats that never started flowing over it. Close
                // it and dial afresh: a new session after a partition heals does not wait for
                // TCP to retransmit on the old one, and a session that never carried a beat
                // does not keep the peer down forever.
                let ever_heard = peer.health.last_heard().is_some();
                tracing::info!(peer = %peer.spec.id, ever_heard, "closing the session of a silent peer");
                for session in self.sessions.values().filter(|s| s.peer == index) {
                    session.actor.kill();
                }
                peer.health.session_closed();
                peer.dial.session_lost(now, &backoff, rand::random());
            }
            let status = peer.health.assess(now, &detector);
            if status == peer.status {
                continue;
            }
            let previous = std::mem::replace(&mut peer.status, status);
            self.gossip.peer_status(&peer.spec.id, status);
            if status == NodeStatus::Up {
                peer.health.mark_up();
            }
            match status {
                NodeStatus::Up => tracing::info!(peer = %peer.spec.id, %previous, "peer up"),
                _ => tracing::warn!(peer = %peer.spec.id, %previous, %status, "peer {status}"),
            }
            let _ = self.events.send(ClusterEvent {
                node: peer.spec.id.clone(),
                status,
                incarnation: peer.health.incarnation(),
            });
        }
        if !self.formed && self.peers.iter().all(|p| p.health.ever_up()) {
            self.formed = true;
            tracing::info!(nodes = self.peers.len() + 1, "cluster formed");
        }
        self.publish_view(now);
    }

    fn publish_view(&self, now: Instant) {
        let me = self.settings.self_id();
        let nodes = self
            .settings
            .nodes()
            .iter()
            .map(
                |spec| match self.peers.iter().find(|p| p.spec.id == spec.id) {
                    Some(p) => PeerView {
                        id: spec.id.clone(),
                        status: p.status,
                        cluster_addr: spec.cluster_addr,
                        last_heard_ms: p.health.last_heard().map(|at| {
                            u64::try_from(now.saturating_duration_since(at).as_millis())
                                .unwrap_or(u64::MAX)
                        }),
                        incarnation: p.health.incarnation(),
                        store_bytes: p.store_bytes,
                    },
                    None => PeerView {
                        id: me.clone(),
                        status: NodeStatus::Up,
                        cluster_addr: spec.cluster_addr,
                        last_heard_ms: Some(0),
                        incarnation: Some(self.incarnation),
                        store_bytes: self.store_bytes.as_ref().map(|f| f()),
                    },
                },
            )
            .collect();
        let view = ClusterView {
            node: me.clone(),
            nodes,
            formed: self.formed,
        };
        self.view.send_if_modified(|current| {
            // Only statuses and membership count as changes; the ages tick on every read.
            let changed = current.formed != view.formed
                || current
                    .nodes
                    .iter()
                    .zip(&view.nodes)
                    .any(|(a, b)| a.status != b.status || a.incarnation != b.incarnation);
            *current = view;
            changed
        });
    }
}

impl Actor for Membership {
    type Msg = MembershipMsg;
    type State = State;
    type Arguments = MembershipArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let now = Instant::now();
        let settings = args.settings;
        let peers = settings
            .peers()
            .map(|spec| Peer {
                dial: Dial::initial(settings.dials(&spec.id), now),
                spec: spec.clone(),
                store_bytes: None,
                health: PeerHealth::default(),
                status: NodeStatus::Down,
                num_sessions: 0,
            })
            .collect();
        let (pulse, _) =
            Actor::spawn_linked(None, Pulse, myself.clone(), myself.get_cell()).await?;
        myself.send_interval(TICK, || MembershipMsg::Tick);
        let incarnation = rand::random::<u64>();
        let notify = myself.clone();
        args.gossip.attach(PayloadChanged::new(move || {
            // Refused only once membership stopped, at shutdown: nothing to send then.
            let _ = notify.cast(MembershipMsg::PayloadChanged);
        }));
        tracing::info!(node = %settings.self_id(), incarnation, "membership started");
        Ok(State {
            settings,
            gossip: args.gossip,
            store_bytes: args.store_bytes,
            incarnation,
            seq: 0,
            server: None,
            pulse,
            peers,
            sessions: HashMap::new(),
            gate: Gate::new(AUTH_DEADLINE, MAX_UNAUTHENTICATED),
            gate_dropped: std::collections::HashSet::new(),
            num_gate_drops: 0,
            beat: Vec::new(),
            beat_too_large: false,
            num_misbound_beats: 0,
            last_beat_sent: None,
            last_session_check: None,
            payload_pending: false,
            formed: false,
            bad_beats: 0,
            events: args.events,
            view: args.view,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let now = Instant::now();
        match message {
            MembershipMsg::ServerStarted(server) => {
                server.cast(NodeServerMessage::SubscribeToEvents {
                    id: "troupe.membership".into(),
                    subscription: Box::new(Subscription(myself.clone())),
                })?;
                state.server = Some(server);
                state.dial_due(now, &myself);
                state.judge(now);
            }
            MembershipMsg::Tick => {
                let interval = state.settings.detector().heartbeat_interval;
                if state
                    .last_beat_sent
                    .is_none_or(|at| now.saturating_duration_since(at) >= interval)
                {
                    state.refresh_beat(now);
                    state.pull_all(&myself);
                }
                state.drop_late_sessions(now);
                state.dial_due(now, &myself);
                state.judge(now);
                state.check_server_sessions(now, &myself);
            }
            MembershipMsg::PayloadChanged => {
                if !state.payload_pending {
                    state.payload_pending = true;
                    myself.send_after(PAYLOAD_DELAY, || MembershipMsg::SendPayload);
                }
            }
            MembershipMsg::SendPayload => {
                state.payload_pending = false;
                state.refresh_beat(now);
                state.poke_all();
            }
            MembershipMsg::Pull(reply) => {
                if !state.beat.is_empty() {
                    let _ = reply.send(state.beat.clone());
                }
            }
            MembershipMsg::PullNow => state.pull_all(&myself),
            MembershipMsg::Pulled { session, beat, len } => {
                state.on_pulled(session, beat, len, now);
            }
            MembershipMsg::Session { change, info } => state.on_session(change, info, now),
            MembershipMsg::DialFailed {
                peer,
                failure,
                error,
            } => {
                if let Some(index) = state.peer_index(peer.as_str()) {
                    state.dial_failed(index, now, failure, &error);
                }
            }
            MembershipMsg::PeerHeard(peer) => {
                if let Some(index) = state.peer_index(peer.as_str()) {
                    state.peer_heard(index, now);
                    state.dial_due(now, &myself);
                }
            }
            MembershipMsg::ServerSessions(sessions) => {
                state.adopt_sessions(sessions, now);
                state.judge(now);
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
        if let SupervisionEvent::ActorFailed(_, _) | SupervisionEvent::ActorTerminated(_, _, _) =
            &event
        {
            // The pulse actor never fails on input (it drops what does not decode); if it dies
            // anyway, a new one takes its place so that heartbeats keep flowing.
            tracing::error!(?event, "heartbeat receiver stopped; starting a new one");
            let (pulse, _) =
                Actor::spawn_linked(None, Pulse, myself.clone(), myself.get_cell()).await?;
            state.pulse = pulse;
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.pulse.stop(None);
        if let Some(server) = &state.server {
            let _ = server.cast(NodeServerMessage::UnsubscribeToEvents(
                "troupe.membership".into(),
            ));
        }
        Ok(())
    }
}

/// Forwards the node server's session events to the membership actor.
struct Subscription(ActorRef<MembershipMsg>);

impl Subscription {
    fn forward(&self, change: SessionChange, info: NodeServerSessionInformation) {
        let _ = self.0.cast(MembershipMsg::Session { change, info });
    }
}

impl NodeEventSubscription for Subscription {
    fn node_session_opened(&self, ses: NodeServerSessionInformation) {
        self.forward(SessionChange::Opened, ses);
    }

    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        self.forward(SessionChange::Disconnected, ses);
    }

    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        self.forward(SessionChange::Authenticated, ses);
    }
}

#[cfg(test)]
mod tests;

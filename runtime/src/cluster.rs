//! Cluster membership over `ractor_cluster`.
//!
//! # The model
//!
//! The nodes of a cluster are fixed by configuration (the seeds): every node knows every other
//! node's id and cluster address. Each pair of nodes keeps one `ractor_cluster` session, dialled
//! by the node whose id sorts first, so that two nodes never race to connect to each other. A
//! dialler that fails, or whose session drops, dials again after an exponential backoff with
//! jitter ([`crate::backoff`]); a node that starts late or restarts therefore joins without anyone
//! else restarting. Sessions authenticate with the cluster cookie; a peer with the wrong cookie is
//! refused by `ractor_cluster`, and a peer with the right cookie but an id that is not in the
//! configuration is disconnected by us: neither ever appears as a member.
//!
//! `ractor_cluster` notices a dead peer only when a socket read or write fails: a killed process
//! is seen at once, a frozen one never. So every node also runs its own failure detector: each
//! node asks every peer for its heartbeat every `heartbeat_interval`; a peer not heard from for
//! `suspect_after` is [`NodeStatus::Suspect`], for `down_after` is [`NodeStatus::Down`] (and its
//! session is closed, so that it is reached over a fresh connection once it answers again), and
//! a closed session makes it `Down` at once. Heartbeats travel through `ractor_cluster` itself
//! (a small actor joined to a `pg` group on every node), so a heartbeat proves the whole path
//! works. They are pulled, so that each is bound to the session it came over: a node can only
//! speak for itself (see `pulse`).
//!
//! # The cluster port
//!
//! The cluster port is open to anyone who can reach it, so what a stranger can make it hold is
//! bounded before authentication: a frame is at most 1 MiB (sized to the largest heartbeat,
//! see `pulse`), a connection that has not authenticated within 2 s is dropped, and when more
//! than 16 incoming connections are unauthenticated at once the oldest is dropped (see `gate`).
//!
//! Every status change is published as a [`ClusterEvent`] on a broadcast channel that other
//! modules subscribe to, and the latest [`ClusterView`] is kept in a watch channel for readers
//! such as the HTTP edge.
//!
//! # Gossip
//!
//! Heartbeats also carry one opaque payload per node for the modules above: the [`Gossip`]
//! given to [`Cluster::start`] publishes this node's and hears its peers' (see `gossip`). The
//! cluster never looks inside; the runtime gives it the registry, whose directory of members
//! travels that way.
//!
//! # Lifecycle
//!
//! [`Cluster::start`] binds the cluster port and starts dialling. The cluster is *formed* once
//! this node has seen every configured peer up at least once since it started; that flag latches.
//! [`Cluster::shutdown`] stops the node server, which closes every session: peers see this node
//! `Down` within milliseconds.
//!
//! ```no_run
//! # async fn demo() -> troupe_runtime::Result<()> {
//! use troupe_runtime::{Cluster, ClusterSettings, NodeSpec};
//!
//! let nodes = vec![
//!     NodeSpec::new("n1", "127.0.0.1:7101".parse().unwrap()),
//!     NodeSpec::new("n2", "127.0.0.1:7102".parse().unwrap()),
//! ];
//! let settings = ClusterSettings::new("n1", nodes, "a-secret-cookie-0123".to_string())?;
//! // Whatever this node gossips to its peers: here the runtime's registry of members.
//! let members = std::sync::Arc::new(troupe_runtime::Registry::new(settings.self_id().clone()));
//! let cluster = Cluster::start(settings, members, None).await?;
//! let mut events = cluster.subscribe();
//! while let Ok(event) = events.recv().await {
//!     println!("{} is now {}", event.node, event.status);
//! }
//! # Ok(()) }
//! ```

mod detector;
mod dial;
mod gate;
mod gossip;
mod membership;
mod pulse;
mod settings;

use std::fmt;
use std::sync::Arc;

use ractor::{Actor, ActorRef};
use ractor_cluster::{NodeServer, NodeServerMessage};
use serde::Serialize;
use tokio::sync::{broadcast, watch};
use tokio::time::Duration;

pub use self::gossip::{Gossip, MAX_PAYLOAD_BYTES, PayloadChanged};
pub use self::settings::{
    ClusterSettings, DetectorSettings, MIN_COOKIE_LEN, NodeId, NodeSpec, ReconnectSettings,
    check_cookie,
};
use crate::{Result, RuntimeError};
use membership::{Membership, MembershipArgs, MembershipMsg};

/// The health of a node as one node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Connected, and heard from within `suspect_after`.
    Up,
    /// Connected, but silent for longer than `suspect_after`: perhaps frozen or overloaded.
    Suspect,
    /// Not connected, or silent for longer than `down_after`.
    Down,
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Up => "up",
            Self::Suspect => "suspect",
            Self::Down => "down",
        })
    }
}

/// A change in the status of one node, as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterEvent {
    /// The node whose status changed.
    pub node: NodeId,
    /// Its new status.
    pub status: NodeStatus,
    /// The node's incarnation (a random number drawn when its process started) when it was last
    /// heard from: a new value for the same node id means the process was restarted.
    pub incarnation: Option<u64>,
}

/// One node in a [`ClusterView`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerView {
    /// The node's id.
    pub id: NodeId,
    /// Its status as this node sees it (this node itself is always up).
    pub status: NodeStatus,
    /// The address its cluster port listens on.
    pub cluster_addr: std::net::SocketAddr,
    /// Milliseconds since it was last heard from, if it ever was.
    pub last_heard_ms: Option<u64>,
    /// Its incarnation, if it was heard from.
    pub incarnation: Option<u64>,
    /// The size of its store on disk, as it last said.
    pub store_bytes: Option<u64>,
}

/// Reports the size of this node's store on disk, for heartbeats.
pub type StoreSize = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The cluster as this node sees it now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterView {
    /// This node's id.
    pub node: NodeId,
    /// Every configured node, this one included, in configuration order.
    pub nodes: Vec<PeerView>,
    /// Whether this node has seen every configured node up at least once since it started.
    pub formed: bool,
}

impl ClusterView {
    /// The view of a node, if it is configured.
    pub fn peer(&self, id: &str) -> Option<&PeerView> {
        self.nodes.iter().find(|p| p.id.as_str() == id)
    }
}

/// A handle on this node's membership in the cluster. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ClusterSettings,
    server: ActorRef<NodeServerMessage>,
    membership: ActorRef<MembershipMsg>,
    view: watch::Receiver<ClusterView>,
    events: broadcast::Sender<ClusterEvent>,
}

impl fmt::Debug for Cluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.inner.settings.self_id())
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Binds the cluster port, starts the failure detector and starts dialling the peers.
    /// Returns once the port is bound; joining the peers happens in the background. The
    /// heartbeats carry `gossip`'s payload, and feed it the peers' payloads and statuses.
    pub async fn start(
        settings: ClusterSettings,
        gossip: Arc<dyn Gossip>,
        store_bytes: Option<StoreSize>,
    ) -> Result<Self> {
        let (events, _) = broadcast::channel(1024);
        let (view_tx, view) = watch::channel(membership::initial_view(&settings));
        let me = settings.self_spec().clone();

        let (membership, _) = Actor::spawn(
            None,
            Membership,
            MembershipArgs {
                settings: settings.clone(),
                gossip,
                store_bytes,
                events: events.clone(),
                view: view_tx,
            },
        )
        .await
        .map_err(|e| RuntimeError::Startup(format!("membership actor: {e}")))?;

        let server = NodeServer::new(
            me.cluster_addr.port(),
            settings.cookie().to_string(),
            me.id.to_string(),
            me.cluster_addr.ip().to_string(),
            None,
            Some(ractor_cluster::node::NodeConnectionMode::Isolated),
        )
        .with_listen_addr(me.cluster_addr.ip())
        .with_max_inbound_frame_size(settings.max_frame_bytes());
        let server = match Actor::spawn(None, server, ()).await {
            Ok((server, _)) => server,
            Err(e) => {
                membership.stop(None);
                return Err(RuntimeError::Startup(format!(
                    "cannot listen on cluster address {}: {e}",
                    me.cluster_addr
                )));
            }
        };
        membership
            .cast(MembershipMsg::ServerStarted(server.clone()))
            .map_err(|e| RuntimeError::Startup(format!("membership actor: {e}")))?;

        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                server,
                membership,
                view,
                events,
            }),
        })
    }

    /// The settings this cluster runs with.
    pub fn settings(&self) -> &ClusterSettings {
        &self.inner.settings
    }

    /// The cluster as this node sees it now.
    pub fn view(&self) -> ClusterView {
        self.inner.view.borrow().clone()
    }

    /// Whether every configured node has been seen up since this node started.
    pub fn is_formed(&self) -> bool {
        self.inner.view.borrow().formed
    }

    /// Every status change from now on. A receiver that falls more than 1024 events behind
    /// gets `Lagged` and should re-read [`Cluster::view`].
    pub fn subscribe(&self) -> broadcast::Receiver<ClusterEvent> {
        self.inner.events.subscribe()
    }

    /// Tells membership that `peer` was heard from some other way (for example a service link
    /// that connected): if this node's dial to it is waiting out a backoff, it starts now.
    pub fn peer_heard(&self, peer: &NodeId) {
        let _ = self
            .inner
            .membership
            .cast(MembershipMsg::PeerHeard(peer.clone()));
    }

    /// Leaves the cluster: stops the failure detector and the node server, closing every
    /// session, within `deadline`.
    pub async fn shutdown(&self, deadline: Duration) {
        let stop_membership = self
            .inner
            .membership
            .stop_and_wait(Some("shutdown".into()), Some(deadline));
        let stop_server = self
            .inner
            .server
            .stop_and_wait(Some("shutdown".into()), Some(deadline));
        let (membership, server) = tokio::join!(stop_membership, stop_server);
        if let Err(e) = membership.and(server) {
            tracing::warn!(error = %e, "cluster did not stop cleanly within its deadline");
        }
    }
}

//! The data plane: authenticated TCP links between nodes, carrying batched envelopes.
//!
//! # Why not `ractor_cluster` for the data
//!
//! `ractor_cluster` carries membership and heartbeats ([`crate::cluster`]). Its message path
//! goes through several actors per message each way; on this machine it carries about 187k
//! one-way messages/s and 9.4k sequential calls/s between two processes, where a plain loopback
//! socket carries 21M small framed messages/s. So service traffic has links of its own: one TCP
//! connection per pair of nodes (dialled by the node whose id sorts first, as for membership),
//! authenticated with the cluster cookie ([`handshake`]), each with a writer task that batches
//! whatever is queued into one frame and a reader task that hands consecutive requests for one
//! service to it as one batch ([`link`], [`wire`]).
//!
//! # Guarantees
//!
//! - Every call ends in exactly one of: a reply, [`CallError::Timeout`] at its deadline,
//!   [`CallError::Unreachable`] (the link is down: nothing was sent), or [`CallError::Lost`]
//!   (the link dropped after the request was queued: it may have been applied).
//! - Envelopes from one sender to one member arrive in the order sent: one FIFO queue per link,
//!   one TCP stream, one reader delivering in order.
//! - Queues are bounded: a full link queue makes senders wait until their deadline, then
//!   [`CallError::Overloaded`]; a full member mailbox makes the reader wait, which fills the TCP
//!   window and then the sender's queue.
//! - Bytes from a peer are never trusted: frame and field lengths are checked before anything
//!   is allocated; a malformed envelope is counted, logged with the peer's id and dropped.
//!
//! Links follow the failure detector: a peer marked up is dialled (with backoff until it
//! answers), a peer marked down has its link closed, failing its calls at once.

pub(crate) mod handshake;
pub(crate) mod link;
pub(crate) mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio::time::{Duration, timeout};

use crate::backoff::Backoff;
use crate::cluster::{Cluster, ClusterEvent, NodeId, NodeStatus};
use crate::registry::Registry;
use crate::{Result, RuntimeError};
pub(crate) use link::Link;

/// How the transport runs.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// Where this node accepts links.
    pub listen: SocketAddr,
    /// Every peer's link address.
    pub peers: HashMap<NodeId, SocketAddr>,
    /// Envelopes a link may queue before senders wait.
    pub queue_capacity: usize,
    /// The largest frame accepted from a peer.
    pub max_frame_bytes: usize,
    /// How long a link handshake may take.
    pub handshake_timeout: Duration,
}

impl TransportSettings {
    /// Settings with the defaults: 8192 queued envelopes per link, 16 MiB frames, 3 s handshakes.
    pub fn new(listen: SocketAddr, peers: HashMap<NodeId, SocketAddr>) -> Self {
        Self {
            listen,
            peers,
            queue_capacity: 8192,
            max_frame_bytes: 16 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(3),
        }
    }
}

/// Counters of the transport, for metrics and diagnostics.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) frames_sent: AtomicU64,
    pub(crate) envelopes_sent: AtomicU64,
    pub(crate) frames_received: AtomicU64,
    pub(crate) envelopes_received: AtomicU64,
    pub(crate) bad_frames: AtomicU64,
    pub(crate) late_replies: AtomicU64,
    pub(crate) unknown_service: AtomicU64,
    pub(crate) refused_handshakes: AtomicU64,
    pub(crate) expired: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StatsSnapshot {
    /// Frames written.
    pub frames_sent: u64,
    /// Envelopes written.
    pub envelopes_sent: u64,
    /// Frames read.
    pub frames_received: u64,
    /// Envelopes read.
    pub envelopes_received: u64,
    /// Frames or envelopes from peers that did not decode.
    pub bad_frames: u64,
    /// Replies that came after their call gave up.
    pub late_replies: u64,
    /// Requests for a service this node does not host.
    pub unknown_service: u64,
    /// Incoming links that failed authentication.
    pub refused_handshakes: u64,
    /// Requests from peers that arrived after their deadline and were not handled.
    pub expired: u64,
}

impl Stats {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            frames_sent: get(&self.frames_sent),
            envelopes_sent: get(&self.envelopes_sent),
            frames_received: get(&self.frames_received),
            envelopes_received: get(&self.envelopes_received),
            bad_frames: get(&self.bad_frames),
            late_replies: get(&self.late_replies),
            unknown_service: get(&self.unknown_service),
            refused_handshakes: get(&self.refused_handshakes),
            expired: get(&self.expired),
        }
    }
}

/// The current link to one peer, if any. There is one slot per configured peer for the life of
/// the transport, so routers can keep the slot and skip the table lookup on every send.
#[derive(Default)]
pub(crate) struct LinkSlot {
    current: RwLock<Option<Link>>,
}

impl LinkSlot {
    /// The live link, if any.
    pub(crate) fn get(&self) -> Option<Link> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|l| !l.is_closed())
            .cloned()
    }
}

pub(crate) struct Core {
    me: NodeId,
    cookie: Vec<u8>,
    pub(crate) settings: TransportSettings,
    pub(crate) registry: Arc<Registry>,
    links: HashMap<NodeId, Arc<LinkSlot>>,
    /// Peers being dialled now.
    dialing: std::sync::Mutex<std::collections::HashSet<NodeId>>,
    next_serial: AtomicU64,
    pub(crate) stats: Stats,
}

impl Core {
    fn install(self: &Arc<Self>, peer: NodeId, stream: TcpStream) {
        let Some(slot) = self.links.get(&peer) else {
            return;
        };
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        let link = Link::spawn(stream, peer.clone(), serial, Arc::clone(self));
        let old = slot
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .replace(link);
        if let Some(old) = old {
            old.close("replaced by a new link");
        }
        tracing::info!(peer = %peer, serial, "link up");
    }

    /// Empties the slot of `link`'s peer if `link` is still its current link.
    pub(crate) fn forget_link(&self, link: &Link) {
        let Some(slot) = self.links.get(link.peer()) else {
            return;
        };
        let mut current = slot.current.write().unwrap_or_else(|p| p.into_inner());
        if current
            .as_ref()
            .is_some_and(|l| l.serial() == link.serial())
        {
            *current = None;
        }
    }

    fn link(&self, peer: &NodeId) -> Option<Link> {
        self.links.get(peer)?.get()
    }

    fn known_peer(&self, claimed: &str) -> Option<NodeId> {
        self.settings
            .peers
            .keys()
            .find(|id| id.as_str() == claimed)
            .cloned()
    }
}

/// The data plane of this node. Cheap to clone.
#[derive(Clone)]
pub struct Transport {
    core: Arc<Core>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("node", &self.core.me)
            .field("listen", &self.core.settings.listen)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// Binds the link port and starts following `cluster`: links to peers that are up are
    /// dialled, links to peers that are down are closed.
    pub(crate) async fn start(
        settings: TransportSettings,
        cookie: &str,
        registry: Arc<Registry>,
        cluster: &Cluster,
    ) -> Result<Self> {
        let listener = TcpListener::bind(settings.listen).await.map_err(|e| {
            RuntimeError::Startup(format!(
                "cannot listen for links on {}: {e}",
                settings.listen
            ))
        })?;
        let links = settings
            .peers
            .keys()
            .map(|id| (id.clone(), Arc::new(LinkSlot::default())))
            .collect();
        let core = Arc::new(Core {
            me: cluster.settings().self_id().clone(),
            cookie: cookie.as_bytes().to_vec(),
            settings,
            registry,
            links,
            dialing: std::sync::Mutex::default(),
            next_serial: AtomicU64::new(1),
            stats: Stats::default(),
        });
        tokio::spawn(accept_loop(Arc::clone(&core), listener));
        tokio::spawn(follow_cluster(
            Arc::clone(&core),
            cluster.subscribe(),
            cluster.clone(),
        ));
        Ok(Self { core })
    }

    /// The slot of `peer`'s link (None for this node and unknown nodes).
    pub(crate) fn slot(&self, peer: &NodeId) -> Option<Arc<LinkSlot>> {
        self.core.links.get(peer).cloned()
    }

    /// The transport's counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.core.stats.snapshot()
    }

    /// Closes every link.
    pub fn shutdown(&self) {
        for slot in self.core.links.values() {
            let link = slot
                .current
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(link) = link {
                link.close("shutdown");
            }
        }
    }
}

async fn accept_loop(core: Arc<Core>, listener: TcpListener) {
    loop {
        let (mut stream, addr) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a link failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let core = Arc::clone(&core);
        tokio::spawn(async move {
            let result = timeout(
                core.settings.handshake_timeout,
                handshake::accept(&mut stream, &core.me, &core.cookie, |id| {
                    core.known_peer(id)
                }),
            )
            .await;
            match result {
                Ok(Ok(peer)) => {
                    core.install(peer, stream);
                }
                Ok(Err(e)) => {
                    core.stats
                        .refused_handshakes
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(peer_addr = %addr, error = %e, "refused a link");
                }
                Err(_) => {
                    core.stats
                        .refused_handshakes
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(peer_addr = %addr, "link handshake timed out");
                }
            }
        });
    }
}

/// Dials peers this node is responsible for while they are up; closes links to peers that
/// go down.
async fn follow_cluster(
    core: Arc<Core>,
    mut events: broadcast::Receiver<ClusterEvent>,
    cluster: Cluster,
) {
    // Peers already up when we subscribed.
    for peer in cluster.view().nodes {
        if peer.status == NodeStatus::Up && peer.id != core.me && core.me < peer.id {
            tokio::spawn(dial(Arc::clone(&core), peer.id.clone(), cluster.clone()));
        }
    }
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        match event.status {
            NodeStatus::Up if core.me < event.node && core.link(&event.node).is_none() => {
                tokio::spawn(dial(Arc::clone(&core), event.node.clone(), cluster.clone()));
            }
            NodeStatus::Down => {
                if let Some(link) = core.link(&event.node) {
                    link.close("peer is down");
                    core.forget_link(&link);
                }
            }
            _ => {}
        }
    }
}

/// Dials `peer` until a link is up or the peer is no longer up.
async fn dial(core: Arc<Core>, peer: NodeId, cluster: Cluster) {
    let Some(addr) = core.settings.peers.get(&peer).copied() else {
        return;
    };
    // One dialler per peer: a second one would replace the first one's link, failing the
    // calls waiting on it.
    if !core
        .dialing
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(peer.clone())
    {
        return;
    }
    dial_until_linked(&core, &peer, addr, &cluster).await;
    core.dialing
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&peer);
}

async fn dial_until_linked(core: &Arc<Core>, peer: &NodeId, addr: SocketAddr, cluster: &Cluster) {
    let backoff = Backoff::new(Duration::from_millis(20), Duration::from_secs(1), 0.2);
    let mut attempt = 0;
    loop {
        if core.link(peer).is_some() {
            return;
        }
        let up = cluster
            .view()
            .peer(peer.as_str())
            .is_some_and(|p| p.status == NodeStatus::Up);
        if !up {
            return;
        }
        let result = timeout(core.settings.handshake_timeout, async {
            let mut stream = TcpStream::connect(addr).await?;
            handshake::dial(&mut stream, &core.me, peer, &core.cookie)
                .await
                .map_err(std::io::Error::other)?;
            Ok::<_, std::io::Error>(stream)
        })
        .await;
        match result {
            Ok(Ok(stream)) => {
                core.install(peer.clone(), stream);
                return;
            }
            Ok(Err(e)) => {
                tracing::debug!(peer = %peer, %addr, attempt, error = %e, "link dial failed");
            }
            Err(_) => tracing::debug!(peer = %peer, %addr, attempt, "link dial timed out"),
        }
        tokio::time::sleep(backoff.delay_random(attempt)).await;
        attempt += 1;
    }
}

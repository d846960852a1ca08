//! The data plane: authenticated TCP links between nodes, carrying batched envelopes.
//!
//! # Why not `ractor_cluster` for the data
//!
//! `ractor_cluster` carries membership and heartbeats ([`crate::cluster`]). Its message path
//! goes through several actors per message each way; on this machine it carries about 187k
//! one-way messages/s and 9.4k sequential calls/s between two processes, where a plain loopback
//! socket carries 21M small framed messages/s. So service traffic has links of its own: one TCP
//! connection per pair of nodes (dialled by the node whose id sorts first, as for membership),
//! authenticated with the cluster cookie by a Noise handshake ([`handshake`]) and sealed after it
//! ([`seal`]), each with a writer task that batches whatever is queued into one frame and a
//! reader task that hands consecutive requests for one service to it as one batch ([`link`],
//! [`wire`]).
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
//!   is allocated; a malformed envelope is counted, logged with the peer's id and dropped; a
//!   chunk that fails authentication closes the link.
//! - A peer cannot make this node hold more than a bounded amount for it: see [`link`].
//!
//! # Links follow state, not events
//!
//! A reconciler compares the failure detector's view with the links, on every membership event,
//! whenever a link closes, and every [`RECONCILE_EVERY`] besides (so a lagged event stream or a
//! missed event costs at most that): a peer that is up and has no link is dialled by the node
//! responsible for it (with backoff, a short connect timeout, and at once again when the peer
//! is heard from anew); a peer that goes down has its link closed, failing its calls at once
//! (a link that a peer still marked down dials in is kept: a restarted peer dials before its
//! heartbeats arrive). A peer up without a link for longer than
//! [`TransportSettings::link_grace`] makes this node not ready
//! ([`Transport::not_ready_reasons`]).

mod dial;
pub(crate) mod handshake;
pub(crate) mod link;
#[cfg(feature = "testsuite")]
pub mod probe;
pub(crate) mod seal;
pub(crate) mod wire;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::{Duration, Instant, timeout};

use crate::cluster::{Cluster, NodeId};
use crate::registry::Registry;
use crate::{Result, RuntimeError};
use handshake::{Keys, Psk};
pub(crate) use link::Link;

/// How often the reconciler looks at the links even when nothing woke it.
pub const RECONCILE_EVERY: Duration = Duration::from_millis(100);

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
    /// How long a link handshake may take (after the connection is made).
    pub handshake_timeout: Duration,
    /// How long making the TCP connection of a dial may take: short, so that a dial started
    /// into a partition gives way to a new one soon after the partition heals.
    pub connect_timeout: Duration,
    /// How long one frame may take to write before the link is closed (a peer that does not
    /// read).
    pub write_timeout: Duration,
    /// Bytes of requests from the peer a link holds until their replies are written (each
    /// call counts its payload and 1 KiB); past it the link stops reading. A call larger than
    /// the whole budget waits for all of it.
    pub reply_budget_bytes: usize,
    /// How long a peer may be up without a link before this node says it is not ready.
    pub link_grace: Duration,
}

impl TransportSettings {
    /// Settings with the defaults: 8192 queued envelopes per link, 16 MiB frames and reply
    /// budget, 3 s handshakes, 500 ms connects, 10 s writes, 2 s of grace for a missing link.
    pub fn new(listen: SocketAddr, peers: HashMap<NodeId, SocketAddr>) -> Self {
        Self {
            listen,
            peers,
            queue_capacity: 8192,
            max_frame_bytes: 16 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_millis(500),
            write_timeout: Duration::from_secs(10),
            reply_budget_bytes: 16 * 1024 * 1024,
            link_grace: Duration::from_secs(2),
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
    /// Wakes this peer's dialler from its backoff: the peer was heard from anew.
    kick: Notify,
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
    /// The link key, derived from the cookie once.
    psk: Psk,
    pub(crate) settings: TransportSettings,
    pub(crate) registry: Arc<Registry>,
    links: HashMap<NodeId, Arc<LinkSlot>>,
    /// Peers being dialled now.
    dialing: Mutex<HashSet<NodeId>>,
    /// Since when each peer has been up without a link, as the reconciler last saw it.
    missing_since: Mutex<HashMap<NodeId, Instant>>,
    /// Wakes the reconciler: a link closed.
    wake: Notify,
    /// Set by [`Transport::shutdown`]: nothing is dialled any more.
    stopped: AtomicBool,
    next_serial: AtomicU64,
    pub(crate) stats: Stats,
}

impl Core {
    pub(crate) fn new(
        me: NodeId,
        psk: Psk,
        settings: TransportSettings,
        registry: Arc<Registry>,
    ) -> Self {
        let links = settings
            .peers
            .keys()
            .map(|id| (id.clone(), Arc::new(LinkSlot::default())))
            .collect();
        Self {
            me,
            psk,
            settings,
            registry,
            links,
            dialing: Mutex::default(),
            missing_since: Mutex::default(),
            wake: Notify::new(),
            stopped: AtomicBool::new(false),
            next_serial: AtomicU64::new(1),
            stats: Stats::default(),
        }
    }

    fn install(self: &Arc<Self>, peer: NodeId, stream: TcpStream, keys: Keys) {
        let _ = stream.set_nodelay(true);
        self.install_halves(peer, stream.into_split(), keys);
    }

    /// Starts a link over the halves of an authenticated stream and makes it `peer`'s link.
    pub(crate) fn install_halves<R, W>(
        self: &Arc<Self>,
        peer: NodeId,
        halves: (R, W),
        keys: Keys,
    ) -> Option<Link>
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let slot = self.links.get(&peer)?;
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        let link = Link::spawn(halves, keys, peer.clone(), serial, Arc::clone(self));
        let old = slot
            .current
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .replace(link.clone());
        if let Some(old) = old {
            old.close("replaced by a new link");
        }
        self.missing_since
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&peer);
        tracing::info!(peer = %peer, serial, "link up");
        Some(link)
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
            // The reconciler redials at once if this node is responsible for the peer.
            self.wake.notify_one();
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
        let cookie = cookie.to_string();
        let psk = tokio::task::spawn_blocking(move || Psk::derive(&cookie))
            .await
            .map_err(|e| RuntimeError::Startup(format!("deriving the link key: {e}")))?;
        let me = cluster.settings().self_id().clone();
        let core = Arc::new(Core::new(me, psk, settings, registry));
        tokio::spawn(accept_loop(Arc::clone(&core), listener, cluster.clone()));
        tokio::spawn(dial::reconcile(
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

    /// Why this node's links make it not ready, if they do: each peer that has been up without
    /// a link for longer than [`TransportSettings::link_grace`]. Empty when all is well.
    pub fn not_ready_reasons(&self) -> Vec<String> {
        let grace = self.core.settings.link_grace;
        let missing = self
            .core
            .missing_since
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut reasons: Vec<String> = missing
            .iter()
            .filter(|(_, since)| since.elapsed() >= grace)
            .map(|(peer, since)| {
                format!(
                    "no link to node {peer} for {} ms while it is up",
                    since.elapsed().as_millis()
                )
            })
            .collect();
        reasons.sort();
        reasons
    }

    /// Closes every link and stops dialling.
    pub fn shutdown(&self) {
        self.core.stopped.store(true, Ordering::Release);
        self.core.wake.notify_one();
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

/// Accepts links. A peer that links to us is alive and reachable: membership is told, so that
/// a membership dial waiting out its backoff (after a partition healed) starts at once.
async fn accept_loop(core: Arc<Core>, listener: TcpListener, cluster: Cluster) {
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
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let result = timeout(
                core.settings.handshake_timeout,
                handshake::accept(&mut stream, &core.me, &core.psk, |id| core.known_peer(id)),
            )
            .await;
            match result {
                Ok(Ok((peer, keys))) => {
                    cluster.peer_heard(&peer);
                    core.install(peer, stream, keys);
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

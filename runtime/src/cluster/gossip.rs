//! What heartbeats carry for the modules above the cluster: one opaque payload per node.
//!
//! The cluster knows nothing of what a payload means. One [`Gossip`] is given to
//! [`super::Cluster::start`]: every heartbeat this node sends carries its
//! [`Gossip::payload`], and every heartbeat a peer sends (bound to the session it came over,
//! see `pulse`) hands that peer's payload to [`Gossip::peer_payload`]. The failure detector's
//! verdicts go to [`Gossip::peer_status`], so that what was learnt from a peer can follow its
//! health. When the payload changes, its owner calls [`PayloadChanged::notify`]: the cluster
//! sends a fresh heartbeat within a couple of milliseconds rather than at the next interval,
//! and many changes in quick succession share one heartbeat.
//!
//! A payload comes from the network: its owner decodes it with a bound (no payload is larger
//! than [`MAX_PAYLOAD_BYTES`]), and drops (and counts) one that does not decode. The whole
//! heartbeat, payload included, is at most `MAX_BEAT_BYTES`; a payload of at most
//! [`MAX_PAYLOAD_BYTES`] always fits. A larger one is not sent: the node answers no pulls, so
//! that peers see it suspect rather than silently out of date, and says so in its log.
//!
//! ```
//! use std::sync::Mutex;
//! use troupe_runtime::cluster::{Gossip, NodeId, NodeStatus, PayloadChanged};
//!
//! /// Gossips a greeting; remembers the last one heard from each peer.
//! #[derive(Default)]
//! struct Greetings {
//!     mine: Mutex<String>,
//!     heard: Mutex<Vec<(NodeId, String)>>,
//! }
//!
//! impl Gossip for Greetings {
//!     fn payload(&self) -> Vec<u8> {
//!         self.mine.lock().unwrap().clone().into_bytes()
//!     }
//!     fn peer_payload(&self, node: &NodeId, _incarnation: u64, payload: &[u8]) {
//!         if let Ok(text) = std::str::from_utf8(payload) {
//!             self.heard.lock().unwrap().push((node.clone(), text.to_string()));
//!         }
//!     }
//!     fn peer_status(&self, _node: &NodeId, _status: NodeStatus) {}
//!     fn attach(&self, _changed: PayloadChanged) {}
//! }
//! ```

use std::fmt;
use std::sync::Arc;

use super::{NodeId, NodeStatus};

/// The largest payload that always fits in a heartbeat: the heartbeat's bound less room for
/// the rest of it (the sender's id of at most 64 bytes, four integers and length prefixes,
/// about a hundred bytes at most).
pub const MAX_PAYLOAD_BYTES: usize = super::pulse::MAX_BEAT_BYTES - BEAT_HEADER_BYTES;

/// Room in a heartbeat for everything but the payload (see [`MAX_PAYLOAD_BYTES`]).
pub(crate) const BEAT_HEADER_BYTES: usize = 256;

/// What this node gossips to its peers in heartbeats, and what it hears from them.
///
/// Every method is called on the cluster's membership actor: each must be quick and must not
/// block (copy or swap small data under a lock, at most).
pub trait Gossip: Send + Sync + 'static {
    /// This node's payload now, for its next heartbeat.
    fn payload(&self) -> Vec<u8>;

    /// A peer's payload, from a heartbeat bound to the peer's own session. `incarnation` is
    /// the peer process's (a new one means it restarted). The bytes come from the network:
    /// decode them with a bound, and drop those that do not decode.
    fn peer_payload(&self, node: &NodeId, incarnation: u64, payload: &[u8]);

    /// The failure detector's new verdict on a peer.
    fn peer_status(&self, node: &NodeId, status: NodeStatus);

    /// Called once, when the cluster starts: call [`PayloadChanged::notify`] on `changed`
    /// whenever [`Gossip::payload`] changes, so that peers hear of it at once.
    fn attach(&self, changed: PayloadChanged);
}

/// Tells the cluster that this node's payload changed. Cheap to clone; notifying is a message
/// to the cluster, never a wait, so it may be called under a lock.
#[derive(Clone)]
pub struct PayloadChanged(Arc<dyn Fn() + Send + Sync>);

impl PayloadChanged {
    /// A notifier that calls `notify`.
    pub(crate) fn new(notify: impl Fn() + Send + Sync + 'static) -> Self {
        Self(Arc::new(notify))
    }

    /// The payload changed: send it soon. Changes in quick succession share one heartbeat.
    pub fn notify(&self) {
        (self.0)();
    }
}

impl fmt::Debug for PayloadChanged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayloadChanged").finish_non_exhaustive()
    }
}

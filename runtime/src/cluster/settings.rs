//! Validated cluster settings: what every other part of the cluster module may take for granted.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;
use tokio::time::Duration;

use crate::backoff::Backoff;
use crate::{Result, RuntimeError};

/// The id of a node: 1 to 64 characters of `a-z`, `0-9`, `-` and `_`, unique in its cluster.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct NodeId(Arc<str>);

impl NodeId {
    /// Checks the id's form.
    pub fn try_new(id: &str) -> Result<Self> {
        let well_formed = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if well_formed {
            Ok(Self(id.into()))
        } else {
            Err(RuntimeError::InvalidConfig(format!(
                "node id {id:?} must be 1 to 64 characters of a-z, 0-9, '-' and '_'"
            )))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// A configured node: its id and the address of its cluster port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// The node's id.
    pub id: NodeId,
    /// Where its cluster port listens (and where peers dial it).
    pub cluster_addr: SocketAddr,
}

impl NodeSpec {
    /// A node spec. Panics if `id` is malformed: for tests and examples; configuration goes
    /// through [`NodeId::try_new`].
    pub fn new(id: &str, cluster_addr: SocketAddr) -> Self {
        match NodeId::try_new(id) {
            Ok(id) => Self { id, cluster_addr },
            Err(e) => panic!("{e}"),
        }
    }
}

/// How the failure detector decides that a peer is suspect or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetectorSettings {
    /// How often this node sends a heartbeat to each peer.
    pub heartbeat_interval: Duration,
    /// Silence after which a connected peer is suspect.
    pub suspect_after: Duration,
    /// Silence after which a connected peer is down.
    pub down_after: Duration,
}

impl Default for DetectorSettings {
    /// A frozen peer is down within 2.1 s (the 3 s bound with room for a busy machine); a killed
    /// one is down as soon as its socket closes.
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(200),
            suspect_after: Duration::from_millis(1000),
            down_after: Duration::from_millis(2000),
        }
    }
}

/// How this node dials peers that are not connected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectSettings {
    /// The first retry's delay.
    pub min_backoff: Duration,
    /// The longest delay between two attempts: a peer that comes back is reconnected within it.
    pub max_backoff: Duration,
    /// How long a dial may take to authenticate before it counts as failed.
    pub dial_timeout: Duration,
    /// How long the TCP connect of a dial may take. A peer behind a network partition never
    /// answers, so this bounds how long a dial started into a partition delays the next one:
    /// after it, the dial is tried again at once. A LAN connect takes well under a millisecond.
    pub connect_timeout: Duration,
}

impl Default for ReconnectSettings {
    fn default() -> Self {
        Self {
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(1000),
            dial_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_millis(500),
        }
    }
}

/// Everything the cluster layer needs, validated.
#[derive(Clone)]
pub struct ClusterSettings {
    self_index: usize,
    nodes: Vec<NodeSpec>,
    cookie: String,
    detector: DetectorSettings,
    reconnect: ReconnectSettings,
}

impl fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("self", &self.self_spec().id)
            .field("nodes", &self.nodes)
            .field("cookie", &"<redacted>")
            .field("detector", &self.detector)
            .field("reconnect", &self.reconnect)
            .finish()
    }
}

/// The shortest cookie we accept: the cookie is the only thing keeping strangers out.
pub const MIN_COOKIE_LEN: usize = 16;

/// Checks a cluster cookie: at least [`MIN_COOKIE_LEN`] printable characters. The error says
/// what is wrong, without the cookie.
pub fn check_cookie(cookie: &str) -> std::result::Result<(), String> {
    if cookie.chars().count() < MIN_COOKIE_LEN || cookie.chars().any(char::is_control) {
        return Err(format!(
            "must be at least {MIN_COOKIE_LEN} printable characters"
        ));
    }
    Ok(())
}

impl ClusterSettings {
    /// Settings with the default detector and reconnect timings.
    pub fn new(self_id: &str, nodes: Vec<NodeSpec>, cookie: String) -> Result<Self> {
        Self::with_timings(
            self_id,
            nodes,
            cookie,
            DetectorSettings::default(),
            ReconnectSettings::default(),
        )
    }

    /// Settings with explicit timings. Checks that node ids and addresses are unique, that this
    /// node is one of them, that the cookie is long enough and that the timings make sense.
    pub fn with_timings(
        self_id: &str,
        nodes: Vec<NodeSpec>,
        cookie: String,
        detector: DetectorSettings,
        reconnect: ReconnectSettings,
    ) -> Result<Self> {
        let invalid = |m: String| Err(RuntimeError::InvalidConfig(m));
        if nodes.is_empty() {
            return invalid("the cluster has no nodes".into());
        }
        for (i, a) in nodes.iter().enumerate() {
            for b in &nodes[i + 1..] {
                if a.id == b.id {
                    return invalid(format!("node id {} appears twice", a.id));
                }
                if a.cluster_addr == b.cluster_addr {
                    return invalid(format!(
                        "nodes {} and {} share the cluster address {}",
                        a.id, b.id, a.cluster_addr
                    ));
                }
            }
            if a.cluster_addr.port() == 0 {
                return invalid(format!("node {} has cluster port 0", a.id));
            }
        }
        let Some(self_index) = nodes.iter().position(|n| n.id.as_str() == self_id) else {
            return invalid(format!(
                "node {self_id:?} is not among the configured nodes"
            ));
        };
        if let Err(why) = check_cookie(&cookie) {
            return invalid(format!("the cluster cookie {why}"));
        }
        if detector.heartbeat_interval.is_zero()
            || detector.suspect_after <= detector.heartbeat_interval
            || detector.down_after <= detector.suspect_after
        {
            return invalid(
                "failure detector timings must satisfy 0 < heartbeat_interval < suspect_after < down_after"
                    .into(),
            );
        }
        if reconnect.min_backoff.is_zero()
            || reconnect.max_backoff < reconnect.min_backoff
            || reconnect.dial_timeout.is_zero()
            || reconnect.connect_timeout.is_zero()
            || reconnect.connect_timeout > reconnect.dial_timeout
        {
            return invalid(
                "reconnect timings must satisfy 0 < min_backoff <= max_backoff and 0 < connect_timeout <= dial_timeout"
                    .into(),
            );
        }
        Ok(Self {
            self_index,
            nodes,
            cookie,
            detector,
            reconnect,
        })
    }

    /// This node.
    pub fn self_spec(&self) -> &NodeSpec {
        &self.nodes[self.self_index]
    }

    /// This node's id.
    pub fn self_id(&self) -> &NodeId {
        &self.self_spec().id
    }

    /// Every configured node, this one included, in configuration order.
    pub fn nodes(&self) -> &[NodeSpec] {
        &self.nodes
    }

    /// Every configured node but this one.
    pub fn peers(&self) -> impl Iterator<Item = &NodeSpec> {
        let me = self.self_index;
        self.nodes
            .iter()
            .enumerate()
            .filter(move |(i, _)| *i != me)
            .map(|(_, n)| n)
    }

    pub(crate) fn cookie(&self) -> &str {
        &self.cookie
    }

    /// The failure detector's timings.
    pub fn detector(&self) -> DetectorSettings {
        self.detector
    }

    /// The reconnect timings.
    pub fn reconnect(&self) -> ReconnectSettings {
        self.reconnect
    }

    pub(crate) fn backoff(&self) -> Backoff {
        Backoff::new(self.reconnect.min_backoff, self.reconnect.max_backoff, 0.2)
    }

    /// The largest frame the cluster port accepts: sized to the largest heartbeat.
    pub(crate) fn max_frame_bytes(&self) -> u64 {
        super::pulse::MAX_FRAME_BYTES
    }

    /// Whether this node dials `peer` (the one whose id sorts first dials), so that two nodes
    /// never race to open a session to each other.
    pub(crate) fn dials(&self, peer: &NodeId) -> bool {
        self.self_id() < peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<NodeSpec> {
        vec![
            NodeSpec::new("n1", "127.0.0.1:7101".parse().unwrap()),
            NodeSpec::new("n2", "127.0.0.1:7102".parse().unwrap()),
        ]
    }

    const COOKIE: &str = "0123456789abcdef";

    fn err(r: Result<ClusterSettings>) -> String {
        r.map(|_| ()).unwrap_err().to_string()
    }

    #[test]
    fn accepts_a_sound_cluster() {
        let s = ClusterSettings::new("n2", nodes(), COOKIE.into()).unwrap();
        assert_eq!(s.self_id().as_str(), "n2");
        assert_eq!(s.peers().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["n1"]);
        assert!(!s.dials(&NodeId::try_new("n1").unwrap()));
        assert!(format!("{s:?}").contains("<redacted>"));
        assert!(!format!("{s:?}").contains(COOKIE));
    }

    #[test]
    fn rejects_what_cannot_work() {
        assert!(err(ClusterSettings::new("n3", nodes(), COOKIE.into())).contains("\"n3\""));
        assert!(err(ClusterSettings::new("n1", nodes(), "short".into())).contains("cookie"));
        let mut twice = nodes();
        twice[1].id = twice[0].id.clone();
        assert!(err(ClusterSettings::new("n1", twice, COOKIE.into())).contains("twice"));
        let mut same_addr = nodes();
        same_addr[1].cluster_addr = same_addr[0].cluster_addr;
        assert!(err(ClusterSettings::new("n1", same_addr, COOKIE.into())).contains("share"));
        let detector = DetectorSettings {
            down_after: Duration::from_millis(500),
            ..DetectorSettings::default()
        };
        let r = ClusterSettings::with_timings(
            "n1",
            nodes(),
            COOKIE.into(),
            detector,
            ReconnectSettings::default(),
        );
        assert!(err(r).contains("suspect_after < down_after"));
    }

    #[test]
    fn node_ids_are_checked() {
        assert!(NodeId::try_new("node-1_a").is_ok());
        for bad in ["", "N1", "n 1", "n1@host", &"x".repeat(65)] {
            assert!(NodeId::try_new(bad).is_err(), "{bad:?} accepted");
        }
    }
}

//! `[[node]]`: every node of the cluster, with its addresses and data directory.
//!
//! ```toml
//! [[node]]
//! id = "n1"                         # 1 to 64 of a-z, 0-9, '-', '_'
//! cluster_addr = "127.0.0.1:7101"   # membership and heartbeats
//! http_addr = "127.0.0.1:8081"      # the HTTP edge
//! link_addr = "127.0.0.1:7201"      # service traffic (default: the cluster port + 100)
//! data_dir = "data/n1"              # default: <cluster.data_dir>/<id>
//! ```
//!
//! No two addresses of the cluster are the same, and no two nodes share an id.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use troupe_runtime::NodeId;

use super::ConfigError;
use super::check::Checker;

/// A node's link port defaults to its cluster port plus this.
pub const DEFAULT_LINK_PORT_OFFSET: u16 = 100;

/// One configured node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEntry {
    /// Its id.
    pub id: NodeId,
    /// Its cluster port.
    pub cluster_addr: SocketAddr,
    /// Its HTTP edge.
    pub http_addr: SocketAddr,
    /// Where it accepts service traffic from peers (default: the cluster port + 100).
    pub link_addr: SocketAddr,
    /// Its data directory.
    pub data_dir: PathBuf,
}

/// One `[[node]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
    id: Spanned<String>,
    cluster_addr: Spanned<String>,
    http_addr: Spanned<String>,
    link_addr: Option<Spanned<String>>,
    data_dir: Option<String>,
}

/// Every node, validated, in file order; `data_dir` is the root of those that name none.
pub(super) fn build_and_validate(
    check: &Checker<'_>,
    raw: &[RawNode],
    data_dir: &Path,
) -> Result<Vec<NodeEntry>, ConfigError> {
    if raw.is_empty() {
        return Err(check.whole("no [[node]] entries: a cluster needs at least one node"));
    }
    let mut nodes: Vec<NodeEntry> = Vec::with_capacity(raw.len());
    for n in raw {
        let node = n.build_and_validate(check, data_dir)?;
        n.check_unique(check, &node, &nodes)?;
        nodes.push(node);
    }
    Ok(nodes)
}

impl RawNode {
    /// This node alone, validated.
    fn build_and_validate(
        &self,
        check: &Checker<'_>,
        data_dir: &Path,
    ) -> Result<NodeEntry, ConfigError> {
        let id = NodeId::try_new(self.id.get_ref()).or_else(|e| {
            check.err(
                "node.id",
                &self.id.span(),
                e.to_string()
                    .trim_start_matches("invalid cluster settings: "),
            )
        })?;
        let cluster_addr = check.addr("node.cluster_addr", &self.cluster_addr)?;
        let http_addr = check.addr("node.http_addr", &self.http_addr)?;
        let link_addr = match &self.link_addr {
            Some(a) => check.addr("node.link_addr", a)?,
            None => match cluster_addr.port().checked_add(DEFAULT_LINK_PORT_OFFSET) {
                Some(port) => SocketAddr::new(cluster_addr.ip(), port),
                None => {
                    return check.err(
                        "node.link_addr",
                        &self.cluster_addr.span(),
                        "cannot default to the cluster port + 100: set link_addr",
                    );
                }
            },
        };
        let data_dir = match &self.data_dir {
            Some(d) => check.resolve(d),
            None => data_dir.join(id.as_str()),
        };
        Ok(NodeEntry {
            id,
            cluster_addr,
            http_addr,
            link_addr,
            data_dir,
        })
    }

    /// Refuses an id or an address of `node` (this entry) that `earlier` nodes or this node
    /// itself already use.
    fn check_unique(
        &self,
        check: &Checker<'_>,
        node: &NodeEntry,
        earlier: &[NodeEntry],
    ) -> Result<(), ConfigError> {
        let link_span = self
            .link_addr
            .as_ref()
            .map_or_else(|| self.cluster_addr.span(), Spanned::span);
        let mine: [(&str, SocketAddr, Range<usize>); 3] = [
            (
                "node.cluster_addr",
                node.cluster_addr,
                self.cluster_addr.span(),
            ),
            ("node.http_addr", node.http_addr, self.http_addr.span()),
            ("node.link_addr", node.link_addr, link_span),
        ];
        for other in earlier {
            if other.id == node.id {
                return check.err(
                    "node.id",
                    &self.id.span(),
                    format!("{} is already used by another node", node.id),
                );
            }
            for (key, addr, span) in &mine {
                if [other.cluster_addr, other.http_addr, other.link_addr].contains(addr) {
                    return check.err(
                        key,
                        span,
                        format!("{addr} is already used by node {}", other.id),
                    );
                }
            }
        }
        for (i, (key, addr, span)) in mine.iter().enumerate() {
            if mine[..i].iter().any(|(_, a, _)| a == addr) {
                return check.err(key, span, format!("{addr} is used twice by this node"));
            }
        }
        Ok(())
    }
}

//! Shards: where an entity's data lives, computed the same way by every node without talking.
//!
//! A stateful service has `N` shards. An entity key goes to shard `hash(key) mod N` (a stable
//! hash, [`crate::hash`]); shard `s` of service `svc` lives on the node, among those the
//! configuration assigns the service, with the highest rendezvous weight
//! `hash(svc, s, node)`. Every node computes the same map from the same configuration; when a
//! node is added or removed from the list, only the shards that node wins or held move. While a
//! shard's node is down its shard is unavailable (callers fail fast and retry later): nothing
//! moves and nothing is lost, because its data is on that node's disk.
//!
//! ```
//! use troupe_runtime::NodeId;
//! use troupe_runtime::shard::{placement, shard_of};
//!
//! let nodes: Vec<NodeId> = ["n1", "n2", "n3"].iter().map(|n| NodeId::try_new(n).unwrap()).collect();
//! let map = placement("kv", 16, &nodes);
//! assert_eq!(map.len(), 16);
//! let shard = shard_of(b"user:42", 16);
//! println!("user:42 lives in shard {shard} on {}", map[shard as usize]);
//! ```
//!
//! # The placement a node agreed to
//!
//! Placement is computed from the configuration, but data does not move when the
//! configuration changes (moving shards with their data comes later). So that nothing is ever
//! served from a keyspace that is not the shard's (an empty one on a new node would answer
//! "not found" for acknowledged data), every node records in its store the placement it last
//! agreed to, per service: its shard count and the node of each shard ([`ledger::Recorded`]).
//!
//! At start, for every sharded service, a node compares its record with the configured
//! placement. If they are equal, it serves at once. If they differ, or it has no record (a new
//! node, or a node whose disk was replaced), it cannot tell on its own where the data is: it
//! asks every other configured node, through the built-in `troupe.placement` service, for its
//! record and whether it holds data of the service, and serves nothing of the service (calls
//! answer [`crate::CallError::Placement`], "not agreed yet: waiting to hear from n3", a 503)
//! until every node has answered. Then [`ledger::decide`], a pure function every node applies
//! to the same answers, gives the placement:
//!
//! - no node holds data of the service: the configured placement (a new cluster, an unused
//!   service);
//! - else the placement recorded by the nodes that hold data. A shard whose configured node
//!   differs is a **pending move**: it is still served by the node that holds its data, and
//!   `/admin/cluster` and `troupe status` list it. A shard whose data is on a node that no
//!   longer hosts the service is refused with a message naming that node;
//! - a changed shard count, with data: the whole service is refused with a message that says
//!   so (keys would hash to other shards);
//! - nodes holding data under different records: the whole service is refused.
//!
//! The agreed placement is recorded, so a node restarted alone later serves at once. Growing a
//! cluster safely today means keeping the placement of services with data: give them an
//! explicit `nodes = [...]` list before adding a node (README, "Stores").

pub(crate) mod agree;
pub mod ledger;
mod table;

pub use table::{PlacementView, ShardTable};

#[cfg(test)]
mod proptests;

use crate::cluster::NodeId;
use crate::hash::{mix, stable_hash};

/// The shard of `key` among `num_shards` (at least 1).
pub fn shard_of(key: &[u8], num_shards: u32) -> u32 {
    (stable_hash(key) % u64::from(num_shards.max(1))) as u32
}

/// The rendezvous weight of `node` for shard `shard` of `service`.
fn weight(service: &str, shard: u32, node: &NodeId) -> u64 {
    mix(stable_hash(service.as_bytes())
        ^ mix(u64::from(shard) + 1)
        ^ stable_hash(node.as_str().as_bytes()).rotate_left(17))
}

/// The node of shard `shard` of `service` among `nodes` (None if `nodes` is empty).
pub fn place(service: &str, shard: u32, nodes: &[NodeId]) -> Option<NodeId> {
    nodes
        .iter()
        .max_by_key(|n| (weight(service, shard, n), n.as_str().to_string()))
        .cloned()
}

/// The node of every shard of `service`, by shard number.
pub fn placement(service: &str, num_shards: u32, nodes: &[NodeId]) -> Vec<NodeId> {
    (0..num_shards)
        .filter_map(|s| place(service, s, nodes))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn ids(names: &[&str]) -> Vec<NodeId> {
        names.iter().map(|n| NodeId::try_new(n).unwrap()).collect()
    }

    #[test]
    fn every_node_computes_the_same_map_whatever_the_order() {
        let a = placement("kv", 64, &ids(&["n1", "n2", "n3"]));
        let b = placement("kv", 64, &ids(&["n3", "n1", "n2"]));
        assert_eq!(a, b);
        // Pinned: placement decides where data lives and must not change between releases.
        // (Computed independently from the definitions of the hash and the weight.)
        let pinned: Vec<&str> = a[..8].iter().map(NodeId::as_str).collect();
        assert_eq!(pinned, PINNED_FIRST_8);
    }

    const PINNED_FIRST_8: [&str; 8] = ["n3", "n2", "n1", "n1", "n3", "n3", "n1", "n2"];

    #[test]
    fn shards_spread_over_the_nodes() {
        let map = placement("orders", 300, &ids(&["n1", "n2", "n3"]));
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for n in &map {
            *counts.entry(n.as_str()).or_default() += 1;
        }
        for n in ["n1", "n2", "n3"] {
            let c = counts[n];
            assert!((70..130).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn changing_the_node_list_moves_only_what_it_must() {
        let three = placement("kv", 256, &ids(&["n1", "n2", "n3"]));
        // Removing n2 moves n2's shards and nothing else.
        let two = placement("kv", 256, &ids(&["n1", "n3"]));
        for (s, (before, after)) in three.iter().zip(&two).enumerate() {
            if before.as_str() != "n2" {
                assert_eq!(before, after, "shard {s} moved although its node stayed");
            }
        }
        // Adding n4 moves shards only to n4.
        let four = placement("kv", 256, &ids(&["n1", "n2", "n3", "n4"]));
        let mut moved = 0;
        for (before, after) in three.iter().zip(&four) {
            if before != after {
                assert_eq!(after.as_str(), "n4");
                moved += 1;
            }
        }
        assert!(
            (30..100).contains(&moved),
            "{moved} shards moved to the new node"
        );
    }

    #[test]
    fn keys_spread_over_shards_and_stay_put() {
        let mut counts = vec![0usize; 16];
        for i in 0..16_000u32 {
            let key = format!("key-{i}");
            let s = shard_of(key.as_bytes(), 16);
            assert_eq!(s, shard_of(key.as_bytes(), 16));
            counts[s as usize] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
        assert_eq!(shard_of(b"anything", 0), 0);
        assert_eq!(place("kv", 0, &[]), None);
    }
}

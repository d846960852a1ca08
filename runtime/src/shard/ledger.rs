//! The placement a node agreed to, as recorded in its store, and the pure rule that turns what
//! the nodes say into the placement to serve.

use serde::{Deserialize, Serialize};

/// The placement of one sharded service: its number of shards and each shard's node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// The number of shards.
    pub shards: u32,
    /// The node of each shard, by shard number.
    pub owners: Vec<String>,
}

/// What one node says about a sharded service: the placement recorded in its store, and whether
/// it holds any of the service's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The placement it last agreed to (none: it never agreed to one).
    pub recorded: Option<Recorded>,
    /// Whether any of the service's keyspaces on its disk holds an entry.
    pub has_data: bool,
}

/// Where one shard is served from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// On this node, which holds its data.
    On(String),
    /// Nowhere: the reason, for the caller.
    Refused(String),
}

/// A shard whose configured node differs from the node that holds its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Move {
    /// The shard.
    pub shard: u32,
    /// The node that holds its data (and serves it, if it still hosts the service).
    pub from: String,
    /// The node the configuration places it on.
    pub to: String,
}

/// The placement to serve, as decided from every node's [`Answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// The placement to record (None: keep whatever is recorded; the nodes disagree).
    pub record: Option<Recorded>,
    /// Where each shard of the agreed placement is served (empty when `refused`).
    pub slots: Vec<Slot>,
    /// Shards the configuration would move, waiting for data moves (not supported yet).
    pub pending: Vec<Move>,
    /// Why the whole service is refused, if it is.
    pub refused: Option<String>,
}

/// Decides the placement of `service` from the configured one, the nodes that host it now,
/// and every configured node's answer (this node's included).
///
/// The data decides: if no node holds data of the service, the configured placement is
/// agreed. Otherwise the placement recorded by the nodes that hold data is (a node that holds
/// data but has no record, from before records existed, counts as having the configured one).
/// A shard is served by the node that holds its data while that node still hosts the service;
/// a shard whose configured node differs is a pending move. A changed shard count, or nodes
/// that hold data under different placements, refuse the whole service.
pub fn decide(
    service: &str,
    configured: &Recorded,
    hosts: &[String],
    answers: &[(String, Answer)],
) -> Decided {
    let holders: Vec<(&String, Recorded)> = answers
        .iter()
        .filter(|(_, a)| a.has_data)
        .map(|(n, a)| (n, a.recorded.clone().unwrap_or_else(|| configured.clone())))
        .collect();
    let agreed = match holders.first() {
        None => configured.clone(),
        Some((_, first)) => {
            if let Some((other, theirs)) = holders.iter().find(|(_, r)| r != first) {
                let (one, _) = &holders[0];
                return Decided {
                    record: None,
                    slots: Vec::new(),
                    pending: Vec::new(),
                    refused: Some(format!(
                        "the nodes that hold data of {service} recorded different placements \
                         ({one}: {} shards over {}; {other}: {} shards over {}): {service} is \
                         refused until their configurations agree",
                        first.shards,
                        distinct(&first.owners),
                        theirs.shards,
                        distinct(&theirs.owners)
                    )),
                };
            }
            first.clone()
        }
    };
    if agreed.shards != configured.shards || agreed.owners.len() != agreed.shards as usize {
        return Decided {
            refused: Some(format!(
                "{service} holds data stored in {} shards but is configured with {}: changing \
                 the shard count of a service with data is not supported yet; configure \
                 shards = {} again",
                agreed.shards, configured.shards, agreed.shards
            )),
            record: Some(agreed),
            slots: Vec::new(),
            pending: Vec::new(),
        };
    }
    let mut slots = Vec::with_capacity(agreed.owners.len());
    let mut pending = Vec::new();
    for (shard, (holder, wanted)) in agreed.owners.iter().zip(&configured.owners).enumerate() {
        let shard = shard as u32;
        if holder != wanted {
            pending.push(Move {
                shard,
                from: holder.clone(),
                to: wanted.clone(),
            });
        }
        if hosts.contains(holder) {
            slots.push(Slot::On(holder.clone()));
        } else {
            slots.push(Slot::Refused(format!(
                "shard {shard} of {service} has its data on node {holder}, which no longer \
                 hosts {service} in the configuration; moving shards with their data is not \
                 supported yet: configure {holder} to host {service} again"
            )));
        }
    }
    Decided {
        record: Some(agreed),
        slots,
        pending,
        refused: None,
    }
}

fn distinct(owners: &[String]) -> String {
    let mut nodes: Vec<&str> = owners.iter().map(String::as_str).collect();
    nodes.sort_unstable();
    nodes.dedup();
    nodes.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(owners: &[&str]) -> Recorded {
        Recorded {
            shards: owners.len() as u32,
            owners: owners.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn answer(recorded: Option<Recorded>, has_data: bool) -> Answer {
        Answer { recorded, has_data }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn without_data_anywhere_the_configuration_is_agreed() {
        let configured = rec(&["n4", "n1", "n2"]);
        let old = rec(&["n1", "n1", "n2"]);
        let d = decide(
            "kv",
            &configured,
            &names(&["n1", "n2", "n4"]),
            &[
                ("n1".into(), answer(Some(old.clone()), false)),
                ("n4".into(), answer(None, false)),
            ],
        );
        assert_eq!(d.record, Some(configured));
        assert!(d.pending.is_empty() && d.refused.is_none());
        assert_eq!(d.slots[0], Slot::On("n4".into()));
    }

    #[test]
    fn a_new_node_leaves_the_data_where_it_is_and_shows_the_moves() {
        let old = rec(&["n1", "n2", "n3", "n1"]);
        let configured = rec(&["n4", "n2", "n3", "n1"]);
        let answers = [
            ("n1".into(), answer(Some(old.clone()), true)),
            ("n2".into(), answer(Some(old.clone()), true)),
            ("n4".into(), answer(None, false)),
        ];
        let d = decide(
            "kv",
            &configured,
            &names(&["n1", "n2", "n3", "n4"]),
            &answers,
        );
        assert_eq!(d.record, Some(old));
        assert_eq!(d.slots[0], Slot::On("n1".into()));
        assert_eq!(
            d.pending,
            vec![Move {
                shard: 0,
                from: "n1".into(),
                to: "n4".into()
            }]
        );
    }

    #[test]
    fn a_shard_count_change_with_data_is_refused() {
        let old = rec(&["n1", "n2"]);
        let configured = rec(&["n1", "n2", "n2", "n1"]);
        let d = decide(
            "kv",
            &configured,
            &names(&["n1", "n2"]),
            &[("n1".into(), answer(Some(old.clone()), true))],
        );
        let why = d.refused.unwrap();
        assert!(
            why.contains("2 shards") && why.contains("configured with 4"),
            "{why}"
        );
        assert_eq!(d.record, Some(old));
    }

    #[test]
    fn data_on_a_node_that_no_longer_hosts_is_refused_and_disagreement_refuses_all() {
        let old = rec(&["n1", "n3"]);
        let configured = rec(&["n1", "n1"]);
        let d = decide(
            "kv",
            &configured,
            &names(&["n1"]),
            &[("n3".into(), answer(Some(old.clone()), true))],
        );
        assert_eq!(d.slots[0], Slot::On("n1".into()));
        assert!(matches!(&d.slots[1], Slot::Refused(why) if why.contains("n3")));

        let d = decide(
            "kv",
            &configured,
            &names(&["n1"]),
            &[
                ("n3".into(), answer(Some(old), true)),
                ("n1".into(), answer(Some(configured.clone()), true)),
            ],
        );
        assert!(d.refused.unwrap().contains("different placements"));
        assert_eq!(d.record, None);
    }
}

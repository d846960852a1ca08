//! Properties of placement and of [`ledger::decide`] over arbitrary clusters and answers: what
//! every node must compute alike, and what must never happen to data.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::ledger::{Answer, Recorded, Slot, decide};
use super::*;

/// Distinct, valid node ids.
fn nodes(range: std::ops::Range<usize>) -> impl Strategy<Value = Vec<NodeId>> {
    prop::collection::btree_set(0u16..1000, range).prop_map(|ids| {
        ids.into_iter()
            .map(|i| NodeId::try_new(&format!("n{i}")).unwrap())
            .collect()
    })
}

fn service() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9._-]{0,20}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_key_has_one_shard_in_range(key in prop::collection::vec(any::<u8>(), 0..64), n in any::<u32>()) {
        let s = shard_of(&key, n);
        prop_assert!(s < n.max(1), "shard {} of {}", s, n);
        prop_assert_eq!(s, shard_of(&key.clone(), n));
    }

    #[test]
    fn every_shard_is_placed_on_a_configured_node_whatever_their_order(
        svc in service(),
        num_shards in 0u32..200,
        list in nodes(1..8),
        rotate in any::<prop::sample::Index>(),
    ) {
        let map = placement(&svc, num_shards, &list);
        prop_assert_eq!(map.len(), num_shards as usize);
        prop_assert!(map.iter().all(|n| list.contains(n)));
        let mut other = list.clone();
        other.rotate_left(rotate.index(list.len()));
        other.reverse();
        prop_assert_eq!(&map, &placement(&svc, num_shards, &other));
        prop_assert!(placement(&svc, num_shards, &[]).is_empty());
    }

    /// Adding a node moves shards only onto it; removing it again gives back the same map
    /// (removing a node moves only its shards).
    #[test]
    fn a_new_node_takes_shards_only_for_itself(
        svc in service(),
        num_shards in 1u32..200,
        list in nodes(2..9),
        new in any::<prop::sample::Index>(),
    ) {
        let new = list[new.index(list.len())].clone();
        let without: Vec<NodeId> = list.iter().filter(|n| **n != new).cloned().collect();
        let before = placement(&svc, num_shards, &without);
        let after = placement(&svc, num_shards, &list);
        for (s, (b, a)) in before.iter().zip(&after).enumerate() {
            if b != a {
                prop_assert_eq!(a, &new, "shard {} moved from {} to {}, not to the new node", s, b, a);
            }
        }
    }
}

/// A cluster's answers about one service: the configured placement, the hosts, and what each
/// node says, built from a few placements so that agreement and disagreement both occur.
#[derive(Debug, Clone)]
struct Scenario {
    configured: Recorded,
    hosts: Vec<String>,
    answers: Vec<(String, Answer)>,
}

fn recorded(pool: &[String], shards: u32) -> impl Strategy<Value = Recorded> + use<> {
    prop::collection::vec(prop::sample::select(pool.to_vec()), shards as usize)
        .prop_map(move |owners| Recorded { shards, owners })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let pool: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
    (1u32..12, prop::sample::subsequence(pool.clone(), 1..=5)).prop_flat_map(
        move |(shards, hosts)| {
            let configured = recorded(&hosts, shards);
            // Records a node may hold: the configured one, an older one over the whole pool, one
            // with another shard count, and a malformed one (its owners do not match its count).
            let older = recorded(&pool, shards);
            let resized = (1u32..12).prop_flat_map({
                let pool = pool.clone();
                move |n| recorded(&pool, n)
            });
            let malformed = recorded(&pool, shards).prop_map(|mut r| {
                r.owners.pop();
                r
            });
            (configured, older, resized, malformed).prop_flat_map({
                let pool = pool.clone();
                let hosts = hosts.clone();
                move |(configured, older, resized, malformed)| {
                    // Weighted so that the nodes holding data often agree: the interesting cases
                    // are the ones that are not refused outright.
                    let record = prop_oneof![
                        1 => Just(None),
                        2 => Just(Some(configured.clone())),
                        6 => Just(Some(older.clone())),
                        1 => Just(Some(resized.clone())),
                        1 => Just(Some(malformed.clone())),
                    ];
                    let answer = (record, prop::bool::weighted(0.35))
                        .prop_map(|(recorded, has_data)| Answer { recorded, has_data });
                    let (hosts, pool) = (hosts.clone(), pool.clone());
                    prop::collection::vec(answer, pool.len()).prop_map(move |answers| Scenario {
                        configured: configured.clone(),
                        hosts: hosts.clone(),
                        answers: pool.iter().cloned().zip(answers).collect(),
                    })
                }
            })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decide_never_serves_a_shard_away_from_its_data(sc in scenario()) {
        let d = decide("kv", &sc.configured, &sc.hosts, &sc.answers);
        // What the nodes that hold data recorded (one that holds data without a record counts
        // as holding the configured placement).
        let held: Vec<Recorded> = sc
            .answers
            .iter()
            .filter(|(_, a)| a.has_data)
            .map(|(_, a)| a.recorded.clone().unwrap_or_else(|| sc.configured.clone()))
            .collect();
        if let Some(why) = &d.refused {
            prop_assert!(d.slots.is_empty(), "refused ({}) yet serves {:?}", why, d.slots);
            return Ok(());
        }
        prop_assert_eq!(d.slots.len(), sc.configured.shards as usize);
        for (shard, slot) in d.slots.iter().enumerate() {
            match slot {
                Slot::On(node) => {
                    prop_assert!(sc.hosts.contains(node), "shard {} on {}, not a host", shard, node);
                    for r in &held {
                        prop_assert_eq!(
                            &r.owners[shard], node,
                            "shard {} served by {}, but its data is recorded on {}", shard, node, &r.owners[shard]
                        );
                    }
                    if held.is_empty() {
                        prop_assert_eq!(&sc.configured.owners[shard], node);
                    }
                }
                Slot::Refused(why) => {
                    let owner = &d.record.as_ref().unwrap().owners[shard];
                    prop_assert!(!sc.hosts.contains(owner), "shard {} refused ({}) though {} hosts it", shard, why, owner);
                    prop_assert!(why.contains(owner.as_str()), "{}", why);
                }
            }
        }
        // The moves shown are exactly the shards whose data is not where configured.
        let record = d.record.as_ref().unwrap();
        let moved: BTreeSet<u32> = d.pending.iter().map(|m| m.shard).collect();
        for shard in 0..sc.configured.shards {
            let differs = record.owners[shard as usize] != sc.configured.owners[shard as usize];
            prop_assert_eq!(moved.contains(&shard), differs, "shard {}", shard);
        }
    }

    #[test]
    fn decide_refuses_a_changed_shard_count_or_disagreeing_holders(sc in scenario()) {
        let d = decide("kv", &sc.configured, &sc.hosts, &sc.answers);
        let held: Vec<Recorded> = sc
            .answers
            .iter()
            .filter(|(_, a)| a.has_data)
            .map(|(_, a)| a.recorded.clone().unwrap_or_else(|| sc.configured.clone()))
            .collect();
        let disagree = held.windows(2).any(|w| w[0] != w[1]);
        let resized = held.iter().any(|r| r.shards != sc.configured.shards || r.owners.len() != r.shards as usize);
        prop_assert_eq!(d.refused.is_some(), disagree || resized, "{:?}", d);
        if disagree {
            prop_assert_eq!(d.record, None, "disagreeing holders must not overwrite records");
        } else if let Some(first) = held.first() {
            prop_assert_eq!(d.record.as_ref(), Some(first), "the data's placement is recorded");
        } else {
            prop_assert_eq!(d.record.as_ref(), Some(&sc.configured));
        }
    }

    /// Every node decides from the same answers, each in its own order (its own first).
    #[test]
    fn decide_does_not_depend_on_the_order_of_the_answers(sc in scenario(), rotate in any::<prop::sample::Index>()) {
        let d = decide("kv", &sc.configured, &sc.hosts, &sc.answers);
        let mut answers = sc.answers.clone();
        let by = rotate.index(answers.len());
        answers.rotate_left(by);
        answers.reverse();
        let e = decide("kv", &sc.configured, &sc.hosts, &answers);
        prop_assert_eq!(d.record, e.record);
        prop_assert_eq!(d.slots, e.slots);
        prop_assert_eq!(d.pending, e.pending);
        prop_assert_eq!(d.refused.is_some(), e.refused.is_some());
    }
}

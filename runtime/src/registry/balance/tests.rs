use std::collections::HashMap;

use super::*;

fn members(n: u32) -> Vec<Candidate> {
    (0..n)
        .map(|i| Candidate {
            identity: Candidate::identity_of(&format!("n{}", i % 3 + 1), i / 3),
            outstanding: 0,
        })
        .collect()
}

fn picks(
    b: &impl Balancer,
    c: &[Candidate],
    inputs: impl Iterator<Item = PickInput>,
) -> Vec<usize> {
    inputs.map(|i| b.pick(c, &i).unwrap()).collect()
}

#[test]
fn empty_candidates_pick_nothing() {
    let input = PickInput {
        key: Some(1),
        ..PickInput::default()
    };
    assert_eq!(RoundRobin.pick(&[], &input), None);
    assert_eq!(LeastOutstanding.pick(&[], &input), None);
    assert_eq!(KeyAffinity.pick(&[], &input), None);
}

#[test]
fn round_robin_is_exactly_even() {
    let c = members(6);
    let chosen = picks(
        &RoundRobin,
        &c,
        (0..600).map(|counter| PickInput {
            counter,
            ..PickInput::default()
        }),
    );
    let mut counts = HashMap::new();
    for i in chosen {
        *counts.entry(i).or_insert(0) += 1;
    }
    assert_eq!(counts.len(), 6);
    assert!(counts.values().all(|n| *n == 100));
}

#[test]
fn least_outstanding_avoids_the_busy_member_and_never_picks_one_twice() {
    let mut c = members(4);
    c[2].outstanding = 50;
    let mut state = 0x1234_5678_u64;
    let mut next = || {
        state = mix(state);
        state
    };
    let mut counts = [0usize; 4];
    for _ in 0..4000 {
        let i = LeastOutstanding
            .pick(
                &c,
                &PickInput {
                    random: [next(), next()],
                    ..PickInput::default()
                },
            )
            .unwrap();
        counts[i] += 1;
    }
    // The busy member wins only when both draws are... never: any pair with it has a lighter one.
    assert_eq!(counts[2], 0, "{counts:?}");
    for i in [0, 1, 3] {
        assert!(counts[i] > 1000, "{counts:?}");
    }
    // With two members, the two draws are always distinct: the lighter one always wins.
    let two = [
        Candidate {
            identity: 1,
            outstanding: 3,
        },
        Candidate {
            identity: 2,
            outstanding: 1,
        },
    ];
    for r in 0..100 {
        assert_eq!(
            LeastOutstanding.pick(
                &two,
                &PickInput {
                    random: [r, r * 7],
                    ..PickInput::default()
                }
            ),
            Some(1)
        );
    }
}

#[test]
fn key_affinity_is_stable_and_spreads_keys() {
    let c = members(6);
    let mut counts = [0usize; 6];
    for key in 0..6000u64 {
        let input = PickInput {
            key: Some(mix(key)),
            counter: key,
            ..PickInput::default()
        };
        let first = KeyAffinity.pick(&c, &input).unwrap();
        let again = KeyAffinity
            .pick(
                &c,
                &PickInput {
                    counter: key + 99,
                    ..input
                },
            )
            .unwrap();
        assert_eq!(first, again, "the same key goes to the same member");
        counts[first] += 1;
    }
    for n in counts {
        assert!((700..1300).contains(&n), "uneven spread: {counts:?}");
    }
}

#[test]
fn when_a_member_leaves_only_its_keys_move() {
    let all = members(6);
    let gone = 4;
    let remaining: Vec<Candidate> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != gone)
        .map(|(_, c)| *c)
        .collect();
    let mut moved = 0;
    for key in 0..5000u64 {
        let input = PickInput {
            key: Some(mix(key)),
            ..PickInput::default()
        };
        let before = all[KeyAffinity.pick(&all, &input).unwrap()].identity;
        let after = remaining[KeyAffinity.pick(&remaining, &input).unwrap()].identity;
        if before == all[gone].identity {
            moved += 1;
            assert_ne!(after, before);
        } else {
            assert_eq!(after, before, "key {key} moved although its member stayed");
        }
    }
    assert!(moved > 500, "the departed member owned {moved} keys");
    // And when it comes back (a restart keeps its identity), its keys come back to it.
    for key in 0..1000u64 {
        let input = PickInput {
            key: Some(mix(key)),
            ..PickInput::default()
        };
        let first = KeyAffinity.pick(&all, &input);
        let mut reordered = all.clone();
        reordered.reverse();
        let again = reordered[KeyAffinity.pick(&reordered, &input).unwrap()].identity;
        assert_eq!(
            all[first.unwrap()].identity,
            again,
            "order of candidates does not matter"
        );
    }
}

#[test]
fn key_affinity_without_a_key_falls_back_to_round_robin() {
    let c = members(3);
    let chosen = picks(
        &KeyAffinity,
        &c,
        (0..3).map(|counter| PickInput {
            counter,
            ..PickInput::default()
        }),
    );
    assert_eq!(chosen, vec![0, 1, 2]);
}

/// Properties over arbitrary candidates and inputs, for what callers of a balancer rely on.
mod proptests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    fn candidates(max: usize) -> impl Strategy<Value = Vec<Candidate>> {
        prop::collection::vec((any::<u64>(), 0usize..8), 0..max).prop_map(|v| {
            v.into_iter()
                .map(|(identity, outstanding)| Candidate {
                    identity,
                    outstanding,
                })
                .collect()
        })
    }

    /// Candidates with distinct identities (as members' node and slot make them).
    fn members(range: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Candidate>> {
        prop::collection::hash_set(any::<u64>(), range).prop_map(|ids| {
            ids.into_iter()
                .map(|identity| Candidate {
                    identity,
                    outstanding: 0,
                })
                .collect()
        })
    }

    fn inputs() -> impl Strategy<Value = PickInput> {
        (any::<u64>(), any::<[u64; 2]>(), any::<Option<u64>>()).prop_map(
            |(counter, random, key)| PickInput {
                counter,
                random,
                key,
            },
        )
    }

    const ALL: [Balance; 3] = [
        Balance::RoundRobin,
        Balance::LeastOutstanding,
        Balance::KeyAffinity,
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn a_pick_is_one_of_the_candidates(c in candidates(12), input in inputs()) {
            for balance in ALL {
                match balance.pick(&c, &input) {
                    None => prop_assert!(c.is_empty(), "{balance:?} picked nothing of {}", c.len()),
                    Some(i) => prop_assert!(i < c.len(), "{balance:?} picked {i} of {}", c.len()),
                }
            }
        }

        #[test]
        fn round_robin_gives_each_member_one_turn_per_cycle(
            n in 1usize..20,
            start in 0u64..u64::MAX / 2,
        ) {
            let c: Vec<Candidate> = (0..n as u64)
                .map(|identity| Candidate { identity, outstanding: 0 })
                .collect();
            let mut turns = vec![0usize; n];
            for counter in start..start + n as u64 {
                let input = PickInput { counter, ..PickInput::default() };
                turns[RoundRobin.pick(&c, &input).unwrap()] += 1;
            }
            prop_assert!(turns.iter().all(|t| *t == 1), "{turns:?}");
        }

        /// Power of two choices over uniformly drawn pairs: member `i` is chosen against every
        /// lighter-loaded partner never, every busier partner always, and an equally loaded one
        /// half the time. Both draws range over a multiple of `n` and `n - 1`, so that every
        /// reduction of them is uniform too.
        #[test]
        fn least_outstanding_prefers_the_lighter_of_two_distinct_members(
            loads in prop::collection::vec(0usize..4, 2..7),
        ) {
            let n = loads.len();
            let c: Vec<Candidate> = loads
                .iter()
                .enumerate()
                .map(|(i, &outstanding)| Candidate { identity: i as u64, outstanding })
                .collect();
            let span = (n * (n - 1)) as u64;
            let mut chosen = vec![0u64; n];
            for r0 in 0..span {
                for r1 in 0..span {
                    let input = PickInput { random: [r0, r1], ..PickInput::default() };
                    chosen[LeastOutstanding.pick(&c, &input).unwrap()] += 1;
                }
            }
            for i in 0..n {
                let busier = loads.iter().filter(|l| **l > loads[i]).count() as u64;
                let equal = loads.iter().filter(|l| **l == loads[i]).count() as u64 - 1;
                // Each ordered pair of distinct members is drawn span^2 / (n (n - 1)) = span times.
                let expected = span * (2 * busier + equal);
                prop_assert_eq!(chosen[i], expected, "member {} of loads {:?}: {:?}", i, loads, chosen);
            }
        }

        #[test]
        fn least_outstanding_never_picks_the_single_busiest(
            c in candidates(10),
            random in any::<[u64; 2]>(),
        ) {
            let Some(max) = c.iter().map(|c| c.outstanding).max() else { return Ok(()) };
            let busiest: Vec<usize> = (0..c.len()).filter(|i| c[*i].outstanding == max).collect();
            let input = PickInput { random, ..PickInput::default() };
            let i = LeastOutstanding.pick(&c, &input).unwrap();
            if c.len() >= 2 && busiest.len() == 1 {
                prop_assert_ne!(i, busiest[0], "picked the only member with {} in flight", max);
            }
        }

        #[test]
        fn key_affinity_depends_on_the_key_and_the_members_only(
            c in members(1..10),
            key in any::<u64>(),
            a in inputs(),
            b in inputs(),
            rotate in 0usize..10,
        ) {
            let first = KeyAffinity.pick(&c, &PickInput { key: Some(key), ..a }).unwrap();
            let mut reordered = c.clone();
            reordered.rotate_left(rotate % c.len());
            reordered.reverse();
            let again = KeyAffinity.pick(&reordered, &PickInput { key: Some(key), ..b }).unwrap();
            prop_assert_eq!(c[first].identity, reordered[again].identity);
        }

        /// When a member leaves, only the keys it had move; when it comes back, it gets exactly
        /// those keys back (that is also what adding a member does).
        #[test]
        fn key_affinity_moves_only_the_keys_of_the_member_that_left(
            c in members(2..10),
            gone in any::<prop::sample::Index>(),
            keys in prop::collection::vec(any::<u64>(), 64),
        ) {
            let gone = gone.index(c.len());
            let left: Vec<Candidate> =
                c.iter().enumerate().filter(|(i, _)| *i != gone).map(|(_, c)| *c).collect();
            let lost: HashSet<u64> = [c[gone].identity].into();
            for key in keys {
                let input = PickInput { key: Some(key), ..PickInput::default() };
                let before = c[KeyAffinity.pick(&c, &input).unwrap()].identity;
                let after = left[KeyAffinity.pick(&left, &input).unwrap()].identity;
                if lost.contains(&before) {
                    prop_assert_ne!(after, before);
                } else {
                    prop_assert_eq!(after, before, "key {} moved although its member stayed", key);
                }
            }
        }
    }
}

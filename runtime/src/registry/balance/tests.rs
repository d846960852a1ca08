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

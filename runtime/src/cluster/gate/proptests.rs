//! Properties of the gate over arbitrary sequences of sessions opening, authenticating and
//! waiting: strangers waiting never exceed the cap, our own dials are never pushed out, the
//! oldest stranger goes first, and no session outlives its deadline once expiry is checked.

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    /// A session opens, `gap` ms after the previous event.
    Open { incoming: bool, gap: u64 },
    /// The `n`th session opened so far (modulo) authenticates or closes.
    Settle { n: usize },
    /// Expiry is checked, `gap` ms after the previous event.
    Expire { gap: u64 },
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        4 => (prop::bool::weighted(0.8), 0u64..300).prop_map(|(incoming, gap)| Op::Open { incoming, gap }),
        2 => any::<usize>().prop_map(|n| Op::Settle { n }),
        1 => (0u64..1500).prop_map(|gap| Op::Expire { gap }),
    ];
    prop::collection::vec(op, 1..80)
}

/// A session as the test sees it.
#[derive(Debug, Clone, Copy)]
struct Session {
    opened: Instant,
    incoming: bool,
    waiting: bool,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_gate_bounds_strangers_and_keeps_deadlines(
        max in 0usize..6,
        deadline in 1u64..2000,
        ops in ops(),
    ) {
        let deadline = Duration::from_millis(deadline);
        let mut gate: Gate<usize, usize> = Gate::new(deadline, max);
        let mut sessions: Vec<Session> = Vec::new();
        let mut now = Instant::now();
        for op in ops {
            match op {
                Op::Open { incoming, gap } => {
                    now += Duration::from_millis(gap);
                    let key = sessions.len();
                    sessions.push(Session { opened: now, incoming, waiting: true });
                    for (dropped, why) in gate.opened(key, key, incoming, now) {
                        prop_assert_eq!(why, DropReason::Crowded);
                        let s = sessions[dropped];
                        prop_assert!(s.waiting && s.incoming, "dropped {:?} for crowding", s);
                        let oldest = sessions.iter().position(|s| s.waiting && s.incoming);
                        prop_assert_eq!(oldest, Some(dropped), "not the oldest stranger");
                        sessions[dropped].waiting = false;
                    }
                }
                Op::Settle { n } => {
                    if sessions.is_empty() {
                        continue;
                    }
                    let key = n % sessions.len();
                    prop_assert_eq!(gate.settled(&key), sessions[key].waiting);
                    sessions[key].waiting = false;
                }
                Op::Expire { gap } => {
                    now += Duration::from_millis(gap);
                    let mut late: Vec<usize> = gate
                        .expired(now)
                        .into_iter()
                        .map(|(key, why)| {
                            assert_eq!(why, DropReason::Deadline);
                            key
                        })
                        .collect();
                    late.sort_unstable();
                    let expected: Vec<usize> = (0..sessions.len())
                        .filter(|k| sessions[*k].waiting && now.duration_since(sessions[*k].opened) >= deadline)
                        .collect();
                    prop_assert_eq!(&late, &expected);
                    for k in late {
                        sessions[k].waiting = false;
                    }
                }
            }
            let strangers = sessions.iter().filter(|s| s.waiting && s.incoming).count();
            prop_assert!(strangers <= max, "{} strangers wait, cap {}", strangers, max);
            prop_assert_eq!(gate.len(), sessions.iter().filter(|s| s.waiting).count());
        }
    }
}

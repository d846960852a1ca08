//! Properties of the restart decision over arbitrary policies and histories of deaths: the
//! intensity limit holds in every window, and nothing escalates before it is reached; crash
//! loops back off within the policy's bounds and a stable run starts the backoff afresh; the
//! same for the pauses of a supervisor that cools down instead of giving up.

use std::collections::VecDeque;

use proptest::prelude::*;
use tokio::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::supervisor::cooling::cool_down_pause;
use crate::supervisor::{Decision, RestartPolicy};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn policy() -> impl Strategy<Value = RestartPolicy> {
    (
        0usize..6,
        1u64..1000,
        0u64..500,
        1u64..50,
        0u64..2000,
        0.0..=1.0f64,
    )
        .prop_map(
            |(max_restarts, within, stable_after, min, max, jitter)| RestartPolicy {
                max_restarts,
                within: ms(within),
                stable_after: ms(stable_after),
                backoff: Backoff::new(ms(min), ms(max), jitter),
            },
        )
}

/// Deaths: the time since the previous one, how long the child had run, the jitter draw.
fn deaths() -> impl Strategy<Value = Vec<(u64, u64, f64)>> {
    prop::collection::vec((0u64..400, 0u64..1000, 0.0..1.0f64), 1..60)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn restarts_respect_the_intensity_limit_and_only_it(p in policy(), deaths in deaths()) {
        let start = Instant::now();
        let mut recent = VecDeque::new();
        let mut rapid = 0u32;
        let mut granted: Vec<Instant> = Vec::new();
        let mut now = start;
        for (gap, lived, unit) in deaths {
            now += ms(gap);
            let in_window = granted.iter().filter(|t| now.duration_since(**t) < p.within).count();
            match p.decide(&mut recent, &mut rapid, ms(lived), now, unit) {
                Decision::Restart { .. } => {
                    prop_assert!(
                        in_window < p.max_restarts,
                        "restart number {} within {:?} allowed (limit {})",
                        in_window + 1, p.within, p.max_restarts
                    );
                    granted.push(now);
                }
                Decision::Escalate => prop_assert!(
                    in_window >= p.max_restarts,
                    "escalated after only {} restarts within {:?} (limit {})",
                    in_window, p.within, p.max_restarts
                ),
            }
        }
    }

    #[test]
    fn crash_loops_back_off_within_bounds_and_a_stable_run_starts_afresh(
        p in policy(),
        deaths in deaths(),
    ) {
        // No intensity limit here: only the delays are looked at.
        let p = RestartPolicy { max_restarts: usize::MAX, ..p };
        let (min, max) = (p.backoff.delay(0, 0.0), p.backoff.delay(u32::MAX, 1.0));
        let mut recent = VecDeque::new();
        let mut rapid = 0u32;
        let mut now = Instant::now();
        let mut last_undisturbed: Option<Duration> = None;
        for (gap, lived, _) in deaths {
            now += ms(gap);
            let lived = ms(lived);
            // At the middle draw, so that growth is visible without jitter.
            let Decision::Restart { after } = p.decide(&mut recent, &mut rapid, lived, now, 0.5) else {
                return Err(TestCaseError::fail("escalated without a limit"));
            };
            if lived >= p.stable_after {
                prop_assert_eq!(after, Duration::ZERO, "a child that ran {:?} restarts at once", lived);
                last_undisturbed = None;
                continue;
            }
            prop_assert!(min <= after && after <= max, "{:?} outside {:?}..={:?}", after, min, max);
            match last_undisturbed {
                None => prop_assert_eq!(after, p.backoff.delay(0, 0.5), "the first rapid failure waits the least"),
                Some(last) => prop_assert!(after >= last, "{:?} after {:?}", after, last),
            }
            last_undisturbed = Some(after);
        }
    }

    /// A supervisor that gives up again soon after resuming pauses longer each time (up to
    /// the backoff's cap); one whose children ran for `within` since resuming starts over
    /// from the shortest pause.
    #[test]
    fn cool_downs_grow_while_storms_go_on_and_start_over_after_calm(
        min in 1u64..2000,
        max in 0u64..60_000,
        within in 1u64..20_000,
        // The time from each resume to the next give-up.
        calm in prop::collection::vec(0u64..30_000, 1..30),
    ) {
        let backoff = Backoff::new(ms(min), ms(max), 0.2);
        let within = ms(within);
        let (shortest, longest) = (backoff.delay(0, 0.0), backoff.delay(u32::MAX, 1.0));
        let mut num_recent = 0u32;
        let mut now = Instant::now();
        let mut resumed_at = None;
        let mut last: Option<Duration> = None;
        for calm in calm {
            // At the middle draw, so that growth is visible without jitter.
            let jittered = cool_down_pause(&backoff, &mut num_recent.clone(), resumed_at, within, now, 1.0);
            let pause = cool_down_pause(&backoff, &mut num_recent, resumed_at, within, now, 0.5);
            prop_assert!(shortest <= pause && jittered <= longest, "{:?} / {:?} outside {:?}..={:?}", pause, jittered, shortest, longest);
            let fresh = resumed_at.is_none_or(|t: Instant| now.duration_since(t) >= within);
            match (fresh, last) {
                (true, _) | (_, None) => prop_assert_eq!(pause, backoff.delay(0, 0.5), "not the shortest pause"),
                (false, Some(last)) => prop_assert!(pause >= last, "{:?} after {:?}", pause, last),
            }
            last = Some(pause);
            now += pause;
            resumed_at = Some(now);
            now += ms(calm);
        }
    }
}

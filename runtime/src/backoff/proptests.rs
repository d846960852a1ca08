//! Properties of [`Backoff`] over arbitrary bounds, jitter, attempts and draws, including
//! nonsense ones (a configuration or a caller may hand over anything).

use proptest::prelude::*;

use super::*;

/// Durations from nothing to `Duration::MAX`, weighted towards the ones configured in practice.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        4 => (0u64..60_000).prop_map(Duration::from_millis),
        1 => (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        1 => Just(Duration::MAX),
        1 => Just(Duration::ZERO),
    ]
}

/// Any fraction, and any float at all.
fn fraction() -> impl Strategy<Value = f64> {
    prop_oneof![3 => 0.0..=1.0f64, 1 => any::<f64>()]
}

/// `d * f`, saturating (the test's own arithmetic must not panic where the code under test
/// must not).
fn scale(d: Duration, f: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * f).unwrap_or(Duration::MAX)
}

/// Float arithmetic on durations is exact to about one part in 2^52.
fn slack(d: Duration) -> Duration {
    Duration::from_nanos(1).saturating_add(scale(d, 1e-12))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every delay lies between `min` less the jitter and `max` (a `max` below `min` counts
    /// as `min`), whatever the inputs.
    #[test]
    fn a_delay_stays_within_its_bounds(
        min in duration(),
        max in duration(),
        jitter in fraction(),
        attempt in any::<u32>(),
        unit in fraction(),
    ) {
        let b = Backoff::new(min, max, jitter);
        let d = b.delay(attempt, unit);
        let cap = max.max(min);
        let j = if jitter.is_finite() { jitter.clamp(0.0, 1.0) } else { 0.0 };
        prop_assert!(d <= cap, "{:?} over the cap {:?}", d, cap);
        let floor = scale(min, 1.0 - j);
        prop_assert!(d.saturating_add(slack(floor)) >= floor, "{:?} under {:?}", d, floor);
    }

    /// Without jitter (or at the middle draw) the delay is `min * 2^attempt` capped at `max`,
    /// and it never shrinks from one attempt to the next at the same draw.
    #[test]
    fn delays_double_up_to_the_cap_and_never_shrink(
        min in duration(),
        max in duration(),
        jitter in fraction(),
        unit in fraction(),
        attempts in 0u32..70,
    ) {
        let b = Backoff::new(min, max, jitter);
        let cap = max.max(min);
        let mut last = Duration::ZERO;
        for attempt in 0..attempts {
            let undisturbed = b.delay(attempt, 0.5);
            let expected = min.saturating_mul(2u32.saturating_pow(attempt.min(31))).min(cap);
            prop_assert!(
                undisturbed.abs_diff(expected) <= slack(expected),
                "attempt {}: {:?}, expected {:?}", attempt, undisturbed, expected
            );
            let d = b.delay(attempt, unit);
            prop_assert!(d.saturating_add(slack(d)) >= last, "attempt {}: {:?} after {:?}", attempt, d, last);
            last = d;
        }
    }
}

//! Exponential backoff with jitter, as a pure function of the attempt number and a random draw.
//!
//! Keeping the randomness an argument lets tests pin the jitter (`unit = 0.5` is "no jitter") and
//! check bounds exactly; callers draw `unit` from `rand`.
//!
//! ```
//! use std::time::Duration;
//! use troupe_runtime::backoff::Backoff;
//!
//! let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 0.2);
//! assert_eq!(backoff.delay(0, 0.5), Duration::from_millis(100));
//! assert_eq!(backoff.delay(3, 0.5), Duration::from_millis(800));
//! assert_eq!(backoff.delay(30, 0.5), Duration::from_secs(1));
//! ```

use std::time::Duration;

/// How long to wait before the next attempt: `min * 2^attempt`, capped at `max`, spread by
/// `± jitter` (a fraction) so that many nodes retrying at once do not retry in step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    jitter: f64,
}

impl Backoff {
    /// A backoff from `min` doubling up to `max`; `jitter` is clamped to `0.0..=1.0`.
    pub fn new(min: Duration, max: Duration, jitter: f64) -> Self {
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Self {
            min,
            max: max.max(min),
            jitter,
        }
    }

    /// A backoff from `min` to `max` with 20% jitter, usable in constants.
    pub const fn constant_bounds(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            jitter: 0.2,
        }
    }

    /// The delay before attempt number `attempt` (0 for the first retry). `unit` is a random
    /// draw in `0.0..1.0`: 0.5 gives the undisturbed delay. The result never exceeds `max`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let base = self
            .min
            .saturating_mul(2u32.saturating_pow(attempt.min(31)))
            .min(self.max);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let factor = 1.0 + self.jitter * (2.0 * unit - 1.0);
        // Not `mul_f64`: it panics when the product passes `Duration::MAX`, which bounds near
        // it reach (even at factor 1.0, through rounding to f64); such a delay is the cap.
        Duration::try_from_secs_f64(base.as_secs_f64() * factor)
            .map_or(self.max, |d| d.min(self.max))
    }

    /// The delay before attempt `attempt`, with the jitter drawn from the thread's generator.
    pub fn delay_random(&self, attempt: u32) -> Duration {
        self.delay(attempt, rand::random::<f64>())
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_from_min_and_stops_at_max() {
        let b = Backoff::new(ms(50), ms(1000), 0.0);
        let delays: Vec<_> = (0..7).map(|a| b.delay(a, 0.9)).collect();
        assert_eq!(
            delays,
            vec![
                ms(50),
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1000),
                ms(1000)
            ]
        );
        assert_eq!(b.delay(u32::MAX, 0.3), ms(1000));
    }

    #[test]
    fn jitter_spreads_within_bounds_and_never_over_max() {
        let b = Backoff::new(ms(100), ms(1000), 0.2);
        assert_eq!(b.delay(1, 0.0), ms(160));
        assert_eq!(b.delay(1, 1.0), ms(240));
        for attempt in 0..40 {
            for step in 0..=20 {
                let d = b.delay(attempt, f64::from(step) / 20.0);
                assert!(d <= ms(1000), "attempt {attempt}: {d:?} over the cap");
                assert!(
                    d >= ms(80),
                    "attempt {attempt}: {d:?} under min minus jitter"
                );
            }
        }
    }

    #[test]
    fn nonsense_inputs_are_tamed() {
        let b = Backoff::new(ms(100), ms(10), f64::NAN);
        assert_eq!(b.delay(0, f64::NAN), ms(100));
        assert_eq!(b.delay(5, 7.0), ms(100));
    }

    #[test]
    fn bounds_near_the_largest_duration_do_not_panic() {
        let b = Backoff::new(Duration::MAX, Duration::MAX, 0.2);
        assert_eq!(b.delay(0, 0.5), Duration::MAX);
        assert_eq!(b.delay(3, 1.0), Duration::MAX);
        assert!(b.delay(0, 0.0) >= Duration::MAX.mul_f64(0.79));
    }
}

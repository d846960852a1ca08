//! The restart decision, as a pure function of the restart history and the time.

use std::collections::VecDeque;

use tokio::time::{Duration, Instant};

use crate::backoff::Backoff;

/// When and how often a supervisor restarts its children.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestartPolicy {
    /// More than this many restarts within `within` escalates.
    pub max_restarts: usize,
    /// The intensity window.
    pub within: Duration,
    /// A child that ran at least this long before dying is restarted at once.
    pub stable_after: Duration,
    /// Backoff for children that die again soon after a restart.
    pub backoff: Backoff,
}

impl Default for RestartPolicy {
    /// 50 restarts in 10 s before giving up; children that ran 500 ms restart at once; crash
    /// loops back off from 10 ms to 5 s.
    fn default() -> Self {
        Self {
            max_restarts: 50,
            within: Duration::from_secs(10),
            stable_after: Duration::from_millis(500),
            backoff: Backoff::new(Duration::from_millis(10), Duration::from_secs(5), 0.2),
        }
    }
}

/// What to do about a dead child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after this delay (zero: at once).
    Restart {
        /// The backoff.
        after: Duration,
    },
    /// Give up and fail the supervisor.
    Escalate,
}

impl RestartPolicy {
    /// Decides about a child that died at `now` after running for `lived`. `recent` holds the
    /// supervisor's restart times (pruned and appended here); `num_rapid_failures` is the child's
    /// count of deaths soon after a start (updated here); `unit` is a random draw for jitter.
    pub fn decide(
        &self,
        recent: &mut VecDeque<Instant>,
        num_rapid_failures: &mut u32,
        lived: Duration,
        now: Instant,
        unit: f64,
    ) -> Decision {
        while recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.within)
        {
            recent.pop_front();
        }
        if recent.len() >= self.max_restarts {
            return Decision::Escalate;
        }
        recent.push_back(now);
        if lived >= self.stable_after {
            *num_rapid_failures = 0;
            return Decision::Restart {
                after: Duration::ZERO,
            };
        }
        Decision::Restart {
            after: self.backoff_after_rapid_failure(num_rapid_failures, unit),
        }
    }

    /// The backoff after one more rapid failure (counted here).
    pub fn backoff_after_rapid_failure(&self, num_rapid_failures: &mut u32, unit: f64) -> Duration {
        let attempt = *num_rapid_failures;
        *num_rapid_failures = num_rapid_failures.saturating_add(1);
        self.backoff.delay(attempt, unit)
    }
}

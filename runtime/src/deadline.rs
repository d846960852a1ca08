//! Deadlines: how long a sender may wait. A leaf module: the router and the transport both use
//! it, and neither depends on the other for it.

use tokio::time::Instant;

/// How long a sender may wait for room: computing a deadline reads the clock, so a cast that
/// finds room at once never does.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Patience {
    /// Until this instant.
    Until(Instant),
    /// For this long from when waiting starts.
    For(std::time::Duration),
}

impl Patience {
    pub(crate) fn deadline(self) -> Instant {
        match self {
            Self::Until(deadline) => deadline,
            Self::For(timeout) => Instant::now() + timeout,
        }
    }

    /// The deadline, computed on first use and the same afterwards.
    pub(crate) fn deadline_later(self) -> LazyDeadline {
        LazyDeadline {
            patience: self,
            at: std::cell::Cell::new(None),
        }
    }
}

/// A deadline read from the clock on first use only.
pub(crate) struct LazyDeadline {
    patience: Patience,
    at: std::cell::Cell<Option<Instant>>,
}

impl LazyDeadline {
    pub(crate) fn get(&self) -> Instant {
        match self.at.get() {
            Some(at) => at,
            None => {
                let at = self.patience.deadline();
                self.at.set(Some(at));
                at
            }
        }
    }
}

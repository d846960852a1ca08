//! The bound on a member's mailbox: a count of queued messages that senders reserve and the
//! member releases.
//!
//! ractor's mailboxes are unbounded; this counter is what bounds them. It is cheaper than a
//! semaphore on the hot path: a sender reserves with one atomic add, and the member releases
//! in bulk (every [`RELEASE_EVERY`] messages, or at once when a sender is waiting), so the
//! counter's cache line does not bounce between sender and member on every message. The bound
//! is therefore approximate by at most that many messages.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;
use tokio::time::{Instant, timeout_at};

/// The member gives back room at least this often when nobody waits.
pub(crate) const RELEASE_EVERY: usize = 64;

/// A value alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Queued messages of one member, against its capacity.
#[derive(Debug)]
pub(crate) struct Mailbox {
    /// Written by every sender: on a line of its own, so that the member reading `waiting`
    /// after each message does not miss its cache every time a sender reserves.
    queued: Padded<AtomicUsize>,
    capacity: usize,
    /// Senders waiting for room.
    waiting: Padded<AtomicUsize>,
    room: Notify,
}

impl Mailbox {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            queued: Padded(AtomicUsize::new(0)),
            capacity: capacity.max(1),
            waiting: Padded(AtomicUsize::new(0)),
            room: Notify::new(),
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Messages reserved and not yet given back (approximate, see the module docs).
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Reserves room for `n` messages if there is some now.
    pub(crate) fn try_reserve(&self, n: usize) -> bool {
        let before = self.queued.fetch_add(n, Ordering::AcqRel);
        if before + n <= self.capacity || before == 0 {
            // (An empty mailbox always takes a batch, even one over the capacity.)
            return true;
        }
        self.queued.fetch_sub(n, Ordering::AcqRel);
        false
    }

    /// Reserves room for `n` messages, waiting until `deadline`; false if none came.
    pub(crate) async fn reserve(&self, n: usize, deadline: Instant) -> bool {
        loop {
            if self.try_reserve(n) {
                return true;
            }
            self.waiting.fetch_add(1, Ordering::AcqRel);
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Room may have been released between the failed try and `enable`.
            let got = self.try_reserve(n) || timeout_at(deadline, notified).await.is_ok();
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            if !got {
                return false;
            }
        }
    }

    /// Whether a sender waits for room (then the member releases at once).
    pub(crate) fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    /// Gives back room for `n` handled messages.
    pub(crate) fn release(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
        if self.has_waiters() {
            self.room.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::time::Duration;

    use super::*;

    #[test]
    fn reserves_up_to_the_capacity() {
        let m = Mailbox::new(3);
        assert!(m.try_reserve(2));
        assert!(m.try_reserve(1));
        assert!(!m.try_reserve(1));
        m.release(2);
        assert!(m.try_reserve(2));
        // An empty mailbox takes an oversized batch rather than refusing it for ever.
        let empty = Mailbox::new(3);
        assert!(empty.try_reserve(10));
        assert!(!empty.try_reserve(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_sender_gets_room_when_it_is_released_or_gives_up_at_its_deadline() {
        let m = Arc::new(Mailbox::new(1));
        assert!(m.try_reserve(1));
        let deadline = Instant::now() + Duration::from_millis(100);
        assert!(
            !m.reserve(1, deadline).await,
            "no room came before the deadline"
        );

        let waiter = {
            let m = Arc::clone(&m);
            tokio::spawn(
                async move { m.reserve(1, Instant::now() + Duration::from_secs(10)).await },
            )
        };
        while !m.has_waiters() {
            tokio::task::yield_now().await;
        }
        m.release(1);
        assert!(waiter.await.unwrap());
    }
}

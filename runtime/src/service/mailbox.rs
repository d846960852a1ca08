//! The bound on a member's mailbox: a count of queued messages that senders reserve and the
//! member releases.
//!
//! ractor's mailboxes are unbounded; this counter is what bounds them. It is cheaper than a
//! semaphore on the hot path: a sender reserves with one atomic add, and the member releases
//! in bulk (every [`RELEASE_EVERY`] messages, or at once when a sender is waiting), so the
//! counter's cache line does not bounce between sender and member on every message. The bound
//! is therefore approximate by at most that many messages.
//!
//! The same counters give the metrics of a member's traffic for free ([`Traffic`]): what
//! senders reserved and the member released adds up to what was sent to it, and the member
//! counts what it handled on a line only it writes (a plain load and store, no locked
//! instruction). They are read at scrape time, never pushed.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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
    /// Messages the member gave back room for (handled), in total: added in bulk.
    released: AtomicU64,
    /// Messages the member handled, in total. Only the member writes it (one member per
    /// mailbox), so it is a load and a store, on a line of its own.
    handled: Padded<AtomicU64>,
}

impl Mailbox {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            queued: Padded(AtomicUsize::new(0)),
            capacity: capacity.max(1),
            waiting: Padded(AtomicUsize::new(0)),
            room: Notify::new(),
            released: AtomicU64::new(0),
            handled: Padded(AtomicU64::new(0)),
        }
    }

    /// Counts `n` handled messages. Called only by the mailbox's member (single writer).
    pub(crate) fn count_handled(&self, n: usize) {
        let n = n as u64;
        let before = self.handled.load(Ordering::Relaxed);
        self.handled
            .store(before.wrapping_add(n), Ordering::Release);
    }

    /// Gives back room reserved for `n` messages that were not delivered (a sender's undo):
    /// unlike [`Mailbox::release`], they do not count as sent.
    pub(crate) fn unreserve(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
        if self.has_waiters() {
            self.room.notify_waiters();
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
        // Before `queued` is lowered: see [`snapshot`].
        self.released.fetch_add(n as u64, Ordering::Release);
        self.queued.fetch_sub(n, Ordering::AcqRel);
        if self.has_waiters() {
            self.room.notify_waiters();
        }
    }
}

/// What one member slot was sent and handled, over all its members (a restarted member gets a
/// new mailbox; the old one's totals are kept here). Read at scrape time.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    /// The slot's current mailbox, and what its earlier mailboxes saw.
    inner: Mutex<TrafficInner>,
}

#[derive(Debug, Default)]
struct TrafficInner {
    current: Option<Arc<Mailbox>>,
    retired: TrafficSnapshot,
    /// The most sent seen: a snapshot races with senders and the member (see [`snapshot`]),
    /// and a counter must not go back.
    most_sent: u64,
}

/// A member slot's (or a service's) traffic now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficSnapshot {
    /// Messages sent to it (taken into its mailbox), in total.
    pub sent: u64,
    /// Messages it handled, in total.
    pub received: u64,
    /// Messages in its mailbox now, not handled yet.
    pub depth: u64,
}

impl std::ops::AddAssign for TrafficSnapshot {
    fn add_assign(&mut self, other: Self) {
        self.sent += other.sent;
        self.received += other.received;
        self.depth += other.depth;
    }
}

impl Traffic {
    /// The mailbox of the slot's new member: the previous one's totals are kept.
    pub(crate) fn mailbox(&self, capacity: usize) -> Arc<Mailbox> {
        let mailbox = Arc::new(Mailbox::new(capacity));
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = inner.current.replace(Arc::clone(&mailbox)) {
            let mut gone = snapshot(&old);
            // What was queued in the old mailbox is lost with its member.
            gone.depth = 0;
            inner.retired += gone;
        }
        mailbox
    }

    /// The slot's traffic now.
    pub(crate) fn snapshot(&self) -> TrafficSnapshot {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut total = inner.retired;
        if let Some(current) = &inner.current {
            total += snapshot(current);
        }
        inner.most_sent = inner.most_sent.max(total.sent);
        total.sent = inner.most_sent;
        total
    }
}

/// One mailbox's totals: sent is what is queued plus what was released; the depth is what is
/// queued less what was handled and not released yet.
///
/// Read in this order, sent is never below handled: a message counted handled was reserved
/// before, and is then still queued when `queued` is read, or was released before, and a
/// release adds to `released` before it takes from `queued`. A release between the two reads
/// counts twice for a moment (an excess, never a loss).
fn snapshot(m: &Mailbox) -> TrafficSnapshot {
    let handled = m.handled.load(Ordering::Acquire);
    let queued = m.queued.load(Ordering::Acquire) as u64;
    let released = m.released.load(Ordering::Acquire);
    let unreleased = handled.saturating_sub(released);
    TrafficSnapshot {
        sent: released + queued,
        received: handled,
        depth: queued.saturating_sub(unreleased),
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

    #[test]
    fn traffic_adds_up_what_was_sent_handled_and_queued_across_mailboxes() {
        let t = Traffic::default();
        let m = t.mailbox(100);
        assert!(m.try_reserve(5));
        assert!(m.try_reserve(1));
        m.unreserve(1); // a send that failed: not sent
        m.count_handled(2); // handled, room not given back yet
        assert_eq!(
            t.snapshot(),
            TrafficSnapshot {
                sent: 5,
                received: 2,
                depth: 3
            }
        );
        m.count_handled(1);
        m.release(3);
        assert_eq!(
            t.snapshot(),
            TrafficSnapshot {
                sent: 5,
                received: 3,
                depth: 2
            }
        );
        // The member restarts: its two queued messages are lost, its totals stay.
        let m2 = t.mailbox(100);
        assert!(m2.try_reserve(1));
        m2.count_handled(1);
        m2.release(1);
        assert_eq!(
            t.snapshot(),
            TrafficSnapshot {
                sent: 6,
                received: 4,
                depth: 0
            }
        );
    }
}

//! One authenticated connection to a peer: a writer task that batches, a reader task that
//! dispatches ([`io`]), and the table of calls waiting for replies.
//!
//! The writer waits for the first envelope, then takes whatever else is already queued (up to
//! [`MAX_BATCH_BYTES`]) and writes it all as one frame, sealed ([`super::seal`]): an idle link
//! adds no latency, a busy one sends large frames. Replies have their own queue, drained first:
//! they must not wait behind a backlog of requests.
//!
//! # Bounds
//!
//! - Requests from this node wait in a bounded queue ([`super::TransportSettings::queue_capacity`]).
//! - Requests from the peer hold a share of the link's reply budget
//!   ([`super::TransportSettings::reply_budget_bytes`]) from when they are read until their
//!   reply is written: when replies back up (a peer that does not read), the reader stops
//!   reading, so the peer's sends block in TCP instead of this node's memory growing.
//! - A frame that cannot be written within [`super::TransportSettings::write_timeout`] closes
//!   the link (the peer does not read), and a write in progress notices a close at once;
//!   closing drops both queues, which frees every budget share and wakes the reader.
//! - A call dropped by its caller (a timeout above it, a client gone) gives back its pending
//!   entry and its in-flight count at once (a drop guard), not when a reply comes.

mod dispatch;
mod io;
#[cfg(test)]
mod tests;

use dispatch::dispatch;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::time::{Instant, timeout_at};

use super::handshake::Keys;
use super::wire::Outgoing;
use super::{Core, Stats};
use crate::cluster::NodeId;
use crate::deadline::Patience;
use crate::service::{CallError, ReplySink, Target};
use crate::telemetry::TraceContext;

/// A frame is written once this much is batched.
pub(crate) const MAX_BATCH_BYTES: usize = 256 * 1024;

/// How many times a busy writer lets other tasks run to gather a larger frame.
const MAX_YIELDS: u32 = 4;

/// How much the reader asks the socket for at a time.
const READ_CHUNK: usize = 256 * 1024;

/// What a call costs of the reply budget beyond its payload: the envelope, the reply's own
/// bookkeeping, and a floor so that many tiny calls are bounded too.
const REPLY_OVERHEAD: usize = 1024;

type Waiter = oneshot::Sender<Result<Bytes, CallError>>;

/// A reply to the peer, holding its request's share of the reply budget until it is written.
struct QueuedReply {
    envelope: Outgoing,
    _share: OwnedSemaphorePermit,
}

/// A handle on a live link. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Link {
    inner: Arc<LinkInner>,
}

struct LinkInner {
    peer: NodeId,
    /// Identifies this connection among successive links to the same peer.
    serial: u64,
    requests: mpsc::Sender<Outgoing>,
    /// Unbounded as a channel, bounded by the budget shares its replies hold.
    replies: mpsc::UnboundedSender<QueuedReply>,
    /// The reply budget, in bytes: see the module docs.
    reply_budget: Arc<Semaphore>,
    pending: Mutex<HashMap<u64, Waiter>>,
    next_correlation: AtomicU64,
    /// Calls waiting for a reply on this link: more than one means the link is busy.
    in_flight: AtomicUsize,
    closed: AtomicBool,
    /// Flips to `true` once, waking both tasks wherever they wait.
    closing: watch::Sender<bool>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("peer", &self.inner.peer)
            .field("serial", &self.inner.serial)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// Starts the tasks of a link over the halves of an authenticated stream.
    pub(crate) fn spawn<R, W>(
        (read, write): (R, W),
        keys: Keys,
        peer: NodeId,
        serial: u64,
        core: Arc<Core>,
    ) -> Self
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (requests, requests_rx) = mpsc::channel(core.settings.queue_capacity);
        let (replies, replies_rx) = mpsc::unbounded_channel();
        let (closing, closing_rx) = watch::channel(false);
        let link = Self {
            inner: Arc::new(LinkInner {
                peer,
                serial,
                requests,
                replies,
                reply_budget: Arc::new(Semaphore::new(
                    core.settings.reply_budget_bytes.min(Semaphore::MAX_PERMITS),
                )),
                pending: Mutex::new(HashMap::new()),
                next_correlation: AtomicU64::new(1),
                in_flight: AtomicUsize::new(0),
                closed: AtomicBool::new(false),
                closing,
            }),
        };
        let Keys { sealer, opener } = keys;
        tokio::spawn(io::write_loop(
            link.clone(),
            write,
            sealer,
            requests_rx,
            replies_rx,
            closing_rx.clone(),
            core.clone(),
        ));
        tokio::spawn(io::read_loop(link.clone(), read, opener, closing_rx, core));
        link
    }

    pub(crate) fn peer(&self) -> &NodeId {
        &self.inner.peer
    }

    pub(crate) fn serial(&self) -> u64 {
        self.inner.serial
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    fn unreachable(&self) -> CallError {
        CallError::Unreachable(self.inner.peer.to_string())
    }

    /// Closes the link: both tasks stop and every waiting call fails as unreachable.
    pub(crate) fn close(&self, why: &str) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!(peer = %self.inner.peer, serial = self.inner.serial, reason = why, "link closed");
        self.inner.closing.send_replace(true);
        let waiters: Vec<Waiter> = {
            let mut pending = self.inner.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.drain().map(|(_, w)| w).collect()
        };
        // Their requests were queued or sent: they may have been applied.
        let lost = CallError::Lost(self.inner.peer.to_string());
        for waiter in waiters {
            let _ = waiter.send(Err(lost.clone()));
        }
    }

    async fn enqueue(&self, envelope: Outgoing, patience: Patience) -> Result<(), CallError> {
        if self.is_closed() {
            return Err(self.unreachable());
        }
        match self.inner.requests.try_send(envelope) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(self.unreachable()),
            Err(mpsc::error::TrySendError::Full(envelope)) => {
                match timeout_at(patience.deadline(), self.inner.requests.send(envelope)).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(_)) => Err(self.unreachable()),
                    Err(_) => Err(CallError::Overloaded),
                }
            }
        }
    }

    /// Sends a one-way request; waits for room in the link's queue until `deadline`.
    pub(crate) async fn cast(
        &self,
        service: Arc<str>,
        target: Target,
        payload: Vec<u8>,
        trace: Option<TraceContext>,
        patience: Patience,
    ) -> Result<(), CallError> {
        let envelope = Outgoing::Request {
            correlation: None,
            target,
            service,
            deadline: None,
            trace,
            payload,
        };
        self.enqueue(envelope, patience).await
    }

    /// Sends a request and waits for its reply until `deadline`. Dropping the future gives
    /// back everything the call holds on the link.
    pub(crate) async fn call(
        &self,
        service: Arc<str>,
        target: Target,
        payload: Vec<u8>,
        trace: Option<TraceContext>,
        deadline: Instant,
    ) -> Result<Bytes, CallError> {
        let correlation = self.inner.next_correlation.fetch_add(1, Ordering::Relaxed);
        let mut guard = CallGuard::new(self, correlation);
        let result = self
            .call_inner(correlation, service, target, payload, trace, deadline)
            .await;
        // Every path of `call_inner` has removed its pending entry by now.
        guard.pending = false;
        result
    }

    async fn call_inner(
        &self,
        correlation: u64,
        service: Arc<str>,
        target: Target,
        payload: Vec<u8>,
        trace: Option<TraceContext>,
        deadline: Instant,
    ) -> Result<Bytes, CallError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(correlation, tx);
        // A close that raced with the insert above must not leave the waiter behind.
        if self.is_closed() {
            self.forget(correlation);
            return Err(self.unreachable());
        }
        let envelope = Outgoing::Request {
            correlation: Some(correlation),
            target,
            service,
            deadline: Some(deadline),
            trace,
            payload,
        };
        if let Err(e) = self.enqueue(envelope, Patience::Until(deadline)).await {
            self.forget(correlation);
            return Err(e);
        }
        match timeout_at(deadline, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(CallError::Lost(self.inner.peer.to_string())),
            Err(_) => {
                self.forget(correlation);
                Err(CallError::Timeout)
            }
        }
    }

    fn forget(&self, correlation: u64) {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&correlation);
    }

    fn complete(&self, correlation: u64, result: Result<Bytes, CallError>, stats: &Stats) {
        let waiter = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&correlation);
        match waiter {
            Some(w) => {
                let _ = w.send(result);
            }
            None => {
                stats.late_replies.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn reply(
        &self,
        correlation: u64,
        result: Result<Vec<u8>, CallError>,
        share: OwnedSemaphorePermit,
    ) {
        let _ = self.inner.replies.send(QueuedReply {
            envelope: Outgoing::Reply {
                correlation,
                result,
            },
            _share: share,
        });
    }

    /// The share of the reply budget a call of `payload_len` bytes holds.
    fn reply_cost(&self, payload_len: usize, budget: usize) -> u32 {
        let cost = payload_len.saturating_add(REPLY_OVERHEAD).min(budget);
        u32::try_from(cost).unwrap_or(u32::MAX)
    }

    /// A share of `cost` bytes of the reply budget, if it is free now.
    fn try_reply_share(&self, cost: u32) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.inner.reply_budget)
            .try_acquire_many_owned(cost)
            .ok()
    }

    /// Waits for a share of the reply budget; `None` if the link closes first.
    async fn reply_share(
        &self,
        cost: u32,
        closing: &mut watch::Receiver<bool>,
    ) -> Option<OwnedSemaphorePermit> {
        tokio::select! {
            biased;
            _ = closing.wait_for(|closed| *closed) => None,
            share = Arc::clone(&self.inner.reply_budget).acquire_many_owned(cost) => share.ok(),
        }
    }

    /// Calls waiting for a reply, and their pending entries (for tests).
    #[cfg(test)]
    fn waiting(&self) -> (usize, usize) {
        let pending = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        (self.inner.in_flight.load(Ordering::Relaxed), pending)
    }
}

/// The reply channel of a request that came over this link, holding the request's share of
/// the reply budget.
struct LinkReply {
    link: Link,
    correlation: u64,
    share: OwnedSemaphorePermit,
}

impl ReplySink for LinkReply {
    fn send(self: Box<Self>, result: Result<Vec<u8>, CallError>) {
        self.link.reply(self.correlation, result, self.share);
    }
}

/// Holds one call's in-flight count, and its pending entry while `pending`; gives both back
/// when dropped, also when the caller drops the call's future half way.
struct CallGuard<'a> {
    link: &'a Link,
    correlation: u64,
    pending: bool,
}

impl<'a> CallGuard<'a> {
    fn new(link: &'a Link, correlation: u64) -> Self {
        link.inner.in_flight.fetch_add(1, Ordering::Relaxed);
        Self {
            link,
            correlation,
            pending: true,
        }
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if self.pending {
            self.link.forget(self.correlation);
        }
        self.link.inner.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

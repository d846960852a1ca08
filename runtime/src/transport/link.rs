//! One authenticated connection to a peer: a writer task that batches, a reader task that
//! dispatches, and the table of calls waiting for replies.
//!
//! The writer waits for the first envelope, then takes whatever else is already queued (up to
//! [`MAX_BATCH_BYTES`]) and writes it all as one frame: an idle link adds no latency, a busy one
//! sends large frames. Replies have their own queue, drained first: their number is bounded by
//! the calls in flight, and they must not wait behind a backlog of requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, timeout_at};

use super::wire::{Incoming, Now, Outgoing, Reader};
use super::{Core, Stats};
use crate::cluster::NodeId;
use crate::router::Patience;
use crate::service::{CallError, RemoteDelivery, ReplySink, Target};
use crate::telemetry::TraceContext;

/// A frame is written once this much is batched.
pub(crate) const MAX_BATCH_BYTES: usize = 256 * 1024;

/// How many times a busy writer lets other tasks run to gather a larger frame.
const MAX_YIELDS: u32 = 4;

/// How much the reader asks the socket for at a time.
const READ_CHUNK: usize = 256 * 1024;

type Waiter = oneshot::Sender<Result<Bytes, CallError>>;

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
    replies: mpsc::UnboundedSender<Outgoing>,
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
    /// Starts the tasks of a link over an authenticated `stream`.
    pub(crate) fn spawn(stream: TcpStream, peer: NodeId, serial: u64, core: Arc<Core>) -> Self {
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (requests, requests_rx) = mpsc::channel(core.settings.queue_capacity);
        let (replies, replies_rx) = mpsc::unbounded_channel();
        let (closing, closing_rx) = watch::channel(false);
        let link = Self {
            inner: Arc::new(LinkInner {
                peer,
                serial,
                requests,
                replies,
                pending: Mutex::new(HashMap::new()),
                next_correlation: AtomicU64::new(1),
                in_flight: AtomicUsize::new(0),
                closed: AtomicBool::new(false),
                closing,
            }),
        };
        tokio::spawn(write_loop(
            link.clone(),
            write,
            requests_rx,
            replies_rx,
            closing_rx.clone(),
            core.clone(),
        ));
        tokio::spawn(read_loop(link.clone(), read, closing_rx, core));
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

    /// Sends a request and waits for its reply until `deadline`.
    pub(crate) async fn call(
        &self,
        service: Arc<str>,
        target: Target,
        payload: Vec<u8>,
        trace: Option<TraceContext>,
        deadline: Instant,
    ) -> Result<Bytes, CallError> {
        let correlation = self.inner.next_correlation.fetch_add(1, Ordering::Relaxed);
        self.inner.in_flight.fetch_add(1, Ordering::Relaxed);
        let result = self
            .call_inner(correlation, service, target, payload, trace, deadline)
            .await;
        self.inner.in_flight.fetch_sub(1, Ordering::Relaxed);
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

    fn reply(&self, correlation: u64, result: Result<Vec<u8>, CallError>) {
        let _ = self.inner.replies.send(Outgoing::Reply {
            correlation,
            result,
        });
    }
}

/// The reply channel of a request that came over this link.
struct LinkReply {
    link: Link,
    correlation: u64,
}

impl ReplySink for LinkReply {
    fn send(self: Box<Self>, result: Result<Vec<u8>, CallError>) {
        self.link.reply(self.correlation, result);
    }
}

async fn write_loop(
    link: Link,
    mut write: OwnedWriteHalf,
    mut requests: mpsc::Receiver<Outgoing>,
    mut replies: mpsc::UnboundedReceiver<Outgoing>,
    mut closing: watch::Receiver<bool>,
    core: Arc<Core>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let reason = loop {
        let first = tokio::select! {
            biased;
            _ = closing.wait_for(|closed| *closed) => break "closing",
            r = replies.recv() => r,
            r = requests.recv() => r,
        };
        let Some(first) = first else {
            break "queue closed";
        };
        // With several calls in flight on this link, the caller that woke us likely has
        // siblings about to send too (callers woken by one frame of replies), and tokio runs
        // the woken writer before them. Let them run first, so their envelopes share this
        // frame: one system call instead of many. A lone call does not wait.
        if link.inner.in_flight.load(Ordering::Relaxed) > 1 {
            tokio::task::yield_now().await;
        }
        let now = Now::read();
        buf.clear();
        buf.extend_from_slice(&[0; 4]);
        let mut num_envelopes = u64::from(first.encode(&mut buf, now));
        let mut yields = 0;
        loop {
            let before = num_envelopes;
            while buf.len() < MAX_BATCH_BYTES {
                let next = match replies.try_recv() {
                    Ok(r) => r,
                    Err(_) => match requests.try_recv() {
                        Ok(r) => r,
                        Err(_) => break,
                    },
                };
                num_envelopes += u64::from(next.encode(&mut buf, now));
            }
            // Under load (more than one envelope was waiting), let the other tasks of this
            // node run before writing, as long as that brings more envelopes: what they queue
            // meanwhile joins this frame, one system call instead of several. An idle link
            // writes its single envelope at once.
            let grew = yields == 0 || num_envelopes > before;
            if num_envelopes < 2 || !grew || yields >= MAX_YIELDS || buf.len() >= MAX_BATCH_BYTES {
                break;
            }
            yields += 1;
            tokio::task::yield_now().await;
        }
        if num_envelopes == 0 {
            continue;
        }
        let len = (buf.len() - 4) as u32;
        buf[..4].copy_from_slice(&len.to_le_bytes());
        if let Err(e) = write.write_all(&buf).await {
            tracing::debug!(peer = %link.peer(), error = %e, "link write failed");
            break "write failed";
        }
        core.stats.frames_sent.fetch_add(1, Ordering::Relaxed);
        core.stats
            .envelopes_sent
            .fetch_add(num_envelopes, Ordering::Relaxed);
        if buf.capacity() > 4 * MAX_BATCH_BYTES {
            buf = Vec::with_capacity(64 * 1024);
        }
    };
    link.close(reason);
    core.forget_link(&link);
}

async fn read_loop(
    link: Link,
    mut read: OwnedReadHalf,
    mut closing: watch::Receiver<bool>,
    core: Arc<Core>,
) {
    let max_frame = core.settings.max_frame_bytes;
    // Frames are split off this buffer without copying; their payloads are handed on as
    // slices of it.
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let reason = 'reading: loop {
        while buf.len() >= 4 {
            let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if len == 0 || len > max_frame {
                core.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(peer = %link.peer(), len, max_frame, "frame length out of bounds: dropping the link");
                break 'reading format!("bad frame length {len}");
            }
            if buf.len() < 4 + len {
                buf.reserve(4 + len - buf.len());
                break;
            }
            buf.advance(4);
            let frame = buf.split_to(len).freeze();
            dispatch(&link, frame, &core).await;
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            biased;
            _ = closing.wait_for(|closed| *closed) => break "closing".to_string(),
            read = read.read_buf(&mut buf) => match read {
                Ok(0) => break "connection closed by peer".to_string(),
                Ok(_) => {}
                Err(e) => break format!("read failed: {e}"),
            },
        }
    };
    link.close(&reason);
    core.forget_link(&link);
}

/// Handles one frame: replies complete their calls; requests go to the services, consecutive
/// ones for the same service as one batch, in order.
async fn dispatch(link: &Link, frame: Bytes, core: &Arc<Core>) {
    core.stats.frames_received.fetch_add(1, Ordering::Relaxed);
    let now = Now::read();
    let mut reader = Reader::new(&frame);
    let mut batch: Vec<RemoteDelivery> = Vec::with_capacity((frame.len() / 32).clamp(1, 4096));
    let mut batch_service: Option<String> = None;
    while let Some(envelope) = reader.next_envelope() {
        let envelope = match envelope {
            Ok(e) => e,
            Err(e) => {
                core.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(peer = %link.peer(), error = %e, "dropping the rest of a malformed frame");
                break;
            }
        };
        core.stats
            .envelopes_received
            .fetch_add(1, Ordering::Relaxed);
        match envelope {
            Incoming::Reply {
                correlation,
                result,
            } => {
                let result = result.map(|payload| frame.slice_ref(payload));
                link.complete(correlation, result, &core.stats);
            }
            Incoming::Request {
                correlation,
                target,
                service,
                deadline,
                trace,
                payload,
            } => {
                let deadline = match deadline.map(|d| now.mono_of(d)) {
                    None => None,
                    Some(Some(deadline)) => Some(deadline),
                    Some(None) => {
                        // Its caller gave up before it arrived (it sat in buffers, or in this
                        // process while frozen): never handle it.
                        core.stats.expired.fetch_add(1, Ordering::Relaxed);
                        if let Some(correlation) = correlation {
                            link.reply(correlation, Err(CallError::Expired));
                        }
                        continue;
                    }
                };
                if batch_service.as_deref() != Some(service) {
                    if let Some(name) = batch_service.take() {
                        deliver(core, &name, std::mem::take(&mut batch)).await;
                    }
                    batch_service = Some(service.to_string());
                }
                batch.push(RemoteDelivery {
                    target,
                    payload: frame.slice_ref(payload),
                    deadline,
                    trace,
                    reply: correlation.map(|correlation| {
                        Box::new(LinkReply {
                            link: link.clone(),
                            correlation,
                        }) as Box<dyn ReplySink>
                    }),
                });
            }
        }
    }
    if let Some(name) = batch_service {
        deliver(core, &name, batch).await;
    }
}

async fn deliver(core: &Arc<Core>, service: &str, batch: Vec<RemoteDelivery>) {
    match core.registry.endpoint(service) {
        Some(endpoint) => endpoint.deliver_batch(batch).await,
        None => {
            core.stats.unknown_service.fetch_add(1, Ordering::Relaxed);
            for d in batch {
                if let Some(reply) = d.reply {
                    reply.send(Err(CallError::UnknownService(service.to_string())));
                }
            }
        }
    }
}

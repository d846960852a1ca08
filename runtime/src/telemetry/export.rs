//! The export of finished spans: a bounded queue in front of a worker thread that sends them in
//! batches through an OpenTelemetry [`SpanExporter`] (the node plugs in OTLP over HTTP).
//!
//! Nothing here may slow down or fail the work being traced. A span is handed over with a
//! `try_send`: when the queue is full (a slow or absent collector), the span is dropped and
//! counted in [`crate::metrics::TRACE_SPANS_DROPPED`] (label `reason="queue_full"`); a batch
//! the exporter could not send is counted there too (`reason="export_failed"`). The worker is a
//! thread of its own, not a tokio task: the exporter's blocking HTTP client must not run on
//! the runtime's threads, and a hanging export then stalls nothing but the worker. Stopping
//! waits a bounded time ([`Exporting::shutdown`]) and never longer.
//!
//! While no exporter is installed, [`enabled`] is false and no span is built at all.
//!
//! ```
//! use troupe_runtime::telemetry::export;
//!
//! assert!(!export::enabled()); // nothing installed in this process
//! ```

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake};
use std::time::{Duration, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// How the worker batches and where the spans say they come from.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// This node's id: the resource's `service.instance.id`.
    pub node: String,
    /// Spans waiting at most; more are dropped.
    pub queue: usize,
    /// Spans per export at most.
    pub batch: usize,
    /// How long a span waits for its batch to fill before the batch goes anyway.
    pub interval: Duration,
}

impl ExportSettings {
    /// The defaults for node `node`: a queue of 8,192 spans, batches of 512, sent at least
    /// every 500 ms.
    pub fn for_node(node: impl Into<String>) -> Self {
        Self {
            node: node.into(),
            queue: 8192,
            batch: 512,
            interval: Duration::from_millis(500),
        }
    }
}

enum Msg {
    Span(Box<SpanData>),
    Stop,
}

/// The sending side of a worker's queue.
#[derive(Debug, Clone)]
pub struct Queue {
    tx: SyncSender<Msg>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Span(span) => write!(f, "Span({})", span.name),
            Msg::Stop => f.write_str("Stop"),
        }
    }
}

impl Queue {
    /// Hands `span` to the worker, or drops (and counts) it if the queue is full; returns
    /// whether it was queued. Never waits.
    pub fn push(&self, span: SpanData) -> bool {
        match self.tx.try_send(Msg::Span(Box::new(span))) {
            Ok(()) => true,
            Err(e) => {
                let reason = match e {
                    TrySendError::Full(_) => "queue_full",
                    TrySendError::Disconnected(_) => "stopped",
                };
                dropped(reason, 1);
                false
            }
        }
    }
}

fn dropped(reason: &'static str, n: u64) {
    ::metrics::counter!(crate::metrics::TRACE_SPANS_DROPPED, "reason" => reason).increment(n);
}

/// The process's queue, once an exporter is installed.
static QUEUE: OnceLock<Queue> = OnceLock::new();
/// Whether spans are recorded: set by [`install`], cleared by [`Exporting::shutdown`].
static ON: AtomicBool = AtomicBool::new(false);

/// The node id the installed exporter names as its resource.
static NODE: OnceLock<String> = OnceLock::new();

/// The node id the installed exporter names (None while none is installed).
pub fn node() -> Option<&'static str> {
    NODE.get().map(String::as_str)
}

/// Whether spans are recorded in this process (an exporter is installed and running).
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Sends a finished span to the process's worker, if there is one.
pub(super) fn send(span: SpanData) {
    if let Some(queue) = QUEUE.get() {
        queue.push(span);
    }
}

/// A running worker; stop it with [`Exporting::shutdown`].
#[derive(Debug)]
pub struct Exporting {
    queue: Queue,
    done: Receiver<()>,
    stopping: Arc<AtomicBool>,
}

/// The exporter was installed before in this process.
#[derive(Debug, thiserror::Error)]
#[error("a span exporter is installed already")]
pub struct AlreadyInstalled;

/// Starts a worker over the exporter `make` builds (on the worker's own thread, where a
/// blocking HTTP client may be built and used) and makes it the process's: from now on spans
/// are recorded and exported.
pub fn install<E, F>(make: F, settings: ExportSettings) -> Result<Exporting, AlreadyInstalled>
where
    E: SpanExporter + 'static,
    F: FnOnce() -> Result<E, String> + Send + 'static,
{
    if QUEUE.get().is_some() {
        return Err(AlreadyInstalled);
    }
    let _ = NODE.set(settings.node.clone());
    let exporting = start(make, settings);
    QUEUE
        .set(exporting.queue.clone())
        .map_err(|_| AlreadyInstalled)?;
    ON.store(true, Ordering::Relaxed);
    Ok(exporting)
}

/// Starts a worker that is not the process's (tests push into [`Exporting::queue`]).
pub fn start<E, F>(make: F, settings: ExportSettings) -> Exporting
where
    E: SpanExporter + 'static,
    F: FnOnce() -> Result<E, String> + Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(settings.queue.max(1));
    let (done_tx, done) = std::sync::mpsc::sync_channel(1);
    let stopping = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&stopping);
    let spawned = std::thread::Builder::new()
        .name("troupe-traces".into())
        .spawn(move || {
            match make() {
                Ok(mut exporter) => {
                    exporter.set_resource(
                        &Resource::builder_empty()
                            .with_attributes([
                                KeyValue::new("service.name", "troupe"),
                                KeyValue::new("service.instance.id", settings.node.clone()),
                            ])
                            .build(),
                    );
                    Worker {
                        exporter,
                        settings,
                        failing: false,
                    }
                    .run(&rx, &stop);
                }
                Err(why) => {
                    tracing::warn!(error = %why, "the span exporter could not be built: spans are dropped");
                    discard(&rx, &stop);
                }
            }
            let _ = done_tx.send(());
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "the span export thread could not start: spans are dropped");
    }
    Exporting {
        queue: Queue { tx },
        done,
        stopping,
    }
}

impl Exporting {
    /// The worker's queue.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Stops recording spans, lets the worker send what is queued, and waits for it at most
    /// `grace` (an export in flight to a slow collector is abandoned then). Returns whether
    /// the worker finished in time. Blocks the calling thread: call it off the runtime's
    /// threads (`spawn_blocking`) or at the very end.
    pub fn shutdown(self, grace: Duration) -> bool {
        ON.store(false, Ordering::Relaxed);
        self.stopping.store(true, Ordering::Relaxed);
        let _ = self.queue.tx.try_send(Msg::Stop);
        self.done.recv_timeout(grace).is_ok()
    }
}

struct Worker<E> {
    exporter: E,
    settings: ExportSettings,
    /// Whether the last export failed (logged once per run of failures, not per batch).
    failing: bool,
}

impl<E: SpanExporter> Worker<E> {
    fn run(mut self, rx: &Receiver<Msg>, stopping: &AtomicBool) {
        let max = self.settings.batch.max(1);
        let mut batch: Vec<SpanData> = Vec::with_capacity(max);
        let mut since: Option<SystemTime> = None;
        loop {
            let wait = match since {
                None => self.settings.interval,
                Some(t) => self
                    .settings
                    .interval
                    .saturating_sub(t.elapsed().unwrap_or_default()),
            };
            match rx.recv_timeout(wait) {
                Ok(Msg::Span(span)) => {
                    since.get_or_insert_with(SystemTime::now);
                    batch.push(*span);
                    let due = since
                        .is_some_and(|t| t.elapsed().unwrap_or_default() >= self.settings.interval);
                    if batch.len() >= max || due {
                        self.export(&mut batch);
                        since = None;
                    }
                }
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    if !batch.is_empty() {
                        self.export(&mut batch);
                    }
                    since = None;
                }
            }
            if stopping.load(Ordering::Relaxed) {
                break;
            }
        }
        // What was queued before the stop goes out in one last round.
        loop {
            match rx.try_recv() {
                Ok(Msg::Span(span)) => {
                    batch.push(*span);
                    if batch.len() >= max {
                        self.export(&mut batch);
                    }
                }
                Ok(Msg::Stop) => {}
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if !batch.is_empty() {
            self.export(&mut batch);
        }
        let _ = self.exporter.shutdown_with_timeout(Duration::from_secs(1));
    }

    fn export(&mut self, batch: &mut Vec<SpanData>) {
        let spans = std::mem::replace(batch, Vec::with_capacity(self.settings.batch.max(1)));
        let n = spans.len() as u64;
        match block_on(self.exporter.export(spans)) {
            Ok(()) => {
                if self.failing {
                    tracing::info!("spans are exported again");
                }
                self.failing = false;
            }
            Err(e) => {
                dropped("export_failed", n);
                if !self.failing {
                    tracing::warn!(error = %e, spans = n, "spans could not be exported: dropped (reported once until an export succeeds)");
                }
                self.failing = true;
            }
        }
    }
}

/// Without an exporter: takes spans off the queue (so senders never wait) and counts them.
fn discard(rx: &Receiver<Msg>, stopping: &AtomicBool) {
    while !stopping.load(Ordering::Relaxed) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Msg::Span(_)) => dropped("no_exporter", 1),
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// Runs a future to completion on this thread (the exporter's futures do their blocking
/// work when polled; there is no reactor to wait on).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

#[cfg(test)]
mod tests;

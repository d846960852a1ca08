//! Trace context (W3C `traceparent`) carried from the edge through every actor hop and node.
//!
//! The context of the request being served lives in a task-local; the runtime reads it when a
//! message leaves ([`current`]) and sets it around the handler on the receiving side ([`scope`]),
//! on this node or another, so that logs of one request share one `trace_id`.
//!
//! Spans ([`Span`]) are recorded and exported only while an exporter is installed
//! ([`export::install`]); the ids travel and reach the logs either way. A span's id is the
//! `span_id` of the context its work runs in, so that what it sends is parented to it on
//! whichever node it lands.
//!
//! ```
//! use troupe_runtime::telemetry::TraceContext;
//!
//! let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
//! let ctx = TraceContext::from_traceparent(header).unwrap();
//! assert_eq!(ctx.to_traceparent(), header);
//! assert_eq!(ctx.child().trace_id, ctx.trace_id);
//! ```

use std::fmt;
use std::future::Future;

pub mod export;
mod span;

pub use opentelemetry::KeyValue;
pub use span::{Kind, Span};

tokio::task_local! {
    static CURRENT: TraceContext;
}

/// A W3C trace context: which trace a message belongs to and which span sent it. Written with
/// what it causes later (an event, a durable timer), so that what is read back after a
/// restart still joins its trace; checked when read (no all-zero id).
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "StoredTrace", into = "StoredTrace")]
pub struct TraceContext {
    /// The trace: the same for every hop of one request. Never all zeros.
    pub trace_id: [u8; 16],
    /// The sending span. Never all zeros.
    pub span_id: [u8; 8],
    /// Whether the trace is sampled (exported).
    pub sampled: bool,
}

/// A [`TraceContext`] as written, unchecked.
#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
struct StoredTrace {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    sampled: bool,
}

impl From<TraceContext> for StoredTrace {
    fn from(t: TraceContext) -> Self {
        Self {
            trace_id: t.trace_id,
            span_id: t.span_id,
            sampled: t.sampled,
        }
    }
}

impl TryFrom<StoredTrace> for TraceContext {
    type Error = &'static str;

    fn try_from(t: StoredTrace) -> Result<Self, Self::Error> {
        if t.trace_id == [0; 16] || t.span_id == [0; 8] {
            return Err("a trace context with an all-zero id");
        }
        Ok(Self {
            trace_id: t.trace_id,
            span_id: t.span_id,
            sampled: t.sampled,
        })
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_traceparent())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl TraceContext {
    /// A new trace, sampled.
    pub fn new_root() -> Self {
        let mut trace_id: [u8; 16] = rand::random();
        trace_id[0] |= 1;
        Self {
            trace_id,
            span_id: new_span_id(),
            sampled: true,
        }
    }

    /// The context of a new span in the same trace.
    pub fn child(&self) -> Self {
        Self {
            span_id: new_span_id(),
            ..*self
        }
    }

    /// Parses a `traceparent` header (version 00); `None` if it is malformed.
    pub fn from_traceparent(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version != "00" || parts.next().is_some() {
            return None;
        }
        let trace_id = unhex::<16>(trace)?;
        let span_id = unhex::<8>(span)?;
        let [flags] = unhex::<1>(flags)?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The `traceparent` header value.
    pub fn to_traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            u8::from(self.sampled)
        )
    }

    /// The trace id as 32 hex digits, for logs.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 hex digits, for logs.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

fn new_span_id() -> [u8; 8] {
    let mut id: [u8; 8] = rand::random();
    id[0] |= 1;
    id
}

/// The trace context of the work this task is doing, if any.
pub fn current() -> Option<TraceContext> {
    CURRENT.try_with(|c| *c).ok()
}

/// Runs `future` with `context` as the current trace context.
pub async fn scope<F: Future>(context: TraceContext, future: F) -> F::Output {
    CURRENT.scope(context, future).await
}

/// `future` under the current trace context (if any), wherever it runs: for work handed to
/// another task (`tokio::spawn`), which would otherwise start without one.
pub fn carried<F: Future>(future: F) -> impl Future<Output = F::Output> {
    let context = current();
    async move {
        match context {
            Some(context) => CURRENT.scope(context, future).await,
            None => future.await,
        }
    }
}

/// Runs `f` with `context` (if any) as the current trace context: for work that reads it
/// synchronously (a post or a call captures the context when it is made, not when awaited).
pub fn with<R>(context: Option<TraceContext>, f: impl FnOnce() -> R) -> R {
    match context {
        Some(context) => CURRENT.sync_scope(context, f),
        None => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(TraceContext::from_traceparent(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn without_an_exporter_no_span_is_built() {
        let span = Span::start(TraceContext::new_root(), None, Kind::Internal, || {
            unreachable!("a span is described while export is off")
        });
        assert!(!span.is_recording());
        // One pointer, null: nothing allocated.
        assert_eq!(std::mem::size_of::<Span>(), std::mem::size_of::<usize>());
        assert!(Span::child_of_current(Kind::Internal, || unreachable!()).is_none());
        // Within a trace: the work goes on under the current context, and no id is drawn.
        let root = TraceContext::new_root();
        let (context, span) = with(Some(root), || {
            Span::child_of_current(Kind::Internal, || unreachable!())
        })
        .unwrap();
        assert_eq!(context, root);
        assert!(!span.is_recording());
    }

    #[tokio::test]
    async fn spawned_and_synchronous_work_can_carry_the_context() {
        let root = TraceContext::new_root();
        let spawned = scope(root, async {
            tokio::spawn(carried(async { current() })).await
        })
        .await;
        assert_eq!(spawned.ok().flatten(), Some(root));
        let lost = scope(root, async { tokio::spawn(async { current() }).await }).await;
        assert_eq!(lost.ok().flatten(), None);
        assert_eq!(with(Some(root), current), Some(root));
        assert_eq!(with(None, current), None);
    }

    #[tokio::test]
    async fn the_current_context_is_scoped_to_the_task() {
        assert!(current().is_none());
        let root = TraceContext::new_root();
        let seen = scope(root, async { current() }).await;
        assert_eq!(seen, Some(root));
        assert!(current().is_none());
        let child = root.child();
        assert_eq!(child.trace_id, root.trace_id);
        assert_ne!(child.span_id, root.span_id);
        assert_eq!(
            TraceContext::from_traceparent(&child.to_traceparent()),
            Some(child)
        );
    }
}

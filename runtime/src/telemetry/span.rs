//! [`Span`]: one exported span, from its start to its end (its drop), under the id that the
//! work it covers carries in the task-local trace context.
//!
//! A span is built only while an exporter is installed ([`super::export`]) and its context is
//! sampled; otherwise [`Span::start`] returns an empty guard (one null pointer, no allocation,
//! no clock read) and its attribute closure is never called. The ids themselves exist either
//! way (they are in the task-local and in the logs); only the record of the span is skipped.

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

use super::TraceContext;
use super::export;

/// The kind of a span, as OpenTelemetry names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Serves a request from outside (the HTTP edge).
    Server,
    /// Work inside one process (a handler, a saga step, a commit, a delivery).
    Internal,
}

/// A span being recorded; exported when dropped. Empty (and free) while export is off.
#[derive(Debug, Default)]
#[must_use = "a span ends when dropped"]
pub struct Span(Option<Box<Open>>);

#[derive(Debug)]
struct Open {
    context: TraceContext,
    parent: Option<[u8; 8]>,
    kind: Kind,
    name: Cow<'static, str>,
    start: SystemTime,
    attributes: Vec<KeyValue>,
    error: Option<String>,
}

impl Span {
    /// Starts the span whose context (ids) is `context`, a child of the span `parent` (None: a
    /// root). `describe` gives its name and first attributes; it runs only if the span is
    /// recorded.
    pub fn start(
        context: TraceContext,
        parent: Option<[u8; 8]>,
        kind: Kind,
        describe: impl FnOnce() -> (Cow<'static, str>, Vec<KeyValue>),
    ) -> Span {
        if !context.sampled || !export::enabled() {
            return Span(None);
        }
        let start = SystemTime::now();
        let (name, attributes) = describe();
        Span(Some(Box::new(Open {
            context,
            parent,
            kind,
            name,
            start,
            attributes,
            error: None,
        })))
    }

    /// A child of the current span: a new context in the current trace, and its span; while
    /// spans are not recorded, the current context itself and an empty span (no new id is
    /// drawn: the work is logged under its parent's ids). None if no trace context is current.
    pub fn child_of_current(
        kind: Kind,
        describe: impl FnOnce() -> (Cow<'static, str>, Vec<KeyValue>),
    ) -> Option<(TraceContext, Span)> {
        let parent = super::current()?;
        if !parent.sampled || !export::enabled() {
            return Some((parent, Span(None)));
        }
        let context = parent.child();
        Some((
            context,
            Span::start(context, Some(parent.span_id), kind, describe),
        ))
    }

    /// Whether this span is recorded (export is on and its trace sampled).
    pub fn is_recording(&self) -> bool {
        self.0.is_some()
    }

    /// Sets an attribute (does nothing if the span is not recorded).
    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        if let Some(open) = &mut self.0 {
            open.attributes.push(KeyValue::new(key, value));
        }
    }

    /// Marks the span failed, with why.
    pub fn fail(&mut self, why: impl std::fmt::Display) {
        if let Some(open) = &mut self.0 {
            open.error = Some(why.to_string());
        }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(open) = self.0.take() {
            export::send((*open).finish());
        }
    }
}

impl Open {
    fn finish(self) -> SpanData {
        let Open {
            context,
            parent,
            kind,
            name,
            start,
            attributes,
            error,
        } = self;
        // The wall clock may step back between start and end: never before the start.
        let end = SystemTime::now().max(start);
        SpanData {
            span_context: SpanContext::new(
                TraceId::from_bytes(context.trace_id),
                SpanId::from_bytes(context.span_id),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: parent.map_or(SpanId::INVALID, SpanId::from_bytes),
            parent_span_is_remote: false,
            span_kind: match kind {
                Kind::Server => SpanKind::Server,
                Kind::Internal => SpanKind::Internal,
            },
            name,
            start_time: start,
            end_time: end,
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: match error {
                Some(why) => Status::error(why),
                None => Status::Unset,
            },
            instrumentation_scope: scope(),
        }
    }
}

fn scope() -> InstrumentationScope {
    static SCOPE: std::sync::OnceLock<InstrumentationScope> = std::sync::OnceLock::new();
    SCOPE
        .get_or_init(|| InstrumentationScope::builder("troupe").build())
        .clone()
}

//! The trace span of one delivery: a child of the command that published the event, when that
//! is known (it is kept with the event, so an event read back after a restart has it too).

use crate::entity::effects::OutboxRecord;
use crate::telemetry::{self, KeyValue, Kind, Span, TraceContext};

/// The context a delivery is sent under (to parent the subscriber's handling) and its span;
/// while spans are not recorded, the publisher's context and an empty span.
pub(super) fn delivery(
    record: &OutboxRecord,
    subscription: &str,
    subscriber: &'static str,
    attempt: u32,
) -> (Option<TraceContext>, Span) {
    let Some(parent) = record.trace else {
        return (None, Span::default());
    };
    let child = telemetry::with(Some(parent), || {
        Span::child_of_current(Kind::Internal, || {
            (
                format!("deliver {}", record.topic).into(),
                vec![
                    KeyValue::new("troupe.event.topic", record.topic.clone()),
                    KeyValue::new("troupe.event.subscription", subscription.to_string()),
                    KeyValue::new("troupe.event.subscriber", subscriber),
                    KeyValue::new("troupe.event.attempt", i64::from(attempt)),
                ],
            )
        })
    });
    match child {
        Some((context, span)) => (Some(context), span),
        None => (Some(parent), Span::default()),
    }
}

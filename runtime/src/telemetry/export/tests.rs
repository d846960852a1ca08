use std::sync::Mutex;

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, Value};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};

use super::*;

/// Records what it is given; blocks each export until `open` allows it.
#[derive(Debug, Clone, Default)]
struct Recorder {
    spans: Arc<Mutex<Vec<SpanData>>>,
    resource: Arc<Mutex<Vec<(String, String)>>>,
    gate: Option<Arc<(Mutex<bool>, std::sync::Condvar)>>,
    fail: bool,
}

impl SpanExporter for Recorder {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if let Some(gate) = &self.gate {
            let (open, cv) = &**gate;
            let mut open = open.lock().unwrap_or_else(|p| p.into_inner());
            while !*open {
                open = cv.wait(open).unwrap_or_else(|p| p.into_inner());
            }
        }
        if self.fail {
            return Err(OTelSdkError::InternalFailure("no collector".into()));
        }
        self.spans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(batch);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        let mut kept = self.resource.lock().unwrap_or_else(|p| p.into_inner());
        for (key, value) in resource.iter() {
            let text = match value {
                Value::String(s) => s.to_string(),
                other => other.to_string(),
            };
            kept.push((key.to_string(), text));
        }
    }
}

fn span(n: u8) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes([1; 16]),
            SpanId::from_bytes([n.max(1); 8]),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: format!("span {n}").into(),
        start_time: SystemTime::now(),
        end_time: SystemTime::now(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("test").build(),
    }
}

fn settings(queue: usize) -> ExportSettings {
    ExportSettings {
        node: "n7".into(),
        queue,
        batch: 4,
        interval: Duration::from_millis(20),
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn spans_are_exported_in_batches_with_the_node_as_resource() {
    let recorder = Recorder::default();
    let seen = Arc::clone(&recorder.spans);
    let resource = Arc::clone(&recorder.resource);
    let exporting = start(move || Ok(recorder), settings(64));
    for n in 1..=10 {
        assert!(exporting.queue().push(span(n)));
    }
    wait_for("ten spans", || {
        seen.lock().unwrap_or_else(|p| p.into_inner()).len() == 10
    });
    let resource = resource.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(
        resource.contains(&("service.name".into(), "troupe".into())),
        "{resource:?}"
    );
    assert!(
        resource.contains(&("service.instance.id".into(), "n7".into())),
        "{resource:?}"
    );
    assert!(exporting.shutdown(Duration::from_secs(5)));
}

#[test]
fn a_stuck_exporter_drops_spans_and_never_holds_up_the_sender_or_the_shutdown() {
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let recorder = Recorder {
        gate: Some(Arc::clone(&gate)),
        ..Recorder::default()
    };
    let exporting = start(move || Ok(recorder), settings(8));
    // The worker takes some and hangs in its export; the queue fills; the rest are dropped.
    let accepted = (0..200u8)
        .filter(|n| exporting.queue().push(span(*n)))
        .count();
    assert!(accepted < 200, "all {accepted} spans were queued");
    assert!(accepted >= 8, "only {accepted} spans were queued");
    // The shutdown gives up after its grace.
    assert!(!exporting.shutdown(Duration::from_millis(100)));
    let (open, cv) = &*gate;
    *open.lock().unwrap_or_else(|p| p.into_inner()) = true;
    cv.notify_all();
}

#[test]
fn failed_exports_are_survived() {
    let recorder = Recorder {
        fail: true,
        ..Recorder::default()
    };
    let exporting = start(move || Ok(recorder), settings(64));
    for n in 1..=10 {
        assert!(exporting.queue().push(span(n)));
    }
    assert!(exporting.shutdown(Duration::from_secs(5)));
}

#[test]
fn an_exporter_that_cannot_be_built_still_takes_spans_off_the_queue() {
    let exporting = start(
        || Err::<Recorder, _>("bad endpoint".to_string()),
        settings(4),
    );
    for n in 1..=50 {
        // Never waits; some may be dropped, but the queue drains.
        let _ = exporting.queue().push(span(n));
    }
    assert!(exporting.shutdown(Duration::from_secs(5)));
}

//! Trace export for `troupe node`: the runtime's span worker over the OTLP exporter (HTTP with
//! JSON bodies, a blocking client on the worker's own thread), when an endpoint is configured.

use std::time::Duration;

use opentelemetry_otlp::{Protocol, WithExportConfig};
use troupe_runtime::telemetry::export::{self, ExportSettings, Exporting};

/// How long one export may take before it is given up (its spans counted as dropped).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);

/// Starts exporting this process's spans to `url` (the collector's `/v1/traces`) as node
/// `node`. None (and a warning) if an exporter was installed before.
pub(crate) fn start(url: &str, node: &str) -> Option<Exporting> {
    let endpoint = url.to_string();
    let installed = export::install(
        move || {
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpJson)
                .with_endpoint(endpoint)
                .with_timeout(EXPORT_TIMEOUT)
                .build()
                .map_err(|e| e.to_string())
        },
        ExportSettings::for_node(node),
    );
    match installed {
        Ok(exporting) => {
            tracing::info!(endpoint = url, "exporting trace spans (OTLP over HTTP)");
            Some(exporting)
        }
        Err(e) => {
            tracing::warn!(error = %e, "trace export not started");
            None
        }
    }
}

/// Sends what is queued and stops, waiting at most `grace` (off the runtime's threads).
pub(crate) async fn stop(exporting: Exporting, grace: Duration) {
    let stopped = tokio::task::spawn_blocking(move || exporting.shutdown(grace)).await;
    if !matches!(stopped, Ok(true)) {
        tracing::warn!("the trace exporter did not finish in time: spans still queued are lost");
    }
}

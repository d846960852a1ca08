//! The process's metrics recorder: a Prometheus one, installed once, whose text the edge serves
//! at `/metrics` (no HTTP listener or push gateway of its own).
//!
//! The runtime records events through the `metrics` facade as they happen
//! ([`troupe_runtime::metrics`]); this recorder keeps them. Series that describe the node's
//! state now (nodes up, members, link counters) are not kept here: the edge computes them at
//! each scrape (see `edge::metrics`).
//!
//! ```
//! let handle = troupe_node::metrics::install();
//! metrics::counter!("demo_total").increment(1);
//! assert!(handle.render().contains("demo_total 1"));
//! // A second call returns the same recorder's handle.
//! assert!(troupe_node::metrics::install().render().contains("demo_total 1"));
//! ```

use std::sync::OnceLock;

use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use tokio::time::Duration;

/// The quantiles of every summary (the restart-time series has shown these since the first
/// release; they cover the last minute, see [`recorder`]).
const QUANTILES: [f64; 3] = [0.5, 0.9, 0.99];

/// How often samples recorded since the last scrape are folded into their summaries, so that
/// a node nobody scrapes does not keep them all.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Counter, labels `method`, `route` (the matched route template such as
/// `/api/v1/orders/{id}`; `unmatched` when no route matched), `status`: requests served.
pub const HTTP_REQUESTS: &str = "troupe_http_requests_total";
/// Histogram, seconds, same labels as [`HTTP_REQUESTS`]: from the request reaching the edge to
/// its response being ready.
pub const HTTP_REQUEST_SECONDS: &str = "troupe_http_request_seconds";
/// The buckets of [`HTTP_REQUEST_SECONDS`]: a read served from memory takes well under a
/// millisecond, an order a few, a call waiting out a failover seconds.
pub const HTTP_REQUEST_SECONDS_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counter, label `outcome` (`done`, or `busy`: refused with nothing done, too many waiting):
/// password hashes and checks asked of this node (registrations and logins).
pub const PASSWORD_WORK: &str = "troupe_password_work_total";

/// Tells the current recorder what the edge's series mean.
fn describe() {
    metrics::describe_counter!(
        PASSWORD_WORK,
        metrics::Unit::Count,
        "Password hashes and checks asked of this node, by outcome: done, or busy (refused with nothing done)."
    );
    metrics::describe_counter!(
        HTTP_REQUESTS,
        metrics::Unit::Count,
        "HTTP requests served by this node, by method, matched route and status."
    );
    metrics::describe_histogram!(
        HTTP_REQUEST_SECONDS,
        metrics::Unit::Seconds,
        "Time to serve an HTTP request on this node, by method, matched route and status."
    );
}

/// A recorder configured as the node's, not installed. The store's, the sagas' steps' and the
/// HTTP requests' series are histograms with their buckets; every other is a summary, whose quantiles cover a rolling window of
/// one minute (three buckets of 20 s, the exporter's default) and whose `_sum` and `_count`
/// cover the process's life.
pub fn recorder() -> PrometheusRecorder {
    use troupe_runtime::metrics as m;
    let built = PrometheusBuilder::new()
        .set_quantiles(&QUANTILES)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(m::STORE_COMMIT_SECONDS.to_string()),
                m::STORE_COMMIT_SECONDS_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(m::STORE_COMMIT_WRITES.to_string()),
                m::STORE_COMMIT_WRITES_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(m::SAGA_STEP_SECONDS.to_string()),
                m::SAGA_STEP_SECONDS_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(HTTP_REQUEST_SECONDS.to_string()),
                HTTP_REQUEST_SECONDS_BUCKETS,
            )
        });
    built
        .unwrap_or_else(|e| unreachable!("constant quantiles and buckets are not empty: {e}"))
        .build_recorder()
}

/// Installs the node's recorder as the process's on the first call and describes the runtime's
/// series; every call returns its handle. Call it before the runtime starts: what registers a
/// series before (the store's committer does at open) would record nowhere.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder was installed first: /metrics shows only the node's state");
            }
            troupe_runtime::metrics::describe();
            describe();
            handle
        })
        .clone()
}

/// Folds recorded samples into their summaries every [`UPKEEP_EVERY`], until dropped.
pub async fn upkeep(handle: PrometheusHandle) {
    let mut every = tokio::time::interval(UPKEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        handle.run_upkeep();
    }
}

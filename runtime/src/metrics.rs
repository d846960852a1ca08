//! The metrics the runtime records, through the [`metrics`] facade, where things happen.
//!
//! The runtime records; it never chooses where the numbers go. The process installs one
//! recorder (the node installs a Prometheus one and serves its text at `/metrics`); without
//! one, every record is a no-op. A recorder is process-wide, so these series are the
//! process's: one node per process, as `troupe node` runs. Tests that run several runtimes in
//! one process give each test its own recorder on its own thread
//! ([`metrics::set_default_local_recorder`] under a current-thread tokio runtime, where every
//! task of the test's runtimes runs).
//!
//! What is per message (frames and envelopes on links) is not recorded here: it is counted in
//! the transport's atomics and read at scrape time ([`crate::Runtime::transport_stats`]), so
//! the hot path pays nothing for metrics. What is recorded here is rarer: a member restart, a
//! group commit (one per flush, for many writes), a chaos kill, a benchmark run.
//!
//! Histograms are histograms to the facade; the recorder decides how to keep each: the node
//! keeps restart times as a summary (quantiles) and the store's as histograms with the buckets
//! given here (they add up across nodes).
//!
//! ```
//! use troupe_runtime::metrics::{MEMBER_RESTART_SECONDS, describe};
//!
//! describe(); // no recorder installed: does nothing, and neither does this:
//! metrics::histogram!(MEMBER_RESTART_SECONDS, "service" => "echo").record(0.002);
//! ```

use metrics::{Unit, describe_counter, describe_histogram};

/// Summary, seconds, label `service`: from a member's death to its replacement running.
pub const MEMBER_RESTART_SECONDS: &str = "troupe_member_restart_seconds";
/// Histogram, seconds: one group commit, from the start of its flush to durable.
pub const STORE_COMMIT_SECONDS: &str = "troupe_store_commit_seconds";
/// The buckets of [`STORE_COMMIT_SECONDS`]: a flush of a small write takes about 0.1 ms on a
/// quiet disk, a busy or failing one seconds.
pub const STORE_COMMIT_SECONDS_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
/// Histogram: how many writes one group commit made durable (one flush for all of them).
pub const STORE_COMMIT_WRITES: &str = "troupe_store_commit_writes";
/// The buckets of [`STORE_COMMIT_WRITES`]: powers of two, exact for counts (a write is
/// counted in the first bucket at least its size).
pub const STORE_COMMIT_WRITES_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];
/// Counter, label `service`: members killed here on request (failure injection).
pub const CHAOS_KILLS: &str = "troupe_chaos_kills_total";
/// Counter, labels `service`, `mode`: benchmarks this node drove to the end.
pub const BENCH_RUNS: &str = "troupe_bench_runs_total";
/// Counter, label `topic`: events committed to an outbox on this node.
pub const EVENTS_PUBLISHED: &str = "troupe_events_published_total";
/// Counter, label `subscription`: deliveries acknowledged by their subscriber.
pub const EVENTS_DELIVERED: &str = "troupe_events_delivered_total";
/// Counter, label `subscription`: events set aside after their subscriber refused them.
pub const EVENTS_DEAD_LETTERED: &str = "troupe_events_dead_lettered_total";
/// Gauge, label `shard`: events in a shard's outbox not yet acknowledged by every subscription
/// (the outbox backlog).
pub const EVENTS_BACKLOG: &str = "troupe_events_backlog";

/// Counter, label `saga`: instances started on this node.
pub const SAGAS_STARTED: &str = "troupe_sagas_started_total";
/// Counter, labels `saga`, `outcome` (`completed`, `compensated`), `reason` (the kind of a
/// compensation's reason: its first word, such as `out_of_stock` or `deadline`; `none` for
/// completed): instances finished on this node.
pub const SAGAS_FINISHED: &str = "troupe_sagas_finished_total";
/// Histogram, seconds, labels `saga`, `step` (the step's kind: its name up to the first
/// `:`), `work` (`act`, `compensate`), `outcome` (`done`, `refused`, `retry`): from a step's
/// work first being sent to a report of it.
pub const SAGA_STEP_SECONDS: &str = "troupe_saga_step_seconds";
/// The buckets of [`SAGA_STEP_SECONDS`]: a step is a call or two to another service (about a
/// millisecond), or waits out retries and node failures (seconds, up to its deadline).
pub const SAGA_STEP_SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Counter, labels `service`, `node`: messages sent to the members of a service on this node
/// (taken into their mailboxes, from this node or a peer). Read at scrape time.
pub const MESSAGES_SENT: &str = "troupe_messages_sent_total";
/// Counter, labels `service`, `node`: messages the members of a service on this node handled.
/// Read at scrape time.
pub const MESSAGES_RECEIVED: &str = "troupe_messages_received_total";
/// Gauge, labels `service`, `node`: messages queued for the members of a service on this
/// node, not handled yet. Read at scrape time.
pub const MAILBOX_DEPTH: &str = "troupe_mailbox_depth";

/// Counter, label `reason` (`queue_full`, `export_failed`, `no_exporter`, `stopped`): trace
/// spans this node dropped instead of exporting (a slow or absent collector never holds up a
/// request: its spans are dropped and counted here).
pub const TRACE_SPANS_DROPPED: &str = "troupe_trace_spans_dropped_total";

/// A label value of bounded variety made from a free-form name: its text up to the first `:`
/// if that is a short word of `[A-Za-z0-9_.-]`, else `other` (`reserve:9f3c…` is `reserve`; a
/// sentence is `other`).
pub fn kind(name: &str) -> &str {
    let head = name.split(':').next().unwrap_or_default().trim();
    let word = !head.is_empty()
        && head.len() <= 40
        && head
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if word { head } else { "other" }
}

/// Tells the current recorder what each series means. Call it once after installing one.
pub fn describe() {
    describe_counter!(
        EVENTS_PUBLISHED,
        "Events committed to an outbox on this node, by topic."
    );
    describe_counter!(
        EVENTS_DELIVERED,
        "Event deliveries acknowledged by their subscriber, by subscription (relays on this node)."
    );
    metrics::describe_gauge!(
        EVENTS_BACKLOG,
        "Events in a shard's outbox here not yet acknowledged by every subscription, by shard."
    );
    describe_counter!(
        EVENTS_DEAD_LETTERED,
        "Events set aside after their subscriber refused them too often, by subscription."
    );
    describe_histogram!(
        MEMBER_RESTART_SECONDS,
        Unit::Seconds,
        "Time from a member's death to its replacement running, on this node."
    );
    describe_histogram!(
        STORE_COMMIT_SECONDS,
        Unit::Seconds,
        "Time of one group commit of this node's store, from the start of its flush to durable."
    );
    describe_histogram!(
        STORE_COMMIT_WRITES,
        Unit::Count,
        "Writes made durable by one group commit of this node's store."
    );
    describe_counter!(
        SAGAS_STARTED,
        Unit::Count,
        "Saga instances started on this node, by saga."
    );
    describe_counter!(
        SAGAS_FINISHED,
        Unit::Count,
        "Saga instances finished on this node, by saga, outcome and the kind of reason."
    );
    describe_histogram!(
        SAGA_STEP_SECONDS,
        Unit::Seconds,
        "Time from a saga step's work first being sent to a report of it, by step kind, work and outcome."
    );
    describe_counter!(
        CHAOS_KILLS,
        Unit::Count,
        "Members killed on this node on request (failure injection)."
    );
    describe_counter!(
        TRACE_SPANS_DROPPED,
        Unit::Count,
        "Trace spans dropped instead of exported (queue full, export failed), by reason."
    );
    describe_counter!(
        BENCH_RUNS,
        Unit::Count,
        "Benchmarks this node drove to the end."
    );
}

#[cfg(test)]
mod tests {
    use super::kind;

    #[test]
    fn a_kind_is_a_short_word_before_the_first_colon_or_other() {
        assert_eq!(kind("reserve:9f3c2a"), "reserve");
        assert_eq!(kind("charge"), "charge");
        assert_eq!(kind("out_of_stock"), "out_of_stock");
        assert_eq!(kind("deadline: reserve:p1 kept failing"), "deadline");
        assert_eq!(kind("compensation forced by admin"), "other");
        assert_eq!(kind(""), "other");
        assert_eq!(kind(&"x".repeat(41)), "other");
        assert_eq!(kind("a\"b{c}"), "other");
    }
}

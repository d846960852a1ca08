//! `GET /metrics`: Prometheus text, rendered by `metrics-exporter-prometheus`.
//!
//! Two parts, each a set of whole metric families:
//!
//! - the node's state now (nodes up and each node's status, cluster formed, members per
//!   service, the link counters the transport keeps in its own atomics, and per service the
//!   messages its members here were sent and handled and the depth of their mailboxes, which
//!   the mailboxes count in their own atomics): computed from the runtime at each scrape into a
//!   recorder of the scrape's own, so that nothing stale survives and several runtimes in one
//!   process (tests) never mix;
//! - what happened (HTTP requests, member restarts, group commits, sagas, events, chaos kills,
//!   benchmark runs): recorded by
//!   the runtime through the `metrics` facade into the node's recorder ([`crate::metrics`]),
//!   whose handle [`AppState`] holds.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics::{Unit, counter, describe_counter, describe_gauge, gauge, histogram};
use troupe_runtime::metrics::{
    MAILBOX_DEPTH, MEMBER_RESTART_SECONDS, MESSAGES_RECEIVED, MESSAGES_SENT,
};
use troupe_runtime::service::TrafficSnapshot;

use super::AppState;

/// The metrics text of this node.
pub(crate) fn render(state: &AppState) -> String {
    let runtime = state.runtime();
    // Every known service shows its restart series, at zero before its first restart.
    let services = runtime.services();
    for s in &services {
        let _ = histogram!(MEMBER_RESTART_SECONDS, "service" => s.name.clone());
    }
    let scrape = crate::metrics::recorder();
    metrics::with_local_recorder(&scrape, || {
        describe_gauge!(
            "troupe_node_up",
            "Whether each node is up as this node sees it (suspect and down are 0)."
        );
        let view = state.cluster_view();
        for n in &view.nodes {
            let up = u8::from(n.status == troupe_runtime::NodeStatus::Up);
            gauge!("troupe_node_up", "node" => n.id.to_string()).set(up);
        }
        describe_gauge!(
            "troupe_node_status",
            "The status of each node as this node sees it: 1 for its status (up, suspect, down), 0 for the others."
        );
        for n in &view.nodes {
            for status in [
                troupe_runtime::NodeStatus::Up,
                troupe_runtime::NodeStatus::Suspect,
                troupe_runtime::NodeStatus::Down,
            ] {
                gauge!("troupe_node_status", "node" => n.id.to_string(), "status" => status.to_string())
                    .set(u8::from(n.status == status));
            }
        }
        describe_gauge!(
            "troupe_cluster_formed",
            "Whether this node has seen every node up."
        );
        gauge!("troupe_cluster_formed").set(u8::from(view.formed));
        describe_gauge!(
            "troupe_service_members",
            "Live members of each service per node."
        );
        for s in &services {
            for c in &s.members {
                gauge!(
                    "troupe_service_members",
                    "service" => s.name.clone(),
                    "node" => c.node.clone()
                )
                .set(c.count as f64);
            }
        }
        link_counters(&runtime.transport_stats());
        traffic(&runtime.traffic(), &runtime.node().to_string());
    });
    let mut out = scrape.handle().render();
    out.push_str(&state.metrics().render());
    out
}

/// The transport's counters (kept per message in its atomics, read here).
fn link_counters(t: &troupe_runtime::transport::StatsSnapshot) {
    for (name, help, value) in [
        (
            "troupe_link_frames_sent_total",
            "Frames written to peer links.",
            t.frames_sent,
        ),
        (
            "troupe_link_envelopes_sent_total",
            "Envelopes written to peer links.",
            t.envelopes_sent,
        ),
        (
            "troupe_link_frames_received_total",
            "Frames read from peer links.",
            t.frames_received,
        ),
        (
            "troupe_link_envelopes_received_total",
            "Envelopes read from peer links.",
            t.envelopes_received,
        ),
        (
            "troupe_link_bad_frames_total",
            "Frames or envelopes from peers that did not decode.",
            t.bad_frames,
        ),
        (
            "troupe_link_late_replies_total",
            "Replies that arrived after their call gave up.",
            t.late_replies,
        ),
        (
            "troupe_link_unknown_service_total",
            "Requests for a service this node does not host.",
            t.unknown_service,
        ),
        (
            "troupe_link_refused_handshakes_total",
            "Incoming links that failed authentication.",
            t.refused_handshakes,
        ),
    ] {
        describe_counter!(name, Unit::Count, help);
        counter!(name).absolute(value);
    }
}

/// Per service, what its members here were sent, handled and have queued (kept in their
/// mailboxes' atomics, read here).
fn traffic(by_service: &[(String, TrafficSnapshot)], node: &str) {
    describe_counter!(
        MESSAGES_SENT,
        Unit::Count,
        "Messages sent to the members of each service on this node (taken into their mailboxes)."
    );
    describe_counter!(
        MESSAGES_RECEIVED,
        Unit::Count,
        "Messages handled by the members of each service on this node."
    );
    describe_gauge!(
        MAILBOX_DEPTH,
        Unit::Count,
        "Messages queued for the members of each service on this node, not handled yet."
    );
    for (service, t) in by_service {
        let labels = [("service", service.clone()), ("node", node.to_string())];
        counter!(MESSAGES_SENT, &labels).absolute(t.sent);
        counter!(MESSAGES_RECEIVED, &labels).absolute(t.received);
        #[allow(clippy::cast_precision_loss)] // a queue's length: exact in an f64
        gauge!(MAILBOX_DEPTH, &labels).set(t.depth as f64);
    }
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "This node's metrics, in the Prometheus text format",
        content_type = "text/plain; version=0.0.4", body = String)))]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&state),
    )
}

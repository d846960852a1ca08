//! `GET /metrics`: Prometheus text format, rendered from the runtime's own counters.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;

/// Escapes a label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The metrics text of this node.
pub(crate) fn render(state: &AppState) -> String {
    let runtime = state.runtime();
    let mut out = String::new();
    let view = state.cluster_view();
    out.push_str("# HELP troupe_node_up Whether each node is up as this node sees it (suspect and down are 0).\n# TYPE troupe_node_up gauge\n");
    for n in &view.nodes {
        let up = u8::from(n.status == troupe_runtime::NodeStatus::Up);
        let _ = writeln!(
            out,
            "troupe_node_up{{node=\"{}\"}} {up}",
            label(n.id.as_str())
        );
    }
    out.push_str("# HELP troupe_cluster_formed Whether this node has seen every node up.\n# TYPE troupe_cluster_formed gauge\n");
    let _ = writeln!(out, "troupe_cluster_formed {}", u8::from(view.formed));

    let services = runtime.services();
    out.push_str("# HELP troupe_service_members Live members of each service per node.\n# TYPE troupe_service_members gauge\n");
    for s in &services {
        for c in &s.members {
            let _ = writeln!(
                out,
                "troupe_service_members{{service=\"{}\",node=\"{}\"}} {}",
                label(&s.name),
                label(&c.node),
                c.count
            );
        }
    }
    out.push_str("# HELP troupe_member_restart_seconds Time from a member's death to its replacement running, on this node.\n# TYPE troupe_member_restart_seconds summary\n");
    for s in &services {
        let mut took: Vec<f64> = runtime
            .restarts()
            .of(&s.name)
            .iter()
            .map(std::time::Duration::as_secs_f64)
            .collect();
        took.sort_by(f64::total_cmp);
        let name = label(&s.name);
        for q in [0.5, 0.9, 0.99] {
            let _ = writeln!(
                out,
                "troupe_member_restart_seconds{{service=\"{name}\",quantile=\"{q}\"}} {}",
                quantile(&took, q)
            );
        }
        let _ = writeln!(
            out,
            "troupe_member_restart_seconds_sum{{service=\"{name}\"}} {}",
            took.iter().sum::<f64>()
        );
        let _ = writeln!(
            out,
            "troupe_member_restart_seconds_count{{service=\"{name}\"}} {}",
            took.len()
        );
    }
    let t = runtime.transport_stats();
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
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    out
}

pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&state),
    )
}

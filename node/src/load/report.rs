//! The end of a run: its figures as one struct, printed for a person or as JSON (`--json`),
//! with the same fields either way.

use std::collections::HashMap;

use serde::Serialize;

use super::chaos::ChaosReport;
use super::check::Verdict;
use super::drive::Records;
use super::local::NodeChaos;
use super::poll::Seen;
use super::restock::RestockSummary;
use super::stats::{Percentiles, Tally};

/// How the 202-to-final latency is measured, said in every report.
pub(crate) const FINAL_LATENCY_NOTE: &str = "202 to final state: each final order's updated_at - created_at as the node recorded them (ms resolution); orders cancelled by their user are left out";

/// Orders: how many went out, and what became of them.
#[derive(Debug, Default, Serialize)]
pub(crate) struct OrderCounts {
    pub(crate) sent: u64,
    pub(crate) accepted: usize,
    pub(crate) accepted_per_s: f64,
    /// Refused for good (a 4xx other than 429), by code.
    pub(crate) refused: Tally,
    /// Outcome still unknown after every retry.
    pub(crate) unknown: usize,
    /// Open-loop ticks dropped because too many orders were in flight on this side.
    pub(crate) skipped: u64,
    pub(crate) retries: u64,
    /// Seen confirmed or cancelled.
    pub(crate) finished: usize,
    /// Orders carried to a final state per second, from the first order's created_at to the
    /// last final order's updated_at.
    pub(crate) finished_per_s: f64,
    /// Not seen final when the run stopped following them.
    pub(crate) not_final: usize,
}

/// Latency percentiles, ms.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Latencies {
    /// Request to 202 (first send to the 202, retries included).
    pub(crate) accept: Percentiles,
    /// 202 to final state; see `note`.
    #[serde(rename = "final")]
    pub(crate) final_state: Percentiles,
    pub(crate) note: &'static str,
}

/// Every answer that was not a success.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Errors {
    pub(crate) by_code: Tally,
    pub(crate) by_status: Tally,
}

/// `--check`'s outcome.
#[derive(Debug, Serialize)]
pub(crate) struct CheckReport {
    /// Whether every accepted order was final before the deadline.
    pub(crate) quiescent: bool,
    pub(crate) waited_s: f64,
    pub(crate) holds: bool,
    pub(crate) invariants: Vec<Verdict>,
    /// Orders whose outcome stayed unknown after every retry: they may exist without the run
    /// knowing them, so a balance that is off may be theirs.
    pub(crate) unknown_orders: usize,
}

/// A run's report.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Report {
    pub(crate) run_id: String,
    pub(crate) nodes: usize,
    /// `rate 200/s` or `concurrency 16`.
    pub(crate) pace: String,
    pub(crate) duration_s: f64,
    pub(crate) users: usize,
    pub(crate) products: usize,
    pub(crate) setup_failures: Tally,
    pub(crate) orders: OrderCounts,
    pub(crate) latency_ms: Latencies,
    /// `confirmed`, `cancelled:<reason>`, `pending`, by count.
    pub(crate) final_states: Tally,
    pub(crate) errors: Errors,
    pub(crate) cancels: Tally,
    pub(crate) chaos: Option<ChaosReport>,
    /// With `--restock-every-ms`: the restocks made while the orders flowed.
    pub(crate) restocks: Option<RestockSummary>,
    /// With `--up --chaos`: the nodes killed or stopped.
    pub(crate) node_chaos: Option<NodeChaos>,
    pub(crate) check: Option<CheckReport>,
}

/// The order figures from the drive's records and the states the poller saw.
pub(crate) fn orders(
    report: &mut Report,
    records: &Records,
    seen: &HashMap<usize, Seen>,
    sent: u64,
    retries: u64,
    skipped: u64,
) {
    let accepted = records.accepted.len();
    let mut final_ms = Vec::new();
    let (mut first, mut last) = (u64::MAX, 0u64);
    let mut finished = 0;
    for index in 0..accepted {
        let Some(state) = seen.get(&index) else {
            report.final_states.add("pending");
            continue;
        };
        match (&state.status[..], &state.reason) {
            ("cancelled", Some(reason)) => report.final_states.add(format!("cancelled:{reason}")),
            (status, _) => report.final_states.add(status),
        }
        if !state.is_final() {
            continue;
        }
        finished += 1;
        if let (Some(created), Some(updated)) = (state.created_ms, state.updated_ms) {
            first = first.min(created);
            last = last.max(updated);
            if state.reason.as_deref() != Some("cancelled_by_user") {
                final_ms.push(updated.saturating_sub(created) as f64);
            }
        }
    }
    let span_s = last.saturating_sub(first) as f64 / 1000.0;
    report.orders = OrderCounts {
        sent,
        accepted,
        accepted_per_s: per_second(accepted, report.duration_s),
        refused: records.refused.clone(),
        unknown: records.unknown.len(),
        skipped,
        retries,
        finished,
        finished_per_s: per_second(finished, span_s),
        not_final: accepted - finished,
    };
    report.latency_ms = Latencies {
        accept: Percentiles::of(&records.accept_ms),
        final_state: Percentiles::of(&final_ms),
        note: FINAL_LATENCY_NOTE,
    };
    report.errors = Errors {
        by_code: records.errors.clone(),
        by_status: records.statuses.clone(),
    };
    report.cancels = records.cancels.clone();
}

fn per_second(n: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

/// The report for a person.
pub(crate) fn render(r: &Report) -> String {
    let o = &r.orders;
    let mut out = format!(
        "troupe load {}: {} for {:.1} s across {} nodes, {} users, {} products\n",
        r.run_id, r.pace, r.duration_s, r.nodes, r.users, r.products
    );
    if r.setup_failures.total() > 0 {
        out.push_str(&format!("  setup failures: {}\n", r.setup_failures.line()));
    }
    out.push_str(&format!(
        "  orders: {} sent, {} accepted ({:.1}/s), refused: {}, unknown {}, retries {}, skipped {}\n",
        o.sent,
        o.accepted,
        o.accepted_per_s,
        o.refused.line(),
        o.unknown,
        o.retries,
        o.skipped
    ));
    out.push_str(&format!(
        "  final: {} of {} ({:.1}/s end to end), not final {}\n  states: {}\n",
        o.finished,
        o.accepted,
        o.finished_per_s,
        o.not_final,
        r.final_states.line()
    ));
    out.push_str(&format!(
        "  latency request -> 202: {}\n  latency 202 -> final:   {}\n    ({})\n",
        r.latency_ms.accept.line(),
        r.latency_ms.final_state.line(),
        r.latency_ms.note
    ));
    out.push_str(&format!(
        "  errors by code: {}\n  errors by status: {}\n",
        r.errors.by_code.line(),
        r.errors.by_status.line()
    ));
    if r.cancels.total() > 0 {
        out.push_str(&format!("  cancels asked: {}\n", r.cancels.line()));
    }
    if let Some(chaos) = &r.chaos {
        out.push_str(&format!(
            "  chaos: killed {}; refused {}\n",
            chaos.killed.line(),
            chaos.refused.line()
        ));
    }
    if let Some(restocks) = &r.restocks {
        out.push_str(&format!(
            "  restocks: {} units added, {} unknown; failed {}\n",
            restocks.units_added,
            restocks.units_unknown,
            restocks.failed.line()
        ));
    }
    if let Some(nodes) = &r.node_chaos {
        out.push_str(&format!(
            "  node chaos: {}; failed restarts {}\n",
            nodes.done.line(),
            nodes.failed.line()
        ));
    }
    if let Some(check) = &r.check {
        out.push_str(&format!(
            "check ({} after {:.1} s):\n",
            if check.quiescent {
                "quiescent"
            } else {
                "NOT quiescent"
            },
            check.waited_s
        ));
        for v in &check.invariants {
            out.push_str(&format!(
                "  [{}] {}: {}\n",
                if v.holds { "ok" } else { "FAIL" },
                v.name,
                v.figures
            ));
            for o in &v.offenders {
                out.push_str(&format!("        {o}\n"));
            }
        }
        if check.unknown_orders > 0 {
            out.push_str(&format!(
                "  note: {} orders had an unknown outcome after every retry; a balance that is off may be theirs\n",
                check.unknown_orders
            ));
        }
        out.push_str(if check.holds {
            "every invariant holds\n"
        } else {
            "SOME INVARIANTS FAIL\n"
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::load::drive::Accepted;

    fn seen(status: &str, reason: Option<&str>, created: u64, updated: u64) -> Seen {
        Seen {
            status: status.into(),
            reason: reason.map(str::to_string),
            created_ms: Some(created),
            updated_ms: Some(updated),
        }
    }

    #[test]
    fn order_figures_come_from_the_records_and_the_orders_timestamps() {
        let mut records = Records::default();
        for n in 0..4 {
            records.accepted.push(Accepted {
                id: format!("o{n}"),
                user: 0,
                total_cents: 100,
                items: vec![],
            });
            records.accept_ms.push(f64::from(n + 1));
        }
        records.errors.add("unavailable");
        let seen = HashMap::from([
            (0, seen("confirmed", None, 1_000, 1_010)),
            (1, seen("cancelled", Some("out_of_stock"), 1_500, 1_530)),
            (
                2,
                seen("cancelled", Some("cancelled_by_user"), 2_000, 3_000),
            ),
        ]);
        let mut report = Report {
            duration_s: 2.0,
            ..Report::default()
        };
        orders(&mut report, &records, &seen, 5, 1, 0);
        let o = &report.orders;
        assert_eq!((o.sent, o.accepted, o.finished, o.not_final), (5, 4, 3, 1));
        assert_eq!(o.accepted_per_s, 2.0);
        // Three final orders between created 1.000 s and updated 3.000 s.
        assert_eq!(o.finished_per_s, 1.5);
        // The user's cancellation is not a saga latency.
        assert_eq!(report.latency_ms.final_state.count, 2);
        assert_eq!(report.latency_ms.final_state.max, 30.0);
        assert_eq!(report.latency_ms.accept.p50, 2.0);
        assert_eq!(
            report.final_states.line(),
            "cancelled:cancelled_by_user 1, cancelled:out_of_stock 1, confirmed 1, pending 1"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["latency_ms"]["final"]["p99"], 30.0);
        assert_eq!(json["errors"]["by_code"]["unavailable"], 1);
        assert!(render(&report).contains("final: 3 of 4 (1.5/s end to end)"));
    }

    #[test]
    fn a_failing_invariant_is_printed_with_its_figures() {
        let report = Report {
            check: Some(CheckReport {
                quiescent: true,
                waited_s: 0.5,
                holds: false,
                invariants: vec![Verdict {
                    name: "stock: initial + restocks = stock + confirmed",
                    holds: false,
                    figures: "1 products: initial + restocks 10 = stock now 9 + confirmed quantities 0 (1 off)".into(),
                    offenders: vec!["product p1: initial 10 + restocked 0 != stock 9 + confirmed 0".into()],
                }],
                unknown_orders: 0,
            }),
            ..Report::default()
        };
        let text = render(&report);
        assert!(text.contains("[FAIL] stock: initial + restocks = stock + confirmed: 1 products: initial + restocks 10 = stock now 9"), "{text}");
        assert!(text.contains("        product p1: initial 10"), "{text}");
        assert!(text.ends_with("SOME INVARIANTS FAIL\n"), "{text}");
    }
}

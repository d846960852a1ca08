//! Following accepted orders to their final state without hammering the cluster: outstanding
//! orders are read a batch at a time, at most `per_second` reads a second, oldest first. The
//! latency from 202 to the final state is not measured by polling but taken from the order
//! itself, `updated_at - created_at` (milliseconds), once it is final.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::drive::Drive;
use super::stats::parse_rfc3339_ms;

/// How often a batch is read.
const TICK: Duration = Duration::from_millis(200);

/// An order's last state as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) status: String,
    pub(crate) reason: Option<String>,
    pub(crate) created_ms: Option<u64>,
    pub(crate) updated_ms: Option<u64>,
}

impl Seen {
    /// Whether the order is confirmed or cancelled.
    pub(crate) fn is_final(&self) -> bool {
        self.status == "confirmed" || self.status == "cancelled"
    }
}

/// Reads accepted orders (indices arriving on `accepted`) until each is final, or until
/// `stop` turns true and then either nothing is outstanding or `settle` has passed. Gives the
/// last state seen of every order read, by index.
pub(crate) async fn follow(
    drive: Arc<Drive>,
    mut accepted: mpsc::UnboundedReceiver<usize>,
    mut stop: watch::Receiver<bool>,
    per_second: usize,
    settle: Duration,
) -> HashMap<usize, Seen> {
    let batch = (per_second * TICK.as_millis() as usize / 1000).max(1);
    let mut outstanding: VecDeque<usize> = VecDeque::new();
    let mut seen: HashMap<usize, Seen> = HashMap::new();
    let mut settle_until: Option<Instant> = None;
    let mut tick = tokio::time::interval(TICK);
    loop {
        tick.tick().await;
        while let Ok(index) = accepted.try_recv() {
            outstanding.push_back(index);
        }
        if settle_until.is_none() && (*stop.borrow_and_update() || stop.has_changed().is_err()) {
            settle_until = Some(Instant::now() + settle);
        }
        if let Some(until) = settle_until
            && (outstanding.is_empty() || Instant::now() > until)
        {
            // Late arrivals (orders resolved after the drive) are read once more below.
            while let Ok(index) = accepted.try_recv() {
                outstanding.push_back(index);
            }
            if outstanding.is_empty() || Instant::now() > until {
                break;
            }
        }
        let mut reads = JoinSet::new();
        for _ in 0..batch.min(outstanding.len()) {
            let Some(index) = outstanding.pop_front() else {
                break;
            };
            let id = drive.records().accepted[index].id.clone();
            let api = drive.api.clone();
            reads.spawn(async move { (index, api.read(&format!("/api/v1/orders/{id}")).await) });
        }
        while let Some(joined) = reads.join_next().await {
            let Ok((index, read)) = joined else { continue };
            match read {
                Ok(body) => {
                    let state = Seen {
                        status: body["status"].as_str().unwrap_or("unknown").to_string(),
                        reason: body["reason"].as_str().map(str::to_string),
                        created_ms: body["created_at"].as_str().and_then(parse_rfc3339_ms),
                        updated_ms: body["updated_at"].as_str().and_then(parse_rfc3339_ms),
                    };
                    let done = state.is_final();
                    seen.insert(index, state);
                    if done {
                        drive.counters.finished.fetch_add(1, Ordering::Relaxed);
                    } else {
                        outstanding.push_back(index);
                    }
                }
                Err(_) => outstanding.push_back(index),
            }
        }
    }
    seen
}

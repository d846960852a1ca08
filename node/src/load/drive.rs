//! Placing the orders: open loop (`--rate`, orders started per second whatever the answers)
//! or closed loop (`--concurrency`, each worker waits for its answer), for a duration.
//!
//! Every order carries an `Idempotency-Key`. An answer that leaves the outcome unknown (503,
//! 504, 429, no answer) is retried with the same key and body, on the next node, with backoff:
//! a lost answer never becomes a second order. An order still unknown after [`RETRY_FOR`] is
//! set aside and sent once more, with its key, after the drive ([`resolve_unknown`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::client::{Answer, Api};
use super::setup::{LoadProduct, LoadUser};
use super::stats::Tally;

/// How long one order is retried before its outcome is set aside as unknown.
const RETRY_FOR: Duration = Duration::from_secs(20);
/// The most orders in flight in open-loop mode; beyond, a tick is counted as skipped.
const MAX_IN_FLIGHT: usize = 4096;

/// An order that got its 202.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    pub(crate) id: String,
    /// Index into the run's users.
    pub(crate) user: usize,
    pub(crate) total_cents: u64,
    pub(crate) items: Vec<(String, u64)>,
}

/// An order whose outcome stayed unknown: sent again with the same key after the drive.
#[derive(Debug, Clone)]
pub(crate) struct Unknown {
    user: usize,
    key: String,
    body: Value,
}

/// What the drive records, under one lock (taken once per answer).
#[derive(Debug, Default)]
pub(crate) struct Records {
    pub(crate) accepted: Vec<Accepted>,
    /// Request (first send) to 202, in ms, retries included.
    pub(crate) accept_ms: Vec<f64>,
    /// Every answer that was not a success, by `error.code` (or `transport`).
    pub(crate) errors: Tally,
    /// The same answers by HTTP status (or `transport`).
    pub(crate) statuses: Tally,
    /// Orders that ended refused (a 4xx other than 429), by code.
    pub(crate) refused: Tally,
    pub(crate) unknown: Vec<Unknown>,
    /// User cancellations asked, by outcome.
    pub(crate) cancels: Tally,
}

/// Live counts for the progress display.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) accepted: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) finished: AtomicU64,
}

/// What every order task shares.
#[derive(Debug)]
pub(crate) struct Drive {
    pub(crate) api: Arc<Api>,
    pub(crate) users: Vec<LoadUser>,
    pub(crate) products: Vec<LoadProduct>,
    pub(crate) run_id: String,
    /// Most units of one product in one order line.
    pub(crate) max_quantity: u64,
    /// Percent of accepted orders whose user asks to cancel them at once.
    pub(crate) cancel_percent: u8,
    pub(crate) counters: Counters,
    pub(crate) records: Mutex<Records>,
    /// Each accepted order's index, for the poller.
    pub(crate) accepted_tx: mpsc::UnboundedSender<usize>,
    /// Set on Ctrl-C: no new order starts; those in flight finish (and are recorded), so that
    /// nothing the cluster accepted is unknown to the checks.
    pub(crate) stopping: AtomicBool,
    seq: AtomicU64,
}

/// Open or closed loop.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pace {
    /// Orders started per second.
    Rate(f64),
    /// Workers, each with one order in flight.
    Concurrency(usize),
}

impl Drive {
    /// A drive over the run's users and products.
    pub(crate) fn new(
        api: Arc<Api>,
        users: Vec<LoadUser>,
        products: Vec<LoadProduct>,
        run_id: String,
        max_quantity: u64,
        cancel_percent: u8,
        accepted_tx: mpsc::UnboundedSender<usize>,
    ) -> Self {
        Self {
            api,
            users,
            products,
            run_id,
            max_quantity: max_quantity.max(1),
            cancel_percent,
            counters: Counters::default(),
            records: Mutex::new(Records::default()),
            accepted_tx,
            stopping: AtomicBool::new(false),
            seq: AtomicU64::new(0),
        }
    }

    /// The records, locked (for the poller and the report).
    pub(crate) fn records(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new order: a random user, 1 to 3 distinct random products, small quantities.
    fn new_order(&self) -> Unknown {
        let user = rand::random_range(0..self.users.len());
        let lines = rand::random_range(1..=3usize).min(self.products.len());
        let mut picked: Vec<usize> = Vec::with_capacity(lines);
        while picked.len() < lines {
            let p = rand::random_range(0..self.products.len());
            if !picked.contains(&p) {
                picked.push(p);
            }
        }
        let items: Vec<Value> = picked
            .iter()
            .map(|p| {
                json!({"product_id": self.products[*p].id,
                       "quantity": rand::random_range(1..=self.max_quantity)})
            })
            .collect();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        Unknown {
            user,
            key: format!("load-{}-{seq}", self.run_id),
            body: json!({"items": items}),
        }
    }

    /// Places one new order, retrying an unknown outcome with its key.
    pub(crate) async fn place_one(self: &Arc<Self>) {
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        let order = self.new_order();
        self.place(order).await;
    }

    async fn place(self: &Arc<Self>, order: Unknown) {
        let token = &self.users[order.user].token;
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let answer = self
                .api
                .send(
                    Method::POST,
                    "/api/v1/orders",
                    Some(token),
                    Some(&order.body),
                    Some(&order.key),
                )
                .await;
            match answer {
                Answer::Http(202, body) => {
                    self.accepted(&order, &body, started.elapsed());
                    return;
                }
                answer => {
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    let mut records = self.records();
                    records.errors.add(answer.error_key());
                    records.statuses.add(match &answer {
                        Answer::Http(status, _) => status.to_string(),
                        Answer::Transport(_) => "transport".to_string(),
                    });
                    if !answer.retryable() {
                        records.refused.add(answer.error_key());
                        return;
                    }
                    if started.elapsed() > RETRY_FOR {
                        records.unknown.push(order);
                        return;
                    }
                }
            }
            attempt += 1;
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt.min(20)))).await;
        }
    }

    fn accepted(self: &Arc<Self>, order: &Unknown, body: &Value, took: Duration) {
        let items = body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                (
                    i["product_id"].as_str().unwrap_or_default().to_string(),
                    i["quantity"].as_u64().unwrap_or_default(),
                )
            })
            .collect();
        let id = body["id"].as_str().unwrap_or_default().to_string();
        let index = {
            let mut records = self.records();
            records.accepted.push(Accepted {
                id: id.clone(),
                user: order.user,
                total_cents: body["total_cents"].as_u64().unwrap_or_default(),
                items,
            });
            records.accept_ms.push(took.as_secs_f64() * 1000.0);
            records.accepted.len() - 1
        };
        self.counters.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = self.accepted_tx.send(index);
        if self.cancel_percent > 0 && rand::random_range(0..100u8) < self.cancel_percent {
            let drive = self.clone();
            let user = order.user;
            tokio::spawn(async move { drive.cancel(&id, user).await });
        }
    }

    /// The user asks to cancel order `id` (a 409 means it was confirmed first).
    async fn cancel(&self, id: &str, user: usize) {
        let path = format!("/api/v1/orders/{id}/cancel");
        let token = &self.users[user].token;
        let started = Instant::now();
        let mut attempt = 0u64;
        loop {
            let answer = self
                .api
                .send(Method::POST, &path, Some(token), None, None)
                .await;
            // Asking again is harmless: a cancelled order is answered as it is.
            if !answer.retryable() || started.elapsed() > RETRY_FOR {
                let outcome = match &answer {
                    Answer::Http(200, _) => "cancelled".to_string(),
                    a => a.error_key(),
                };
                self.records().cancels.add(outcome);
                return;
            }
            attempt += 1;
            tokio::time::sleep(Duration::from_millis(50 * attempt.min(20))).await;
        }
    }
}

/// Places orders at `pace` until `duration` has passed; waits for the orders in flight.
pub(crate) async fn run(drive: &Arc<Drive>, pace: Pace, duration: Duration) {
    let end = Instant::now() + duration;
    let mut tasks = JoinSet::new();
    match pace {
        Pace::Concurrency(workers) => {
            for _ in 0..workers.max(1) {
                let drive = drive.clone();
                tasks.spawn(async move {
                    while Instant::now() < end && !drive.stopping.load(Ordering::Relaxed) {
                        drive.place_one().await;
                    }
                });
            }
        }
        Pace::Rate(per_second) => {
            let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            while Instant::now() < end && !drive.stopping.load(Ordering::Relaxed) {
                tick.tick().await;
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    drive.counters.skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let drive = drive.clone();
                tasks.spawn(async move {
                    drive.place_one().await;
                    drop(slot);
                });
                // Reap what finished, so that the set does not grow with the run.
                while tasks.try_join_next().is_some() {}
            }
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Sends every order whose outcome stayed unknown once more, with its key: it is either the
/// order that was made (and is then tracked) or a new one now. Gives how many stay unknown.
pub(crate) async fn resolve_unknown(drive: &Arc<Drive>) -> usize {
    let unknown = std::mem::take(&mut drive.records().unknown);
    let mut tasks = JoinSet::new();
    for order in unknown {
        let drive = drive.clone();
        tasks.spawn(async move { drive.place(order).await });
    }
    while tasks.join_next().await.is_some() {}
    drive.records().unknown.len()
}

//! The relay: delivers a shard's outbox to the subscriptions of each event, at least once, in
//! order per subscription and key, and removes an event once every subscription has
//! acknowledged it.
//!
//! One relay runs per shard, as a task the shard owns (it stops when the shard stops; the
//! shard's successor starts its own, which begins again from the oldest event left). It
//! delivers only what is durable: events the shard found at start, and then those of each
//! batch once its flush is done ([`RelayHandle::durable_below`]).
//!
//! For each subscription, the events of one key go one at a time: the next waits until the
//! previous is acknowledged (or sent to the dead letters), so a subscriber applies them in
//! order; events of other keys go meanwhile, up to [`WINDOW`] in flight. A delivery that fails
//! (the subscriber's node unreachable, its shard restarting, a timeout) is retried with a
//! capped backoff and holds up only its own key. A subscriber that refuses an event (a domain
//! error) [`Bus::max_attempts`] times sends it to the dead letters: a record in the shard's
//! keyspace (`x/...`) with the event, the subscription, the attempts and the last error.
//!
//! A subscriber applies each delivery at most once: it keeps, in the same batch as the change
//! the event caused, the highest event number it applied per publishing shard and key (see
//! [`crate::events::Delivery`]); a redelivery at or below it is acknowledged without effect.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::{Duration, Instant};

mod records;
mod trace;

use super::effects::{OUTBOX_PREFIX, OutboxRecord, outbox_seq};
use crate::backoff::Backoff;
use crate::events::{Bus, Delivery, Event, Outcome, Route, Topic, Verdict};
use crate::service::{CallError, Outbound, To};
use crate::store::{Keyspace, WriteBatch};
use crate::telemetry;
pub use records::DeadLetter;
pub(crate) use records::{DEAD_PREFIX, applied_key, dead_key, redriven_key};

/// Deliveries in flight at once per shard.
pub(crate) const WINDOW: usize = 256;
/// Events read ahead of the oldest unacknowledged one.
const READ_AHEAD: usize = 4096;
/// How long a delivery waits for its subscriber's answer.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a shard hands its relay the events of each batch: as soon as the batch is applied,
/// in the order the shard applied them (so that the events of a key arrive in order), and
/// then, once it is durable, the number below which everything is durable: only those events
/// are delivered.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    /// A std mutex: held to push or take the events.
    queue: std::sync::Mutex<Vec<(Vec<u8>, OutboxRecord)>>,
    /// Everything numbered below this is durable (a flush covers every write before it).
    durable_below: AtomicU64,
    wake: Notify,
}

impl Inbox {
    /// Hands over the events of a batch just applied (not durable yet).
    pub(crate) fn push(&self, events: Vec<(Vec<u8>, OutboxRecord)>) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(events);
    }

    /// The events numbered below `seq` are durable.
    pub(crate) fn durable_below(&self, seq: u64) {
        self.durable_below.fetch_max(seq, Ordering::AcqRel);
        self.wake.notify_one();
    }

    fn take(&self) -> Vec<(Vec<u8>, OutboxRecord)> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A shard's handle on its relay: stops it when dropped.
#[derive(Debug)]
pub(crate) struct RelayHandle {
    inbox: Arc<Inbox>,
    task: tokio::task::JoinHandle<()>,
}

impl RelayHandle {
    /// Where the shard hands over the events of each batch once it is durable.
    pub(crate) fn inbox(&self) -> &Arc<Inbox> {
        &self.inbox
    }
}

impl Drop for RelayHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the relay of the shard over `keyspace`, whose events numbered below `durable_below`
/// are durable (they were there when the shard opened): it reads them all first.
pub(crate) fn start(
    keyspace: Arc<Keyspace>,
    bus: Arc<Bus>,
    outbound: Outbound,
    entity: &'static str,
    durable_below: u64,
) -> RelayHandle {
    let inbox = Arc::new(Inbox {
        durable_below: AtomicU64::new(durable_below),
        ..Inbox::default()
    });
    let relay = Relay {
        source: keyspace.name().to_string(),
        keyspace,
        bus,
        outbound,
        entity,
        inbox: Arc::clone(&inbox),
        pending: BTreeMap::new(),
        rescan: true,
        in_flight: JoinSet::new(),
        backoff: Backoff::new(Duration::from_millis(50), Duration::from_secs(5), 0.2),
    };
    RelayHandle {
        inbox,
        task: tokio::spawn(relay.run()),
    }
}

/// One subscription's progress with one event.
struct Progress {
    subscription: String,
    /// The subscription's name hashed, with the event's key: what orders deliveries.
    order: (u64, u64),
    acked: bool,
    in_flight: bool,
    /// Refusals so far.
    refusals: u32,
    /// Failures of any kind in a row, for the backoff.
    failures: u32,
    next_try: Instant,
    last_error: String,
}

/// An event read from the outbox and not yet acknowledged by every subscription.
struct Pending {
    /// When it was read: right after it was durable, or at the relay's start.
    since: Instant,
    key: Vec<u8>,
    record: OutboxRecord,
    event: Event,
    progress: Vec<Progress>,
}

/// The answer to one delivery.
struct Done {
    seq: u64,
    subscription: String,
    verdict: Result<Verdict, CallError>,
}

struct Relay {
    keyspace: Arc<Keyspace>,
    source: String,
    bus: Arc<Bus>,
    outbound: Outbound,
    entity: &'static str,
    inbox: Arc<Inbox>,
    pending: BTreeMap<u64, Pending>,
    /// The outbox holds durable events the relay has not read: at the start, and after the
    /// read-ahead was full when events were handed over (they were dropped then).
    rescan: bool,
    in_flight: JoinSet<Done>,
    backoff: Backoff,
}

impl Relay {
    async fn run(mut self) {
        loop {
            let mut done_with = Vec::new();
            if let Err(e) = self.read(&mut done_with) {
                tracing::warn!(shard = %self.source, error = %e, "the relay cannot read the outbox");
            }
            let next_try = self.launch(&mut done_with);
            self.remove(done_with);
            let wait = next_try.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                Some(done) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    // Every answer that is in, before looking at the outbox again.
                    let mut done_with = Vec::new();
                    let mut next = Some(done);
                    while let Some(done) = next {
                        if let Ok(done) = done {
                            self.answered(done, &mut done_with);
                        }
                        next = self.in_flight.try_join_next();
                    }
                    self.remove(done_with);
                }
                () = self.inbox.wake.notified() => {}
                () = tokio::time::sleep_until(wait) => {}
            }
        }
    }

    /// Takes the events handed over since the last time, in order; when the read-ahead is
    /// full, drops them (they are in the outbox) and reads the whole outbox again once there
    /// is room, ignoring what is handed over meanwhile (each key's events must be taken in
    /// order, and the outbox has them in order per key). Events no subscription wants go into
    /// `done_with` at once.
    fn read(&mut self, done_with: &mut Vec<Vec<u8>>) -> Result<(), crate::store::StoreError> {
        let handed = self.inbox.take();
        if !self.rescan {
            for (key, record) in handed {
                if self.pending.len() >= READ_AHEAD {
                    self.rescan = true;
                    break;
                }
                self.admit(key, record, done_with);
            }
        }
        if self.rescan && self.pending.len() < READ_AHEAD / 2 {
            // Everything handed over so far was applied before this scan starts: the scan
            // sees it.
            drop(self.inbox.take());
            self.rescan = false;
            let mut after: Option<Vec<u8>> = None;
            'scan: loop {
                let page =
                    self.keyspace
                        .scan::<OutboxRecord>(OUTBOX_PREFIX, after.as_deref(), 1024)?;
                let Some((last, _)) = page.last() else { break };
                after = Some(last.clone());
                for (key, record) in page {
                    if outbox_seq(&key).is_some_and(|seq| self.pending.contains_key(&seq)) {
                        continue;
                    }
                    if self.pending.len() >= READ_AHEAD {
                        // The rest of each key comes after what was taken of it: next time.
                        self.rescan = true;
                        break 'scan;
                    }
                    self.admit(key, record, done_with);
                }
            }
        }
        self.bus
            .note_backlog(&self.source, self.pending.len() as u64);
        Ok(())
    }

    /// Takes one durable event for delivery to the subscriptions it matches.
    fn admit(&mut self, key: Vec<u8>, record: OutboxRecord, done_with: &mut Vec<Vec<u8>>) {
        let Some(seq) = outbox_seq(&key) else { return };
        let Ok(topic) = Topic::parse(&record.topic) else {
            done_with.push(key);
            return;
        };
        let subscriptions = match &record.only {
            Some(only) => vec![only.clone()],
            None => self.bus.matching(&topic),
        };
        if subscriptions.is_empty() {
            done_with.push(key);
            return;
        }
        let now = Instant::now();
        let event = Event {
            id: record.event,
            topic,
            source: record.entity.clone(),
            key: record.key.clone(),
            payload: record.payload.clone(),
            at_ms: record.at_ms,
        };
        let key_hash = crate::hash::stable_hash(&record.key);
        let progress = subscriptions
            .into_iter()
            .map(|subscription| Progress {
                order: (crate::hash::stable_hash(subscription.as_bytes()), key_hash),
                subscription,
                acked: false,
                in_flight: false,
                refusals: 0,
                failures: 0,
                next_try: now,
                last_error: String::new(),
            })
            .collect();
        self.pending.insert(
            seq,
            Pending {
                since: now,
                key,
                record,
                event,
                progress,
            },
        );
    }

    /// Starts every delivery that may go now; returns when the next retry is due.
    fn launch(&mut self, done_with: &mut Vec<Vec<u8>>) -> Option<Instant> {
        let now = Instant::now();
        let durable_below = self.inbox.durable_below.load(Ordering::Acquire);
        let mut next_try: Option<Instant> = None;
        // (subscription, key) pairs with an earlier event not acknowledged yet.
        let mut held: HashSet<(u64, u64)> = HashSet::new();
        for (&seq, pending) in self.pending.range_mut(..durable_below) {
            for progress in pending.progress.iter_mut().filter(|p| !p.acked) {
                if !held.insert(progress.order) || progress.in_flight {
                    continue;
                }
                if progress.next_try > now {
                    next_try =
                        Some(next_try.map_or(progress.next_try, |t| t.min(progress.next_try)));
                    continue;
                }
                if self.in_flight.len() >= WINDOW {
                    continue;
                }
                let Some(deliverer) = self.bus.deliverer(&progress.subscription) else {
                    // The subscription is no longer declared: nothing to deliver to.
                    progress.acked = true;
                    continue;
                };
                let delivery = Delivery {
                    subscription: progress.subscription.clone(),
                    source: self.source.clone(),
                    key: pending.record.key.clone(),
                    seq,
                    event: pending.record.event,
                    redrive: pending.record.only.is_some(),
                };
                let Some((route, request)) = (deliverer.build)(&pending.event, &delivery) else {
                    progress.acked = true;
                    continue;
                };
                let to = match route {
                    Route::Shard(key) => To::Shard(key),
                    Route::Any => To::Any,
                };
                progress.in_flight = true;
                let (context, mut span) = trace::delivery(
                    &pending.record,
                    &progress.subscription,
                    deliverer.service,
                    progress.failures + 1,
                );
                let answer = telemetry::with(context, || {
                    self.outbound
                        .call(deliverer.service, to, request, DELIVERY_TIMEOUT)
                });
                let judge = deliverer.judge;
                let subscription = progress.subscription.clone();
                self.in_flight.spawn(async move {
                    let verdict = answer.await.map(|bytes| judge(&bytes));
                    if let Err(e) = &verdict {
                        span.fail(e);
                    }
                    drop(span);
                    Done {
                        seq,
                        subscription,
                        verdict,
                    }
                });
            }
            if pending.progress.iter().all(|p| p.acked) {
                done_with.push(pending.key.clone());
            }
        }
        next_try
    }

    /// Records the answer to one delivery.
    fn answered(&mut self, done: Done, done_with: &mut Vec<Vec<u8>>) {
        let Some(pending) = self.pending.get_mut(&done.seq) else {
            return;
        };
        let Some(progress) = pending
            .progress
            .iter_mut()
            .find(|p| p.subscription == done.subscription)
        else {
            return;
        };
        progress.in_flight = false;
        let subscription = done.subscription.as_str();
        let error = match done.verdict {
            Ok(Verdict::Ack) => {
                progress.acked = true;
                self.bus.note(subscription, Outcome::Delivered);
                self.bus.note_latency(subscription, pending.since.elapsed());
                ::metrics::counter!(crate::metrics::EVENTS_DELIVERED, "subscription" => subscription.to_string())
                    .increment(1);
                None
            }
            Ok(Verdict::Rejected(why)) => {
                progress.refusals += 1;
                self.bus.note(subscription, Outcome::Refused);
                Some(why)
            }
            Ok(Verdict::Retry(why)) => {
                self.bus.note(subscription, Outcome::Retried);
                Some(why)
            }
            Err(e) => {
                self.bus.note(subscription, Outcome::Retried);
                Some(e.to_string())
            }
        };
        if let Some(why) = error {
            progress.failures += 1;
            progress.next_try = Instant::now()
                + self
                    .backoff
                    .delay_random(progress.failures.saturating_sub(1));
            tracing::debug!(shard = %self.source, subscription, seq = done.seq, error = %why, "an event was not delivered yet");
            progress.last_error = why;
            if progress.refusals >= self.bus.max_attempts() {
                let letter = DeadLetter {
                    event: pending.record.clone(),
                    seq: done.seq,
                    subscription: subscription.to_string(),
                    attempts: progress.refusals,
                    last_error: progress.last_error.clone(),
                    at_ms: super::effects::now_ms(),
                };
                let written = (|| {
                    let mut batch = WriteBatch::new();
                    batch.put(&dead_key(subscription, done.seq), &letter)?;
                    self.keyspace.apply(batch)
                })();
                match written {
                    Ok(_) => {
                        tracing::warn!(shard = %self.source, entity = self.entity, subscription, seq = done.seq, attempts = letter.attempts, error = %letter.last_error, "an event went to the dead letters");
                        ::metrics::counter!(crate::metrics::EVENTS_DEAD_LETTERED, "subscription" => subscription.to_string())
                            .increment(1);
                        self.bus.note(subscription, Outcome::DeadLettered);
                        progress.acked = true;
                    }
                    Err(e) => {
                        tracing::warn!(shard = %self.source, error = %e, "cannot write a dead letter; will try again");
                    }
                }
            }
        }
        if pending.progress.iter().all(|p| p.acked) {
            done_with.push(pending.key.clone());
        }
    }

    /// Removes the events every subscription is done with, from memory and the outbox.
    fn remove(&mut self, done_with: Vec<Vec<u8>>) {
        if done_with.is_empty() {
            return;
        }
        let before = self.pending.len();
        for key in done_with {
            if let Some(seq) = outbox_seq(&key) {
                self.pending.remove(&seq);
            }
            // One key at a time: removals need no atomicity, and a write of many keys would
            // take the store's slow path. Not waited for: if one is lost in a crash, its event
            // is delivered again and the subscribers ignore it.
            let mut batch = WriteBatch::new();
            batch.delete(&key);
            if let Err(e) = self.keyspace.apply(batch) {
                tracing::warn!(shard = %self.source, error = %e, "cannot remove a delivered event from the outbox");
                break;
            }
        }
        if self.pending.len() != before {
            self.bus
                .note_backlog(&self.source, self.pending.len() as u64);
        }
    }
}

#[cfg(test)]
mod tests;

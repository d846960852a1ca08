//! The bus: the subscriptions this node's code declared, each with how an event becomes a
//! request to its subscriber, and what an event and one delivery of it look like.
//!
//! Every node runs the same code, so every node declares the same subscriptions: a shard's
//! relay (see `entity::relay`) looks up the subscriptions matching each event it publishes
//! and delivers the event to each, through the subscription's [`Deliverer`]. Declare
//! subscriptions before hosting the services that publish: a relay started with no
//! subscription declared leaves its outbox alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::{Subscription, SubscriptionError, Subscriptions, Topic};

/// An event as a subscriber receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Its unique id (a UUID v7: in publishing time order).
    pub id: [u8; 16],
    /// Its topic.
    pub topic: Topic,
    /// The entity type that published it.
    pub source: String,
    /// The publishing entity's id, encoded: events of one key are delivered in order.
    pub key: Vec<u8>,
    /// The event, encoded (bincode): [`Event::decode`].
    pub payload: Vec<u8>,
    /// When it was published, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl Event {
    /// The event's payload as a `T`.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::CallError> {
        crate::service::decode(&self.payload)
    }

    /// The publishing entity's id as text, for an entity whose id is a string (its key is
    /// its UTF-8 bytes).
    pub fn key_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.key).ok()
    }
}

/// One delivery of an event to one subscription, as it travels with the request: what the
/// subscriber's shard needs to apply it once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The subscription.
    pub subscription: String,
    /// The publishing shard (its keyspace's name): sequence numbers are its own.
    pub source: String,
    /// The publishing entity's id, encoded.
    pub key: Vec<u8>,
    /// The event's number in the publishing shard's outbox: the events of one key arrive in
    /// this order, so a subscriber keeps the highest it applied per source and key and
    /// applies nothing at or below it twice.
    pub seq: u64,
    /// The event's id.
    pub event: [u8; 16],
    /// A re-drive from the dead letters: applied at most once by its event id instead.
    pub redrive: bool,
}

/// Which member of the subscriber service a delivery goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The shard that owns this key (an entity subscriber).
    Shard(Vec<u8>),
    /// Any member (a stateless subscriber: competing consumers).
    Any,
}

/// What a subscriber's answer to a delivery means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Applied (or applied before): done.
    Ack,
    /// The subscriber refused it: counted towards the dead letters.
    Rejected(String),
    /// Not applied now (a store problem): try again later, not counted.
    Retry(String),
}

/// Builds the request for one delivery: where it goes and its encoded request, or `None` to
/// skip this event (the subscription does not want it).
pub type Build = dyn Fn(&Event, &Delivery) -> Option<(Route, Vec<u8>)> + Send + Sync;

/// How a subscription turns an event into a request to its subscriber, and reads the answer.
#[derive(Clone)]
pub struct Deliverer {
    /// The subscriber service.
    pub service: &'static str,
    /// Builds the request.
    pub build: Arc<Build>,
    /// Reads the subscriber's encoded answer.
    pub judge: fn(&[u8]) -> Verdict,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// How many times a subscriber may refuse an event before it goes to the dead letters.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// The subscriptions of this node's code.
#[derive(Debug)]
pub struct Bus {
    /// A std lock: held to copy what one event needs, never across an await.
    state: RwLock<State>,
    max_attempts: u32,
    /// What this node's relays did. A std mutex: held to bump a counter.
    stats: Mutex<Stats>,
    /// Delivery latencies per subscription, in microseconds (same order as the stats).
    latencies: Mutex<HashMap<String, hdrhistogram::Histogram<u64>>>,
}

/// What one subscription's deliveries from this node's relays came to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SubscriptionStats {
    /// The subscription.
    pub name: String,
    /// Its pattern.
    pub pattern: String,
    /// Its subscriber service.
    pub service: String,
    /// Deliveries acknowledged.
    pub delivered: u64,
    /// Deliveries the subscriber refused (each counts towards the dead letters).
    pub refused: u64,
    /// Deliveries that failed otherwise (unreachable, timed out) and were tried again.
    pub retried: u64,
    /// Events set aside in the dead letters.
    pub dead_lettered: u64,
    /// From an event being durable in its outbox (or read from it, after a restart) to its
    /// subscriber's acknowledgement, which comes once the subscriber's change is durable.
    pub latency_us: Latency,
}

/// Delivery latency percentiles, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Worst.
    pub max: u64,
}

/// What this node's relays did, for `GET /admin/events`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Events committed to outboxes here, per topic.
    pub published: std::collections::BTreeMap<String, u64>,
    /// Per subscription, in the order declared.
    pub subscriptions: Vec<SubscriptionStats>,
    /// Events waiting in each of this node's shards' outboxes, as their relays last counted.
    pub backlog: std::collections::BTreeMap<String, u64>,
}

/// What happened to one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged.
    Delivered,
    /// Refused by the subscriber.
    Refused,
    /// Failed otherwise; tried again later.
    Retried,
    /// Set aside in the dead letters.
    DeadLettered,
}

#[derive(Debug, Default)]
struct State {
    subscriptions: Subscriptions,
    deliverers: HashMap<String, Deliverer>,
}

impl Default for Bus {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ATTEMPTS)
    }
}

impl Bus {
    /// A bus with no subscription, whose subscribers may refuse an event `max_attempts`
    /// times before it goes to the dead letters.
    pub fn new(max_attempts: u32) -> Self {
        Self {
            state: RwLock::new(State::default()),
            max_attempts: max_attempts.max(1),
            stats: Mutex::new(Stats::default()),
            latencies: Mutex::new(HashMap::new()),
        }
    }

    /// Records one delivery to `subscription` acknowledged `latency` after its event was
    /// durable.
    pub fn note_latency(&self, subscription: &str, latency: std::time::Duration) {
        let mut latencies = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        let histogram = match latencies.get_mut(subscription) {
            Some(h) => h,
            None => latencies
                .entry(subscription.to_string())
                .or_insert_with(|| {
                    // 1 us to 1 h at 2 significant digits: valid bounds, so this cannot fail.
                    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 2)
                        .unwrap_or_else(|_| unreachable!("valid histogram bounds"))
                }),
        };
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let _ = histogram.record(us.min(3_600_000_000));
    }

    fn stats_mut(&self) -> std::sync::MutexGuard<'_, Stats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts an event committed on `topic`.
    pub fn note_published(&self, topic: &str) {
        *self
            .stats_mut()
            .published
            .entry(topic.to_string())
            .or_default() += 1;
    }

    /// Counts what happened to a delivery for `subscription`.
    pub fn note(&self, subscription: &str, outcome: Outcome) {
        let mut stats = self.stats_mut();
        let Some(s) = stats
            .subscriptions
            .iter_mut()
            .find(|s| s.name == subscription)
        else {
            return;
        };
        match outcome {
            Outcome::Delivered => s.delivered += 1,
            Outcome::Refused => s.refused += 1,
            Outcome::Retried => s.retried += 1,
            Outcome::DeadLettered => s.dead_lettered += 1,
        }
    }

    /// Records that shard `shard`'s outbox holds `events` not yet delivered everywhere.
    pub fn note_backlog(&self, shard: &str, events: u64) {
        let mut stats = self.stats_mut();
        match stats.backlog.get_mut(shard) {
            Some(n) if *n == events => return,
            Some(n) => *n = events,
            None => {
                stats.backlog.insert(shard.to_string(), events);
            }
        }
        drop(stats);
        ::metrics::gauge!(crate::metrics::EVENTS_BACKLOG, "shard" => shard.to_string())
            .set(events as f64);
    }

    /// What this node's relays did so far.
    pub fn stats(&self) -> Stats {
        let mut stats = self.stats_mut().clone();
        let latencies = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        for s in &mut stats.subscriptions {
            if let Some(h) = latencies.get(&s.name) {
                s.latency_us = Latency {
                    p50: h.value_at_quantile(0.5),
                    p99: h.value_at_quantile(0.99),
                    max: h.max(),
                };
            }
        }
        stats
    }

    /// How many refusals send an event to the dead letters.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Declares `subscription`, delivered through `deliverer`.
    pub fn declare(
        &self,
        subscription: Subscription,
        deliverer: Deliverer,
    ) -> Result<(), SubscriptionError> {
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let name = subscription.name().to_string();
        let stats = SubscriptionStats {
            name: name.clone(),
            pattern: subscription.pattern().as_str().to_string(),
            service: subscription.service().to_string(),
            ..SubscriptionStats::default()
        };
        state.subscriptions.add(subscription)?;
        state.deliverers.insert(name, deliverer);
        self.stats_mut().subscriptions.push(stats);
        Ok(())
    }

    /// Whether any subscription is declared.
    pub fn is_empty(&self) -> bool {
        self.read().subscriptions.is_empty()
    }

    /// The subscriptions, in the order declared.
    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.read().subscriptions.iter().cloned().collect()
    }

    /// The names of the subscriptions `topic` goes to, in the order declared.
    pub fn matching(&self, topic: &Topic) -> Vec<String> {
        self.read()
            .subscriptions
            .matching(topic)
            .map(|s| s.name().to_string())
            .collect()
    }

    /// The deliverer of subscription `name`.
    pub fn deliverer(&self, name: &str) -> Option<Deliverer> {
        self.read().deliverers.get(name).cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }
}

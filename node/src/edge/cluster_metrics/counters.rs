//! One node's counters in brief, and `troupe.counters`, the built-in service through which
//! a node asks its peers for theirs (actor messages over the cluster's links, never HTTP
//! between nodes).
//!
//! The figures are the ones `/metrics` shows, totalled: the HTTP requests this node served
//! (all, and by status class) and the sagas it started and finished, read from the node's
//! recorder; per service, the messages its members here were sent and handled (the mailboxes'
//! own atomics) and their restarts (the count of the restart-time summary). The runtime's
//! own services (`troupe.*`, this one included) are left out, so that asking for the figures
//! does not move them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use troupe_runtime::metrics::{MEMBER_RESTART_SECONDS, SAGAS_FINISHED, SAGAS_STARTED};
use troupe_runtime::service::{MemberInfo, RequestContext, Service, ServiceError, ServiceSpec};
use utoipa::ToSchema;

use super::super::{AppState, WeakAppState};
use crate::metrics::HTTP_REQUESTS;

/// The most services a peer's answer may list (far more than any cluster runs); a longer
/// answer is refused as invalid.
pub(crate) const MAX_SERVICES: usize = 1024;
/// The longest service name a peer's answer may carry.
const MAX_NAME: usize = 256;

/// Requests served, by the first digit of their status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub(crate) struct StatusClasses {
    /// 1xx.
    #[serde(rename = "1xx")]
    pub(crate) informational: u64,
    /// 2xx.
    #[serde(rename = "2xx")]
    pub(crate) success: u64,
    /// 3xx.
    #[serde(rename = "3xx")]
    pub(crate) redirection: u64,
    /// 4xx.
    #[serde(rename = "4xx")]
    pub(crate) client_error: u64,
    /// 5xx.
    #[serde(rename = "5xx")]
    pub(crate) server_error: u64,
}

impl StatusClasses {
    fn add(&mut self, status: &str, n: u64) {
        let slot = match status.as_bytes().first() {
            Some(b'1') => &mut self.informational,
            Some(b'2') => &mut self.success,
            Some(b'3') => &mut self.redirection,
            Some(b'4') => &mut self.client_error,
            Some(b'5') => &mut self.server_error,
            _ => return,
        };
        *slot = slot.saturating_add(n);
    }

    fn absorb(&mut self, o: &Self) {
        self.informational = self.informational.saturating_add(o.informational);
        self.success = self.success.saturating_add(o.success);
        self.redirection = self.redirection.saturating_add(o.redirection);
        self.client_error = self.client_error.saturating_add(o.client_error);
        self.server_error = self.server_error.saturating_add(o.server_error);
    }
}

/// One service's counters (on one node, or summed over nodes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub(crate) struct ServiceCounters {
    /// The service.
    pub(crate) name: String,
    /// Messages sent to its members (taken into their mailboxes).
    pub(crate) messages_sent: u64,
    /// Messages its members handled.
    pub(crate) messages_received: u64,
    /// Its members' restarts.
    pub(crate) restarts: u64,
}

/// A node's counters since its process started (or their sum over nodes). Every figure only
/// grows while the process lives: a rate is the difference of two samples over the time
/// between them, and a figure that went down means the node restarted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub(crate) struct NodeCounters {
    /// HTTP requests served (every route, matched or not).
    pub(crate) http_requests: u64,
    /// The same, by status class.
    pub(crate) http_by_class: StatusClasses,
    /// Messages sent to the members of every service (the sum of `services`).
    pub(crate) messages_sent: u64,
    /// Messages handled by them.
    pub(crate) messages_received: u64,
    /// Member restarts, every service.
    pub(crate) restarts: u64,
    /// Saga instances started.
    pub(crate) sagas_started: u64,
    /// Saga instances finished (completed or compensated).
    pub(crate) sagas_finished: u64,
    /// Per service, by name.
    pub(crate) services: Vec<ServiceCounters>,
}

impl NodeCounters {
    /// Adds `other` into this sum, service by service.
    pub(crate) fn absorb(&mut self, other: &Self) {
        self.http_requests = self.http_requests.saturating_add(other.http_requests);
        self.http_by_class.absorb(&other.http_by_class);
        self.messages_sent = self.messages_sent.saturating_add(other.messages_sent);
        self.messages_received = self
            .messages_received
            .saturating_add(other.messages_received);
        self.restarts = self.restarts.saturating_add(other.restarts);
        self.sagas_started = self.sagas_started.saturating_add(other.sagas_started);
        self.sagas_finished = self.sagas_finished.saturating_add(other.sagas_finished);
        let mut by_name: BTreeMap<String, ServiceCounters> = self
            .services
            .drain(..)
            .map(|s| (s.name.clone(), s))
            .collect();
        for s in &other.services {
            let sum = by_name
                .entry(s.name.clone())
                .or_insert_with(|| ServiceCounters {
                    name: s.name.clone(),
                    ..ServiceCounters::default()
                });
            sum.messages_sent = sum.messages_sent.saturating_add(s.messages_sent);
            sum.messages_received = sum.messages_received.saturating_add(s.messages_received);
            sum.restarts = sum.restarts.saturating_add(s.restarts);
        }
        self.services = by_name.into_values().collect();
    }

    /// Whether a peer's answer is within bounds: a bounded list of services with sane names,
    /// each listed once.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.services.len() > MAX_SERVICES {
            return Err(format!(
                "{} services listed, at most {MAX_SERVICES}",
                self.services.len()
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in &self.services {
            if s.name.is_empty() || s.name.len() > MAX_NAME {
                return Err(format!("a service name of {} bytes", s.name.len()));
            }
            if !seen.insert(s.name.as_str()) {
                return Err(format!("service {:?} listed twice", s.name));
            }
        }
        Ok(())
    }
}

/// This node's counters now. Renders the recorder's text (a few thousand lines under load):
/// call it off the async threads.
pub(crate) fn local(state: &AppState) -> NodeCounters {
    let mut counters = from_metrics_text(&state.metrics().render());
    let traffic = NodeCounters {
        services: state
            .runtime()
            .traffic()
            .into_iter()
            .filter(|(name, _)| !internal(name))
            .map(|(name, traffic)| ServiceCounters {
                name,
                messages_sent: traffic.sent,
                messages_received: traffic.received,
                restarts: 0,
            })
            .collect(),
        ..NodeCounters::default()
    };
    counters.absorb(&traffic);
    counters.messages_sent = counters.services.iter().map(|s| s.messages_sent).sum();
    counters.messages_received = counters.services.iter().map(|s| s.messages_received).sum();
    counters
}

/// The runtime's own services, left out of the figures.
fn internal(service: &str) -> bool {
    service.starts_with("troupe.")
}

/// The HTTP, restart and saga figures of a Prometheus text (the node's recorder's), with the
/// restarts per service; messages are not in it (the edge reads them from the runtime).
pub(crate) fn from_metrics_text(text: &str) -> NodeCounters {
    let restarts_count = format!("{MEMBER_RESTART_SECONDS}_count");
    let mut counters = NodeCounters::default();
    let mut restarts: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some(sample) = Sample::parse(line) else {
            continue;
        };
        if sample.name == HTTP_REQUESTS {
            counters.http_requests = counters.http_requests.saturating_add(sample.value);
            if let Some(status) = sample.label("status") {
                counters.http_by_class.add(status, sample.value);
            }
        } else if sample.name == restarts_count {
            if let Some(service) = sample.label("service")
                && !internal(service)
            {
                let n = restarts.entry(service.to_string()).or_default();
                *n = n.saturating_add(sample.value);
            }
        } else if sample.name == SAGAS_STARTED {
            counters.sagas_started = counters.sagas_started.saturating_add(sample.value);
        } else if sample.name == SAGAS_FINISHED {
            counters.sagas_finished = counters.sagas_finished.saturating_add(sample.value);
        }
    }
    counters.restarts = restarts.values().sum();
    counters.services = restarts
        .into_iter()
        .map(|(name, restarts)| ServiceCounters {
            name,
            restarts,
            ..ServiceCounters::default()
        })
        .collect();
    counters
}

/// One sample line of the Prometheus text format: `name{label="value",...} value`.
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: u64,
}

impl<'a> Sample<'a> {
    /// The sample of `line`, if it is one whose value is a whole number (counters are).
    fn parse(line: &'a str) -> Option<Self> {
        let end = line.find(['{', ' '])?;
        let name = &line[..end];
        let mut rest = &line[end..];
        let mut labels = Vec::new();
        if let Some(inner) = rest.strip_prefix('{') {
            rest = inner;
            loop {
                rest = rest.trim_start_matches(',');
                if let Some(after) = rest.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let (key, after) = rest.split_once("=\"")?;
                let mut value = String::new();
                let mut chars = after.char_indices();
                let close = loop {
                    match chars.next()? {
                        (i, '"') => break i,
                        (_, '\\') => match chars.next()?.1 {
                            'n' => value.push('\n'),
                            c => value.push(c),
                        },
                        (_, c) => value.push(c),
                    }
                };
                labels.push((key, value));
                rest = &after[close + 1..];
            }
        }
        let text = rest.split_whitespace().next()?;
        let value: f64 = text.parse().ok()?;
        if !value.is_finite() || value < 0.0 {
            return None;
        }
        // Counters are whole numbers kept in floats by the format: exact up to 2^53.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let value = value as u64;
        Some(Self {
            name,
            labels,
            value,
        })
    }

    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What a peer is asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum CountersRequest {
    /// Its counters now.
    Now,
}

/// `troupe.counters`: one member per node, answering with the node's counters.
pub(crate) struct Counters {
    /// The edge's state, weakly: it owns the runtime that hosts this service.
    state: WeakAppState,
}

impl Counters {
    /// The service's name.
    pub(crate) const NAME: &'static str = "troupe.counters";

    /// The service over the edge's `state`.
    pub(crate) fn new(state: &AppState) -> Self {
        Self {
            state: state.downgrade(),
        }
    }

    /// How it runs: one member on every node.
    pub(crate) fn spec() -> ServiceSpec {
        ServiceSpec {
            members_per_node: 1,
            ..ServiceSpec::default()
        }
    }
}

impl Service for Counters {
    const NAME: &'static str = Counters::NAME;
    type Request = CountersRequest;
    /// `None` while the node is shutting down (its edge is gone).
    type Response = Option<NodeCounters>;
    type State = ();

    async fn init(&self, _member: &MemberInfo) -> Result<(), ServiceError> {
        Ok(())
    }

    async fn handle(
        &self,
        _state: &mut (),
        request: CountersRequest,
        _cx: &RequestContext<'_>,
    ) -> Option<NodeCounters> {
        match request {
            CountersRequest::Now => {
                let state = self.state.upgrade()?;
                tokio::task::spawn_blocking(move || local(&state))
                    .await
                    .ok()
            }
        }
    }
}

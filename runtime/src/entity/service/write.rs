//! What a command causes, written into its batch: outbox records and durable timers, and the
//! tells and timers to release once the batch is durable.

use std::sync::Arc;

use super::Shard;
use crate::entity::effects::{self, Caused, TimerRecord};
use crate::store::{StoreError, WriteBatch};

/// The outbox records a batch writes, with their keys.
type Published = Vec<(Vec<u8>, effects::OutboxRecord)>;

impl Shard {
    /// Writes the outbox records and durable timers of `caused` into `batch`, and returns
    /// what to release once it is durable: the tells and the timers to arm.
    pub(super) fn write_effects(
        &mut self,
        batch: &mut WriteBatch,
        caused: Vec<Caused>,
        id_key: &[u8],
    ) -> Result<(Vec<crate::service::Effect>, Published), StoreError> {
        let mut released: Vec<crate::service::Effect> = Vec::new();
        let mut published = Vec::new();
        // The span of the command being handled: what it causes goes out as its children.
        let trace = crate::telemetry::current();
        for caused in caused {
            match caused {
                Caused::Publish { topic, payload } => {
                    let record = effects::OutboxRecord {
                        event: uuid::Uuid::now_v7().into_bytes(),
                        topic,
                        entity: self.entity.to_string(),
                        key: id_key.to_vec(),
                        payload,
                        at_ms: effects::now_ms(),
                        only: None,
                        trace,
                    };
                    let key = effects::outbox_key(id_key, self.next_outbox);
                    batch.put(&key, &record)?;
                    self.next_outbox += 1;
                    self.keyspace.note_sequence(self.next_outbox);
                    published.push((key, record));
                }
                Caused::Tell {
                    service,
                    to,
                    request,
                } => {
                    let Some(outbound) = self.outbound.clone() else {
                        tracing::warn!(service, "no way out of this shard: a tell is dropped");
                        continue;
                    };
                    let timeout = self.timeout;
                    released.push(Box::new(move || {
                        let posting = crate::telemetry::with(trace, || {
                            outbound.post(service, to, request, timeout)
                        });
                        tokio::spawn(async move {
                            if let Err(e) = posting.await {
                                tracing::warn!(service, error = %e, "a tell was not delivered");
                            }
                        });
                    }));
                }
                Caused::Timer {
                    due_ms,
                    mut request,
                    key,
                } => {
                    if let Some(key) = key {
                        batch.put(
                            &key,
                            &TimerRecord {
                                due_ms,
                                request: request.clone(),
                                trace,
                            },
                        )?;
                        request.timer = Some(key);
                    }
                    let Some(outbound) = self.outbound.clone() else {
                        continue;
                    };
                    let arm = self.arm;
                    let armed = Arc::clone(&self.armed);
                    if let Some(key) = &request.timer {
                        armed.scheduled(key);
                    }
                    let id_key = id_key.to_vec();
                    // Its firing joins the trace of the command that set it.
                    released.push(Box::new(move || {
                        crate::telemetry::with(trace, || {
                            arm(&outbound, &armed, id_key, due_ms, request);
                        });
                    }));
                }
            }
        }
        if !published.is_empty() {
            let relay = self.relay.as_ref().map(|r| Arc::clone(r.inbox()));
            let bus = self.outbound.as_ref().map(|o| Arc::clone(o.bus()));
            let topics: Vec<String> = published.iter().map(|(_, r)| r.topic.clone()).collect();
            let below = self.next_outbox;
            released.push(Box::new(move || {
                for topic in topics {
                    if let Some(bus) = &bus {
                        bus.note_published(&topic);
                    }
                    ::metrics::counter!(crate::metrics::EVENTS_PUBLISHED, "topic" => topic)
                        .increment(1);
                }
                // Durable now: the relay may deliver them.
                if let Some(relay) = relay {
                    relay.durable_below(below);
                }
            }));
        }
        Ok((released, published))
    }
}

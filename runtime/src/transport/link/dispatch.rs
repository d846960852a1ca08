//! The inbound side of a link: one frame at a time, replies to their waiting calls and requests
//! to their services, in order.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio::sync::watch;

use super::super::Core;
use super::super::wire::{Incoming, Now, Reader};
use super::{Link, LinkReply};
use crate::service::{CallError, RemoteDelivery, ReplySink};

/// Handles one frame: replies complete their calls; requests go to the services, consecutive
/// ones for the same service as one batch, in order. Each call first takes its share of the
/// reply budget, waiting (and so not reading) while replies are backed up. `false`: the link
/// closed meanwhile.
pub(super) async fn dispatch(
    link: &Link,
    frame: Bytes,
    core: &Arc<Core>,
    closing: &mut watch::Receiver<bool>,
) -> bool {
    core.stats.frames_received.fetch_add(1, Ordering::Relaxed);
    let now = Now::read();
    let mut reader = Reader::new(&frame);
    let mut batch: Vec<RemoteDelivery> = Vec::with_capacity((frame.len() / 32).clamp(1, 4096));
    let mut batch_service: Option<String> = None;
    while let Some(envelope) = reader.next_envelope() {
        let envelope = match envelope {
            Ok(e) => e,
            Err(e) => {
                core.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(peer = %link.peer(), error = %e, "dropping the rest of a malformed frame");
                break;
            }
        };
        core.stats
            .envelopes_received
            .fetch_add(1, Ordering::Relaxed);
        match envelope {
            Incoming::Reply {
                correlation,
                result,
            } => {
                let result = result.map(|payload| frame.slice_ref(payload));
                link.complete(correlation, result, &core.stats);
            }
            Incoming::Request {
                correlation,
                target,
                service,
                deadline,
                trace,
                payload,
            } => {
                let share = match correlation {
                    Some(_) => {
                        let cost = link.reply_cost(payload.len(), core.settings.reply_budget_bytes);
                        match link.try_reply_share(cost) {
                            Some(share) => Some(share),
                            None => {
                                // Hand on what is batched first: its replies give shares back.
                                if let Some(name) = &batch_service
                                    && !batch.is_empty()
                                {
                                    deliver(core, name, std::mem::take(&mut batch)).await;
                                }
                                match link.reply_share(cost, closing).await {
                                    Some(share) => Some(share),
                                    None => return false,
                                }
                            }
                        }
                    }
                    None => None,
                };
                let deadline = match deadline.map(|d| now.mono_of(d)) {
                    None => None,
                    Some(Some(deadline)) => Some(deadline),
                    Some(None) => {
                        // Its caller gave up before it arrived (it sat in buffers, or in this
                        // process while frozen): never handle it.
                        core.stats.expired.fetch_add(1, Ordering::Relaxed);
                        if let Some((correlation, share)) = correlation.zip(share) {
                            link.reply(correlation, Err(CallError::Expired), share);
                        }
                        continue;
                    }
                };
                if batch_service.as_deref() != Some(service) {
                    if let Some(name) = batch_service.take() {
                        deliver(core, &name, std::mem::take(&mut batch)).await;
                    }
                    batch_service = Some(service.to_string());
                }
                batch.push(RemoteDelivery {
                    target,
                    payload: frame.slice_ref(payload),
                    deadline,
                    trace,
                    reply: correlation.zip(share).map(|(correlation, share)| {
                        Box::new(LinkReply {
                            link: link.clone(),
                            correlation,
                            share,
                        }) as Box<dyn ReplySink>
                    }),
                });
            }
        }
    }
    if let Some(name) = batch_service {
        deliver(core, &name, batch).await;
    }
    true
}

async fn deliver(core: &Arc<Core>, service: &str, batch: Vec<RemoteDelivery>) {
    match core.registry.endpoint(service) {
        Some(endpoint) => endpoint.deliver_batch(batch).await,
        None => {
            core.stats.unknown_service.fetch_add(1, Ordering::Relaxed);
            for d in batch {
                if let Some(reply) = d.reply {
                    reply.send(Err(CallError::UnknownService(service.to_string())));
                }
            }
        }
    }
}

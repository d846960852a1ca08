//! [`Poster`]: the runtime's [`Post`], which delivers a member's effects by service name.
//!
//! A request for a shard goes to the node that serves the shard and to that shard's member
//! only (as [`Router::call_sharded`] does, without its retries: a post is a cast, at most once
//! delivered); one for any member goes to a local member if there is one, else to a member on
//! a routable peer. On this node the request is handed to the service's endpoint, as if it had
//! come from a peer (it is decoded there); elsewhere it travels over the link.
//!
//! [`Router::call_sharded`]: super::Router::call_sharded

use std::sync::Arc;

use bytes::Bytes;
use tokio::time::{Duration, Instant};

use crate::cluster::NodeId;
use crate::deadline::Patience;
use crate::registry::Registry;
use crate::service::{Answering, CallError, Post, Posting, RemoteDelivery, ReplySink, Target, To};
use crate::shard::agree::Placements;
use crate::telemetry;
use crate::transport::Transport;

/// Delivers encoded requests to services by name (see the module docs).
pub(crate) struct Poster {
    pub(crate) registry: Arc<Registry>,
    pub(crate) transport: Transport,
    pub(crate) placements: Arc<Placements>,
}

impl Poster {
    /// The node and member `to` names in `service`.
    fn resolve(&self, service: &str, to: &To) -> Result<(NodeId, Target), CallError> {
        let key = match to {
            To::Any => {
                let members = self.registry.members(service).members;
                // Local members come first.
                let member = members
                    .first()
                    .ok_or_else(|| CallError::NoMember(service.to_string()))?;
                return Ok((member.node.clone(), Target::Any));
            }
            To::Shard(key) => Some(key),
            To::Slot(_) => None,
        };
        let table = self
            .placements
            .table(service)
            .ok_or_else(|| CallError::UnknownService(service.to_string()))?;
        let (shard, node) = match (key, to) {
            (Some(key), _) => table.route(key)?,
            (None, To::Slot(shard)) => match table.owners().into_iter().find(|(s, _)| s == shard) {
                Some(found) => found,
                // Not agreed yet (or refused): say why, as a call by key would.
                None => {
                    return Err(table.route(&[]).err().unwrap_or_else(|| {
                        CallError::NoMember(format!("{service} shard {shard}"))
                    }));
                }
            },
            (None, _) => return Err(CallError::NoMember(service.to_string())),
        };
        if !self.registry.is_routable(&node) {
            return Err(CallError::ShardUnavailable {
                service: service.to_string(),
                shard,
                node: node.to_string(),
            });
        }
        Ok((node, Target::Slot(shard)))
    }
}

/// Hands a local member's encoded reply to a waiting call.
struct Oneshot(tokio::sync::oneshot::Sender<Result<Vec<u8>, CallError>>);

impl ReplySink for Oneshot {
    fn send(self: Box<Self>, result: Result<Vec<u8>, CallError>) {
        let _ = self.0.send(result);
    }
}

/// Hands `request` to the local members of `service` (as if it came from a peer).
async fn deliver_here(
    registry: &Registry,
    service: &str,
    delivery: RemoteDelivery,
) -> Result<(), CallError> {
    let endpoint = registry
        .endpoint(service)
        .ok_or_else(|| CallError::UnknownService(service.to_string()))?;
    endpoint.deliver_batch(vec![delivery]).await;
    Ok(())
}

/// The link to `node`, if it is up.
fn link_to(transport: &Transport, node: &NodeId) -> Result<crate::transport::Link, CallError> {
    transport
        .slot(node)
        .and_then(|slot| slot.get())
        .ok_or_else(|| CallError::Unreachable(node.to_string()))
}

impl Post for Poster {
    fn call(&self, service: &str, to: To, request: Vec<u8>, timeout: Duration) -> Answering {
        let resolved = self.resolve(service, &to);
        let registry = Arc::clone(&self.registry);
        let transport = self.transport.clone();
        let service: Arc<str> = Arc::from(service);
        let trace = telemetry::current();
        Box::pin(async move {
            let (node, target) = resolved?;
            let deadline = Instant::now() + timeout;
            if node == *registry.node() {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let delivery = RemoteDelivery {
                    target,
                    payload: Bytes::from(request),
                    deadline: Some(deadline),
                    trace,
                    reply: Some(Box::new(Oneshot(tx))),
                };
                deliver_here(&registry, &service, delivery).await?;
                return match tokio::time::timeout_at(deadline, rx).await {
                    Ok(Ok(answer)) => answer,
                    // The reply channel went without an answer: the member died with it.
                    Ok(Err(_)) => Err(CallError::MemberFailed),
                    Err(_) => Err(CallError::Timeout),
                };
            }
            link_to(&transport, &node)?
                .call(service, target, request, trace, deadline)
                .await
                .map(|bytes| bytes.to_vec())
        })
    }

    fn post(&self, service: &str, to: To, request: Vec<u8>, timeout: Duration) -> Posting {
        let resolved = self.resolve(service, &to);
        let registry = Arc::clone(&self.registry);
        let transport = self.transport.clone();
        let service: Arc<str> = Arc::from(service);
        let trace = telemetry::current();
        Box::pin(async move {
            let (node, target) = resolved?;
            if node == *registry.node() {
                let delivery = RemoteDelivery {
                    target,
                    payload: Bytes::from(request),
                    deadline: Some(Instant::now() + timeout),
                    trace,
                    reply: None,
                };
                return deliver_here(&registry, &service, delivery).await;
            }
            link_to(&transport, &node)?
                .cast(service, target, request, trace, Patience::For(timeout))
                .await
        })
    }
}

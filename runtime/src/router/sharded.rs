//! Sending to the shard that owns a key: the placement first, then that shard's member and no
//! other, waiting while it restarts and failing at once while its node is down.

use tokio::time::Instant;

use super::Router;
use crate::cluster::NodeId;
use crate::service::{CallError, CallOptions, Service};

impl<S: Service> Router<S> {
    /// The shard that owns `key`, and its node (None if the service is not sharded, or the
    /// shard is not served now: see [`Router::call_sharded`]).
    pub fn shard_of(&self, key: &[u8]) -> Option<(u32, NodeId)> {
        self.inner.shards.as_ref()?.route(key).ok()
    }

    /// [`Router::shard_of`], waiting until `deadline` for the nodes to agree on the placement
    /// (right after a node starts).
    pub async fn shard_of_by(&self, key: &[u8], deadline: Instant) -> Option<(u32, NodeId)> {
        self.inner
            .shards
            .as_ref()?
            .route_by(key, deadline)
            .await
            .ok()
    }

    /// Sends a request to the shard that owns `key`, and waits for the reply.
    ///
    /// The request reaches that shard or nothing: never another shard. While the shard's node
    /// is down this fails at once with [`CallError::ShardUnavailable`] (the caller may retry
    /// later: nothing moved, nothing is lost). While the shard itself is restarting on a live
    /// node, the call waits for it, up to its deadline. A failure after the request reached
    /// the shard ([`crate::ErrorKind::OutcomeUnknown`]) is returned as it is, and is retried
    /// only for an idempotent request.
    pub async fn call_sharded(
        &self,
        key: &[u8],
        request: S::Request,
        options: CallOptions,
    ) -> Result<S::Response, CallError>
    where
        S::Request: Clone,
    {
        let Some(shards) = &self.inner.shards else {
            // Not configured as a sharded service on this cluster.
            return Err(CallError::UnknownService(S::NAME.to_string()));
        };
        let deadline = options.deadline();
        // A shard whose data is not where it would be served answers why, never from an empty
        // keyspace elsewhere; until the nodes agree where the data is, the call waits, but only
        // while the nodes it waits to hear from are up (a node that is down cannot answer: the
        // call fails at once, as for a shard on a down node).
        let (shard, node) = loop {
            let step = deadline.min(Instant::now() + std::time::Duration::from_millis(50));
            match shards.route_by(key, step).await {
                Ok(found) => break found,
                Err(e) => {
                    let view = shards.view();
                    let down = view.waiting_for.iter().any(|peer| {
                        NodeId::try_new(peer).is_ok_and(|id| !self.inner.registry.is_routable(&id))
                    });
                    if view.agreed || down || Instant::now() >= deadline {
                        return Err(e);
                    }
                }
            }
        };
        let unavailable = || CallError::ShardUnavailable {
            service: S::NAME.to_string(),
            shard,
            node: node.to_string(),
        };
        loop {
            if !self.inner.registry.is_routable(&node) {
                return Err(unavailable());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let attempt = CallOptions {
                timeout: Some(left),
                node: Some(node.clone()),
                member: Some(shard),
                key: None,
                idempotent: options.idempotent,
            };
            let result = self.call(request.clone(), attempt).await;
            if let Err(e) = &result {
                tracing::debug!(service = S::NAME, shard, shard_node = %node, error = %e, "sharded call failed");
            }
            match result {
                // The node is up but the shard is not running (it is restarting, or died with
                // the request queued) or the link to it is being dialled: nothing was applied,
                // so wait a little and look again.
                Err(CallError::NoMember(_) | CallError::Unreachable(_) | CallError::Dropped)
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                Err(CallError::NoMember(_) | CallError::Unreachable(_) | CallError::Dropped) => {
                    return Err(unavailable());
                }
                other => return other,
            }
        }
    }
}

//! Failure injection: killing members abruptly, at a bounded rate, for tests and operators.

use tokio::time::Duration;

use super::Runtime;
use crate::cluster::NodeId;
use crate::service::{CallError, CallOptions};
use crate::system::{KillError, KilledMember, System, SystemRequest, SystemResponse};

impl Runtime {
    /// Kills a member of `service` abruptly (its supervisor restarts it): member `pid` on
    /// `node`, or a random member on `node`, or a random member anywhere. A node takes at most
    /// [`KILLS_PER_SECOND`](crate::runtime::KILLS_PER_SECOND); beyond, [`KillError::RateLimited`].
    pub async fn kill_member(
        &self,
        service: &str,
        node: Option<NodeId>,
        pid: Option<u64>,
    ) -> Result<Vec<KilledMember>, KillError> {
        let node = match node {
            Some(node) => node,
            None => {
                let members = self.core.registry.members(service).members;
                if members.is_empty() {
                    return Err(CallError::NoMember(service.to_string()).into());
                }
                members[rand::random_range(0..members.len())].node.clone()
            }
        };
        let request = SystemRequest::Kill {
            service: service.to_string(),
            pid,
        };
        let options = CallOptions::timeout(Duration::from_secs(5)).on(node.clone());
        match self.router::<System>().call(request, options).await? {
            SystemResponse::Killed(killed) => Ok(killed),
            SystemResponse::RateLimited { retry_after_ms } => Err(KillError::RateLimited {
                node: node.to_string(),
                retry_after: Duration::from_millis(retry_after_ms),
            }),
        }
    }

    /// The (node, shard) pairs of `service` whose members are registered and routable now.
    pub fn live_shards(&self, service: &str) -> Vec<(NodeId, u32)> {
        self.core
            .registry
            .members(service)
            .members
            .into_iter()
            .map(|m| (m.node, m.slot.index))
            .collect()
    }

    /// Kills shard `shard` of `service` abruptly (its supervisor restarts it from its keyspace).
    pub async fn kill_shard(
        &self,
        service: &str,
        shard: u32,
    ) -> Result<Vec<KilledMember>, KillError> {
        let map = self.shard_map(service);
        let Some(node) = map.get(shard as usize).cloned() else {
            return Err(CallError::NoMember(format!("{service} shard {shard}")).into());
        };
        let member = self
            .core
            .registry
            .members(service)
            .members
            .into_iter()
            .find(|m| m.node == node && m.slot.index == shard);
        let Some(member) = member else {
            return Err(CallError::ShardUnavailable {
                service: service.to_string(),
                shard,
                node: node.to_string(),
            }
            .into());
        };
        self.kill_member(service, Some(node), Some(member.slot.pid))
            .await
    }
}

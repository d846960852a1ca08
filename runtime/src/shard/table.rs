//! The shard table of one sharded service on this node: where each shard is served, once the
//! placement is agreed ([`super::agree`]), and why a shard is refused.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;

use super::ledger::{Decided, Move, Slot};
use crate::cluster::NodeId;
use crate::service::CallError;

/// One service's placement as this node serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlacementView {
    /// Whether this node has agreed to a placement (else it waits for `waiting_for`).
    pub agreed: bool,
    /// The nodes whose answer this node still waits for.
    pub waiting_for: Vec<String>,
    /// The node of each shard, as served (empty until agreed, or when refused).
    pub owners: Vec<String>,
    /// Shards whose configured node differs from the node that holds their data.
    pub pending_moves: Vec<Move>,
    /// Why the whole service is refused, if it is.
    pub refused: Option<String>,
}

#[derive(Debug)]
enum State {
    Waiting(Vec<String>),
    Agreed {
        slots: Vec<Result<NodeId, String>>,
        pending: Vec<Move>,
        refused: Option<String>,
    },
}

/// Where the shards of one service are served from this node's point of view.
#[derive(Debug)]
pub struct ShardTable {
    service: String,
    state: watch::Sender<Arc<State>>,
}

impl ShardTable {
    /// A table waiting to hear from `peers`.
    pub(crate) fn waiting(service: &str, peers: Vec<String>) -> Self {
        Self {
            service: service.to_string(),
            state: watch::Sender::new(Arc::new(State::Waiting(peers))),
        }
    }

    /// Still waiting, now for `peers`.
    pub(crate) fn still_waiting(&self, peers: Vec<String>) {
        self.state.send_replace(Arc::new(State::Waiting(peers)));
    }

    /// The placement is decided.
    pub(crate) fn agree(&self, decided: Decided) {
        let slots = decided
            .slots
            .into_iter()
            .map(|slot| match slot {
                Slot::On(node) => NodeId::try_new(&node).map_err(|e| e.to_string()),
                Slot::Refused(why) => Err(why),
            })
            .collect();
        self.state.send_replace(Arc::new(State::Agreed {
            slots,
            pending: decided.pending,
            refused: decided.refused,
        }));
    }

    /// The shard of `key` and its node, or why it cannot be served now.
    pub fn route(&self, key: &[u8]) -> Result<(u32, NodeId), CallError> {
        let state = Arc::clone(&self.state.borrow());
        match &*state {
            State::Waiting(peers) => Err(CallError::Placement(format!(
                "the shard placement of {} is not agreed yet: waiting to hear from {}",
                self.service,
                peers.join(", ")
            ))),
            State::Agreed {
                refused: Some(why), ..
            } => Err(CallError::Placement(why.clone())),
            State::Agreed { slots, .. } => {
                let shard = super::shard_of(key, slots.len() as u32);
                match slots.get(shard as usize) {
                    Some(Ok(node)) => Ok((shard, node.clone())),
                    Some(Err(why)) => Err(CallError::Placement(why.clone())),
                    None => Err(CallError::Placement(format!(
                        "{} has no shards",
                        self.service
                    ))),
                }
            }
        }
    }

    /// [`ShardTable::route`], waiting until `deadline` for the placement to be agreed.
    pub async fn route_by(
        &self,
        key: &[u8],
        deadline: tokio::time::Instant,
    ) -> Result<(u32, NodeId), CallError> {
        if !self.is_agreed() {
            let mut rx = self.state.subscribe();
            let agreed = rx.wait_for(|s| matches!(**s, State::Agreed { .. }));
            let _ = tokio::time::timeout_at(deadline, agreed).await;
        }
        self.route(key)
    }

    /// The node of every shard as served (empty until agreed or when refused; a refused shard
    /// has no entry, so the list is shorter).
    pub fn owners(&self) -> Vec<(u32, NodeId)> {
        match &**self.state.borrow() {
            State::Agreed {
                slots,
                refused: None,
                ..
            } => slots
                .iter()
                .enumerate()
                .filter_map(|(s, n)| n.as_ref().ok().map(|n| (s as u32, n.clone())))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The shards `me` serves, once agreed.
    pub(crate) async fn wait_hosted(&self, me: &NodeId) -> Vec<u32> {
        let mut rx = self.state.subscribe();
        let _ = rx.wait_for(|s| matches!(**s, State::Agreed { .. })).await;
        self.owners()
            .into_iter()
            .filter(|(_, n)| n == me)
            .map(|(s, _)| s)
            .collect()
    }

    /// Whether the placement is agreed.
    pub fn is_agreed(&self) -> bool {
        matches!(**self.state.borrow(), State::Agreed { .. })
    }

    /// The placement as served, for operators.
    pub fn view(&self) -> PlacementView {
        let state = Arc::clone(&self.state.borrow());
        match &*state {
            State::Waiting(peers) => PlacementView {
                agreed: false,
                waiting_for: peers.clone(),
                owners: Vec::new(),
                pending_moves: Vec::new(),
                refused: None,
            },
            State::Agreed {
                slots,
                pending,
                refused,
            } => PlacementView {
                agreed: true,
                waiting_for: Vec::new(),
                owners: slots
                    .iter()
                    .map(|n| n.as_ref().map_or_else(|_| "-".into(), |n| n.to_string()))
                    .collect(),
                pending_moves: pending.clone(),
                refused: refused.clone(),
            },
        }
    }
}

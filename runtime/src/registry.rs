//! The cluster-wide registry: which members of which service are alive on which node.
//!
//! # The model
//!
//! Each node knows its own members exactly: the supervisor of each service tells the registry
//! when a member starts and when it stops ([`Registry::add_local`], [`Registry::remove_local`]).
//! That local list is the node's *directory*; it has a version that grows with every change.
//! The directory travels in every heartbeat as the cluster's opaque gossip payload (the
//! registry is the [`crate::cluster::Gossip`] of its node, see `gossip`), so each node learns
//! its peers' members within one heartbeat of a change (a change also sends a heartbeat at
//! once), and a node that comes back is known again with its first heartbeat. When the failure
//! detector marks a peer down, its members are dropped at once; a suspect peer's members are
//! kept but not routed to. A directory that does not decode is dropped, logged and counted
//! ([`Registry::num_bad_payloads`]).
//!
//! This is our own gossip over the membership channel rather than ractor's `pg`, so that the
//! registry follows our failure detector (which notices frozen nodes), needs no stand-in actor
//! per remote member, and stays plain data that tests can drive.
//!
//! Routers read a snapshot of a service's members ([`Registry::members`]) and cache it until the
//! registry's epoch changes, so the hot path costs one atomic load.

pub mod balance;
mod gossip;

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use crate::service::mailbox::{Traffic, TrafficSnapshot};

use ractor::{ActorCell, ActorRef};
use serde::{Deserialize, Serialize};

use crate::cluster::NodeId;
use crate::service::{Endpoint, ServiceSpec};

/// A node's members, as it tells its peers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// Grows with every change on that node.
    pub version: u64,
    /// Service name -> its members there.
    pub services: BTreeMap<String, Vec<MemberSlot>>,
}

/// One member in a [`Directory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSlot {
    /// Its slot on its node, kept across restarts.
    pub index: u32,
    /// Its actor id on its node: changes at every restart.
    pub pid: u64,
}

/// A member as a router sees it.
#[derive(Clone)]
pub(crate) struct MemberRef {
    pub(crate) node: NodeId,
    pub(crate) slot: MemberSlot,
    /// The typed local handle (`LocalHandle<S>`), for members on this node.
    pub(crate) local: Option<Arc<dyn Any + Send + Sync>>,
}

/// Members of one service, and how to pick among them.
#[derive(Clone)]
pub(crate) struct ServiceMembers {
    pub(crate) epoch: u64,
    pub(crate) members: Vec<MemberRef>,
}

/// A summary for operators: members per node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceSummary {
    /// The service's name.
    pub name: String,
    /// Live members per node, in node order.
    pub members: Vec<NodeCount>,
}

/// Live members of a service on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeCount {
    /// The node.
    pub node: String,
    /// How many members are alive there.
    pub count: usize,
}

struct LocalEntry {
    slot: MemberSlot,
    cell: ActorCell,
    handle: Arc<dyn Any + Send + Sync>,
}

struct PeerDirectory {
    incarnation: u64,
    directory: Directory,
    routable: bool,
}

#[derive(Default)]
struct State {
    local: BTreeMap<String, Vec<LocalEntry>>,
    local_version: u64,
    endpoints: HashMap<String, Arc<dyn Endpoint>>,
    specs: HashMap<String, ServiceSpec>,
    peers: BTreeMap<NodeId, PeerDirectory>,
}

/// The registry of this node.
pub struct Registry {
    me: NodeId,
    /// A std lock: never held across an await, and held only to copy or swap small data.
    state: RwLock<State>,
    /// Bumped on every change anyone could route by.
    epoch: AtomicU64,
    /// Told when the local directory changes, to send it without waiting for the next beat.
    on_local_change: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Peers' directories dropped because they did not decode.
    num_bad_payloads: AtomicU64,
    /// Whether the local directory was last too large to gossip (logged once per episode).
    too_large: AtomicBool,
    /// The traffic of each local member slot by service and index, kept across restarts.
    traffic: std::sync::Mutex<BTreeMap<(String, u32), Arc<Traffic>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("node", &self.me)
            .field("epoch", &self.epoch.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// An empty registry of node `me`.
    pub fn new(me: NodeId) -> Self {
        Self {
            me,
            state: RwLock::new(State::default()),
            epoch: AtomicU64::new(1),
            on_local_change: OnceLock::new(),
            num_bad_payloads: AtomicU64::new(0),
            too_large: AtomicBool::new(false),
            traffic: std::sync::Mutex::default(),
        }
    }

    /// The traffic counters of local member slot `index` of `service` (made on first use).
    pub(crate) fn traffic(&self, service: &str, index: u32) -> Arc<Traffic> {
        let mut all = self.traffic.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(all.entry((service.to_string(), index)).or_default())
    }

    /// The traffic of each service's members on this node, summed over its slots.
    pub fn traffic_by_service(&self) -> Vec<(String, TrafficSnapshot)> {
        let slots: Vec<(String, Arc<Traffic>)> = {
            let all = self.traffic.lock().unwrap_or_else(|p| p.into_inner());
            all.iter()
                .map(|((s, _), t)| (s.clone(), Arc::clone(t)))
                .collect()
        };
        let mut by_service: BTreeMap<String, TrafficSnapshot> = BTreeMap::new();
        for (service, t) in slots {
            *by_service.entry(service).or_default() += t.snapshot();
        }
        by_service.into_iter().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::Release);
    }

    /// This node's id.
    pub fn node(&self) -> &NodeId {
        &self.me
    }

    /// The current epoch: any change to any member list changes it.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub(crate) fn set_on_local_change(&self, notify: impl Fn() + Send + Sync + 'static) {
        let _ = self.on_local_change.set(Box::new(notify));
    }

    fn local_changed(&self) {
        self.bump();
        if let Some(notify) = self.on_local_change.get() {
            notify();
        }
    }

    /// Declares how service `name` runs (from the configuration), whether or not it is hosted
    /// here, so that routers know its balancer.
    pub(crate) fn declare(&self, name: &str, spec: ServiceSpec) {
        self.write().specs.insert(name.to_string(), spec);
    }

    /// The declared spec of `name`.
    pub(crate) fn spec(&self, name: &str) -> Option<ServiceSpec> {
        self.read().specs.get(name).cloned()
    }

    pub(crate) fn set_endpoint(&self, name: &str, endpoint: Arc<dyn Endpoint>) {
        self.write().endpoints.insert(name.to_string(), endpoint);
    }

    pub(crate) fn endpoint(&self, name: &str) -> Option<Arc<dyn Endpoint>> {
        self.read().endpoints.get(name).cloned()
    }

    /// A local member started.
    pub(crate) fn add_local(
        &self,
        service: &str,
        slot: MemberSlot,
        cell: ActorCell,
        handle: Arc<dyn Any + Send + Sync>,
    ) {
        {
            let mut state = self.write();
            let members = state.local.entry(service.to_string()).or_default();
            let entry = LocalEntry { slot, cell, handle };
            match members.binary_search_by_key(&slot.index, |m| m.slot.index) {
                Ok(i) => members[i] = entry,
                Err(i) => members.insert(i, entry),
            }
            state.local_version += 1;
        }
        self.local_changed();
    }

    /// A local member stopped.
    pub(crate) fn remove_local(&self, service: &str, pid: u64) {
        let removed = {
            let mut state = self.write();
            let Some(members) = state.local.get_mut(service) else {
                return;
            };
            let before = members.len();
            members.retain(|m| m.slot.pid != pid);
            let removed = members.len() != before;
            if removed {
                state.local_version += 1;
            }
            removed
        };
        if removed {
            self.local_changed();
        }
    }

    /// The typed handles of the local members of `service`.
    pub(crate) fn local_handles(
        &self,
        service: &str,
    ) -> Vec<(MemberSlot, Arc<dyn Any + Send + Sync>)> {
        self.read()
            .local
            .get(service)
            .map(|m| m.iter().map(|e| (e.slot, Arc::clone(&e.handle))).collect())
            .unwrap_or_default()
    }

    /// The actors of the local members of `service`.
    pub(crate) fn local_cells(&self, service: &str) -> Vec<(MemberSlot, ActorCell)> {
        self.read()
            .local
            .get(service)
            .map(|m| m.iter().map(|e| (e.slot, e.cell.clone())).collect())
            .unwrap_or_default()
    }

    /// This node's directory, for heartbeats.
    pub fn local_directory(&self) -> Directory {
        let state = self.read();
        Directory {
            version: state.local_version,
            services: state
                .local
                .iter()
                .map(|(name, members)| (name.clone(), members.iter().map(|m| m.slot).collect()))
                .collect(),
        }
    }

    /// A peer's directory arrived; applied if it is newer than what we have.
    pub fn apply_peer(&self, node: &NodeId, incarnation: u64, directory: Directory) {
        {
            let mut state = self.write();
            match state.peers.get_mut(node) {
                Some(known)
                    if known.incarnation == incarnation
                        && known.directory.version >= directory.version =>
                {
                    return;
                }
                Some(known) => {
                    known.incarnation = incarnation;
                    known.directory = directory;
                }
                None => {
                    state.peers.insert(
                        node.clone(),
                        PeerDirectory {
                            incarnation,
                            directory,
                            routable: true,
                        },
                    );
                }
            }
        }
        self.bump();
    }

    /// The failure detector's verdict on a peer: `Up` peers are routed to, `Suspect` ones are
    /// kept but not routed to, `Down` ones are forgotten.
    pub fn peer_status(&self, node: &NodeId, status: crate::NodeStatus) {
        {
            let mut state = self.write();
            match status {
                crate::NodeStatus::Down => {
                    if state.peers.remove(node).is_none() {
                        return;
                    }
                }
                crate::NodeStatus::Up | crate::NodeStatus::Suspect => {
                    let routable = status == crate::NodeStatus::Up;
                    match state.peers.get_mut(node) {
                        Some(p) if p.routable != routable => p.routable = routable,
                        _ => return,
                    }
                }
            }
        }
        self.bump();
    }

    /// Whether `node` is this node or a peer routed to now (up, with a known directory).
    pub fn is_routable(&self, node: &NodeId) -> bool {
        *node == self.me || self.read().peers.get(node).is_some_and(|p| p.routable)
    }

    /// The routable members of `service`, local first, then by node and slot.
    pub(crate) fn members(&self, service: &str) -> ServiceMembers {
        let state = self.read();
        let epoch = self.epoch();
        let mut members: Vec<MemberRef> = state
            .local
            .get(service)
            .into_iter()
            .flatten()
            .map(|e| MemberRef {
                node: self.me.clone(),
                slot: e.slot,
                local: Some(Arc::clone(&e.handle)),
            })
            .collect();
        for (node, peer) in state.peers.iter().filter(|(_, p)| p.routable) {
            for slot in peer.directory.services.get(service).into_iter().flatten() {
                members.push(MemberRef {
                    node: node.clone(),
                    slot: *slot,
                    local: None,
                });
            }
        }
        ServiceMembers { epoch, members }
    }

    /// Every known service with its live members per node (routable peers only).
    pub fn summary(&self, nodes: &[NodeId]) -> Vec<ServiceSummary> {
        let state = self.read();
        let mut names: Vec<String> = state.specs.keys().cloned().collect();
        names.extend(state.local.keys().cloned());
        for peer in state.peers.values() {
            names.extend(peer.directory.services.keys().cloned());
        }
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| ServiceSummary {
                members: nodes
                    .iter()
                    .map(|node| NodeCount {
                        node: node.to_string(),
                        count: if *node == self.me {
                            state.local.get(&name).map_or(0, Vec::len)
                        } else {
                            state
                                .peers
                                .get(node)
                                .filter(|p| p.routable)
                                .and_then(|p| p.directory.services.get(&name))
                                .map_or(0, Vec::len)
                        },
                    })
                    .collect(),
                name,
            })
            .collect()
    }
}

/// A typed local member, as stored (type-erased) in the registry.
pub(crate) struct LocalHandle<S: crate::service::Service> {
    pub(crate) actor: ActorRef<crate::service::MemberMsg<S>>,
    pub(crate) mailbox: crate::service::MailboxLimit,
}

#[cfg(test)]
mod tests;

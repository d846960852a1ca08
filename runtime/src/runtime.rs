//! The runtime of one node: membership, registry, transport and the supervised services, behind
//! one handle.
//!
//! ```no_run
//! # async fn demo(settings: troupe_runtime::RuntimeSettings) -> troupe_runtime::Result<()> {
//! use troupe_runtime::{Runtime, echo::Echo};
//!
//! let runtime = Runtime::start(settings).await?;
//! runtime.host(Echo).await?; // starts its members if this node hosts echo
//! let echo = runtime.router::<Echo>(); // reaches echo members on any node
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ractor::ActorRef;
use tokio::time::Duration;

use crate::cluster::StoreSize;
use crate::cluster::{Cluster, ClusterSettings, Gossip, NodeId};
use crate::registry::{Registry, ServiceSummary};
use crate::router::Router;
use crate::service::{Service, ServiceSpec};
use crate::shard;
use crate::store::Store;
use crate::supervisor::{CoolingDown, RestartPolicy, SupervisorMsg};
use crate::system::System;
pub use crate::system::{KILLS_PER_SECOND, KillError, KilledMember};
use crate::transport::{StatsSnapshot, Transport, TransportSettings};
use crate::{Result, RuntimeError};
pub use listing::{ListPage, MAX_LISTED};

/// Everything a node's runtime needs.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// Membership.
    pub cluster: ClusterSettings,
    /// Where each node (this one included) accepts links.
    pub link_addrs: HashMap<NodeId, SocketAddr>,
    /// How each configured service runs, hosted here or not.
    pub services: HashMap<String, ServiceSpec>,
    /// The restart policy of every service's supervisor.
    pub restart: RestartPolicy,
    /// This node's store, for stateful services (none: stateless only).
    pub store: Option<StoreSettings>,
    /// Refusals of an event by a subscriber before it goes to the dead letters
    /// ([`crate::events::bus::DEFAULT_MAX_ATTEMPTS`] is the usual).
    pub event_max_attempts: u32,
}

/// Where this node keeps its data.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// The store's directory (sled's).
    pub path: std::path::PathBuf,
    /// sled's page cache, in bytes (its default, 1 GiB, is too much for a node of many).
    pub cache_bytes: u64,
}

/// How a service's root supervisor treats its members' supervisor giving up: restart it a few
/// times with a growing pause, then cool down ([`COOL_DOWN`]).
const ESCALATION_POLICY: RestartPolicy = RestartPolicy {
    max_restarts: 5,
    within: Duration::from_secs(60),
    stable_after: Duration::from_secs(30),
    backoff: crate::backoff::Backoff::constant_bounds(
        Duration::from_millis(100),
        Duration::from_secs(10),
    ),
};

/// How long a service that gave up on this node stays stopped before its root supervisor starts
/// it again: 5 s, doubling after each give-up in a row up to 30 s (a run of a minute without
/// one starts again from 5 s). Meanwhile `not_ready_reasons` names it.
const COOL_DOWN: crate::backoff::Backoff =
    crate::backoff::Backoff::constant_bounds(Duration::from_secs(5), Duration::from_secs(30));

pub(crate) struct Core {
    pub(crate) registry: Arc<Registry>,
    pub(crate) transport: Transport,
    cluster: Cluster,
    supervisors: Mutex<Vec<(String, ActorRef<SupervisorMsg>)>>,
    /// One router per service, shared, so that balancing state (the round-robin counter,
    /// requests in flight) is the node's, not a request's.
    routers: Mutex<HashMap<&'static str, Arc<dyn std::any::Any + Send + Sync>>>,
    restart: RestartPolicy,
    store: Option<Store>,
    /// Every configured node, for shard placement.
    pub(crate) nodes: Vec<NodeId>,
    /// Services that gave up on this node and wait to start again.
    cooling: Arc<CoolingDown>,
    /// One benchmark at a time.
    bench: crate::bench::Gate,
    /// The agreed placement of each sharded service ([`crate::shard`]).
    pub(crate) placements: Arc<shard::agree::Placements>,
    /// The members' way out to other services, for the effects of what they handle.
    pub(crate) outbound: crate::service::Outbound,
    /// The subscriptions this node's code declared.
    pub(crate) bus: Arc<crate::events::Bus>,
}

/// The runtime of this node. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) core: Arc<Core>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("node", self.core.registry.node())
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// Starts membership and the transport, and hosts the built-in `troupe.system` service.
    pub async fn start(settings: RuntimeSettings) -> Result<Self> {
        let me = settings.cluster.self_id().clone();
        let registry = Arc::new(Registry::new(me.clone()));
        for (name, spec) in &settings.services {
            registry.declare(name, spec.clone());
        }
        let listen = *settings
            .link_addrs
            .get(&me)
            .ok_or_else(|| RuntimeError::InvalidConfig(format!("no link address for node {me}")))?;
        let peers = settings
            .link_addrs
            .iter()
            .filter(|(id, _)| **id != me)
            .map(|(id, addr)| (id.clone(), *addr))
            .collect();
        let cookie = settings.cluster.cookie().to_string();
        let nodes: Vec<NodeId> = settings
            .cluster
            .nodes()
            .iter()
            .map(|n| n.id.clone())
            .collect();
        let store = match settings.store {
            Some(s) => {
                let opened = tokio::task::spawn_blocking(move || {
                    Store::open(&s.path, s.cache_bytes).map_err(|e| (s.path, e))
                })
                .await
                .map_err(|e| RuntimeError::Startup(format!("store: {e}")))?;
                match opened {
                    Ok(store) => Some(store),
                    Err((path, e)) => {
                        return Err(RuntimeError::Startup(format!(
                            "cannot open the store at {}: {e}",
                            path.display()
                        )));
                    }
                }
            }
            None => None,
        };
        let store_bytes: Option<StoreSize> = store
            .clone()
            .map(|s| -> StoreSize { Arc::new(move || s.size_on_disk()) });
        // The registry's directory of members travels in the cluster's heartbeats.
        let gossip: Arc<dyn Gossip> = registry.clone();
        let cluster = Cluster::start(settings.cluster, gossip, store_bytes).await?;
        let transport = match Transport::start(
            TransportSettings::new(listen, peers),
            &cookie,
            Arc::clone(&registry),
            &cluster,
        )
        .await
        {
            Ok(t) => t,
            Err(e) => {
                cluster.shutdown(Duration::from_secs(1)).await;
                return Err(e);
            }
        };
        let placements = Arc::new(shard::agree::Placements::default());
        let bus = Arc::new(crate::events::Bus::new(settings.event_max_attempts));
        let outbound = crate::service::Outbound::new(
            Arc::new(crate::router::Poster {
                registry: Arc::clone(&registry),
                transport: transport.clone(),
                placements: Arc::clone(&placements),
            }),
            Arc::clone(&bus),
        );
        let runtime = Self {
            core: Arc::new(Core {
                registry: Arc::clone(&registry),
                transport,
                cluster,
                supervisors: Mutex::new(Vec::new()),
                routers: Mutex::new(HashMap::new()),
                restart: settings.restart,
                store,
                nodes,
                cooling: Arc::default(),
                bench: crate::bench::Gate::default(),
                placements,
                outbound,
                bus,
            }),
        };
        registry.declare(
            System::NAME,
            ServiceSpec {
                members_per_node: 1,
                ..ServiceSpec::default()
            },
        );
        runtime.host(System::new(Arc::clone(&registry))).await?;
        shard::agree::start(&runtime, &settings.services).await?;
        Ok(runtime)
    }

    /// The placement of every sharded service as this node serves it: pending moves, refusals
    /// and the nodes it still waits for.
    pub fn placements(&self) -> Vec<(String, shard::PlacementView)> {
        self.core.placements.views()
    }

    /// This node's id.
    pub fn node(&self) -> &NodeId {
        self.core.registry.node()
    }

    /// Membership.
    pub fn cluster(&self) -> &Cluster {
        &self.core.cluster
    }

    /// The transport's counters.
    pub fn transport_stats(&self) -> StatsSnapshot {
        self.core.transport.stats()
    }

    /// Per service, the traffic of its members on this node: messages sent to them (taken
    /// into their mailboxes), handled, and queued now. Counted in the mailboxes' own atomics.
    pub fn traffic(&self) -> Vec<(String, crate::service::TrafficSnapshot)> {
        self.core.registry.traffic_by_service()
    }

    /// Why this node is not ready, as far as the runtime knows, one line per problem (empty:
    /// nothing against it): a damaged or full store, peers that are up but have had no link
    /// for a while, services that gave up here and are cooling down. (A shard placement not
    /// agreed yet is not one: it is agreed as soon as every node has answered, which
    /// membership already waits for, and calls wait for it meanwhile.)
    pub fn not_ready_reasons(&self) -> Vec<String> {
        let mut reasons = self.store().map(Store::problems).unwrap_or_default();
        reasons.extend(self.core.transport.not_ready_reasons());
        reasons.extend(self.core.cooling.reasons());
        reasons
    }

    pub(crate) fn bench_gate(&self) -> &crate::bench::Gate {
        &self.core.bench
    }

    /// This node's store, if it has one.
    pub fn store(&self) -> Option<&Store> {
        self.core.store.as_ref()
    }

    /// The node of every shard of `service` (empty if it is not sharded): the node that serves
    /// it, or for a shard not served now (see [`Runtime::placements`]), the configured one.
    pub fn shard_map(&self, service: &str) -> Vec<NodeId> {
        let spec = self.core.registry.spec(service).unwrap_or_default();
        let Some(n) = spec.shards else {
            return Vec::new();
        };
        let mut map = shard::placement(service, n, &hosts(&spec, &self.core.nodes));
        if let Some(table) = self.core.placements.table(service) {
            for (shard, node) in table.owners() {
                if let Some(slot) = map.get_mut(shard as usize) {
                    *slot = node;
                }
            }
        }
        map
    }

    /// The router to the members of `S` on every node (one per service per node).
    pub fn router<S: Service>(&self) -> Router<S> {
        let new = || {
            Router::<S>::new(
                Arc::clone(&self.core.registry),
                self.core.transport.clone(),
                self.core.placements.table(S::NAME),
            )
        };
        let mut routers = self.core.routers.lock().unwrap_or_else(|p| p.into_inner());
        let shared = routers.entry(S::NAME).or_insert_with(|| Arc::new(new()));
        match Arc::clone(shared).downcast::<Router<S>>() {
            Ok(router) => (*router).clone(),
            // Two service types with the same name: each gets its own router.
            Err(_) => new(),
        }
    }

    /// The address of entity `id` of type `E` (see [`crate::entity`]).
    pub fn entity<E: crate::entity::Entity>(&self, id: E::Id) -> crate::entity::EntityRef<E> {
        crate::entity::EntityRef::new(self.router::<crate::entity::EntityService<E>>(), id)
    }

    /// Every known service with its live members per node.
    pub fn services(&self) -> Vec<ServiceSummary> {
        let nodes: Vec<NodeId> = self
            .core
            .cluster
            .settings()
            .nodes()
            .iter()
            .map(|n| n.id.clone())
            .collect();
        self.core
            .registry
            .summary(&nodes)
            .into_iter()
            .filter(|s| !s.name.starts_with("troupe."))
            .collect()
    }

    /// Stops every service (members first stop taking messages; each supervisor stops its
    /// members), closes the links and leaves the cluster, within `deadline`.
    pub async fn shutdown(&self, deadline: Duration) {
        let started = tokio::time::Instant::now();
        self.core.placements.stop();
        let supervisors: Vec<_> = self
            .core
            .supervisors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for (name, supervisor) in supervisors.into_iter().rev() {
            let left = deadline.saturating_sub(started.elapsed());
            if supervisor
                .stop_and_wait(Some("shutdown".into()), Some(left))
                .await
                .is_err()
            {
                tracing::warn!(service = %name, "service did not stop within the deadline");
            }
        }
        self.core.transport.shutdown();
        if let Some(store) = &self.core.store {
            let left = deadline.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, store.checkpoint()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "the store did not flush at shutdown"),
                Err(_) => tracing::warn!("the store did not flush within the shutdown deadline"),
            }
        }
        let left = deadline.saturating_sub(started.elapsed());
        self.core
            .cluster
            .shutdown(left.max(Duration::from_millis(100)))
            .await;
    }
}

/// The nodes that host a service.
pub(crate) fn hosts(spec: &ServiceSpec, nodes: &[NodeId]) -> Vec<NodeId> {
    spec.nodes.clone().unwrap_or_else(|| nodes.to_vec())
}

mod chaos;
mod events;
mod hosting;
mod listing;

#[cfg(test)]
mod tests;

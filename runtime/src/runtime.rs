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

use ractor::{Actor, ActorCell, ActorRef};
use serde::{Deserialize, Serialize};
use tokio::time::Duration;

use crate::cluster::StoreSize;
use crate::cluster::{Cluster, ClusterSettings, NodeId};
use crate::registry::{LocalHandle, MemberSlot, Registry, ServiceSummary};
use crate::router::Router;
use crate::service::endpoint::TypedEndpoint;
use crate::service::mailbox::Mailbox;
use crate::service::{CallError, CallOptions, Member, MemberInfo, Service, ServiceSpec};
use crate::shard;
use crate::store::Store;
use crate::supervisor::{
    ChildSpec, CoolingDown, CoolingObserver, OnGiveUp, RestartPolicy, Strategy, Supervisor,
    SupervisorArgs, SupervisorEvent, SupervisorMsg, SupervisorObserver,
};
pub use crate::system::{KILLS_PER_SECOND, KillError};
use crate::system::{System, SystemRequest, SystemResponse};
use crate::transport::{StatsSnapshot, Transport, TransportSettings};
use crate::{Result, RuntimeError};

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

/// A member killed on purpose (failure injection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KilledMember {
    /// The service.
    pub service: String,
    /// The node it ran on.
    pub node: String,
    /// Its slot.
    pub index: u32,
    /// Its actor id (the restarted member gets a new one).
    pub pid: u64,
}

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
    pub(crate) placements: shard::agree::Placements,
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
        let cluster = Cluster::start(settings.cluster, Arc::clone(&registry), store_bytes).await?;
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
                placements: shard::agree::Placements::default(),
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

    /// Starts the members of `S` on this node if its spec says this node hosts it, under a
    /// supervisor of their own. Returns whether it is hosted here.
    pub async fn host<S: Service>(&self, service: S) -> Result<bool> {
        let registry = &self.core.registry;
        let spec = registry.spec(S::NAME).unwrap_or_default();
        if !spec.hosted_on(registry.node()) {
            return Ok(false);
        }
        let service = Arc::new(service);
        registry.set_endpoint(
            S::NAME,
            Arc::new(TypedEndpoint::<S>::new(Arc::clone(registry))),
        );
        let slots: Vec<u32> = match spec.shards {
            Some(_) => {
                if self.core.store.is_none() {
                    return Err(RuntimeError::InvalidConfig(format!(
                        "service {} is sharded but this node has no store",
                        S::NAME
                    )));
                }
                let Some(table) = self.core.placements.table(S::NAME) else {
                    return Err(RuntimeError::InvalidConfig(format!(
                        "service {} is sharded but was not configured at start",
                        S::NAME
                    )));
                };
                if !table.is_agreed() {
                    // Its shards start once every node has said where the data is.
                    let runtime = self.clone();
                    let task = tokio::spawn(async move {
                        let slots = table.wait_hosted(runtime.node()).await;
                        if let Err(e) = runtime.start_members(service, slots).await {
                            tracing::error!(service = S::NAME, error = %e, "cannot start the service's shards");
                        }
                    });
                    self.core.placements.track(task);
                    return Ok(true);
                }
                table.wait_hosted(registry.node()).await
            }
            None => (0..spec.members_per_node).collect(),
        };
        self.start_members(service, slots).await?;
        Ok(true)
    }

    /// Starts the members of `S` in `slots` under a supervisor of their own.
    async fn start_members<S: Service>(&self, service: Arc<S>, slots: Vec<u32>) -> Result<()> {
        let registry = &self.core.registry;
        let spec = registry.spec(S::NAME).unwrap_or_default();
        let sharded = spec.shards.is_some();
        let children: Vec<ChildSpec> = slots
            .iter()
            .map(|index| {
                member_spec(
                    Arc::clone(&service),
                    Arc::clone(registry),
                    MemberSlotSpec {
                        index: *index,
                        sharded,
                        store: self.core.store.clone(),
                        mailbox_capacity: spec.mailbox_capacity,
                    },
                )
            })
            .collect();
        let observer: Arc<dyn SupervisorObserver> = Arc::new(Observer {
            registry: Arc::clone(registry),
            service: S::NAME,
            restarts: ::metrics::histogram!(
                crate::metrics::MEMBER_RESTART_SECONDS,
                "service" => S::NAME
            ),
        });
        // The members' supervisor has a parent of its own: when the members restart too often
        // and it gives up (escalates), the parent starts it again, with its own backoff and
        // limit; if that fails too, the parent cools down and starts it again later.
        let policy = self.core.restart;
        let members_supervisor =
            ChildSpec::new(format!("{}.members", S::NAME), move |parent: ActorCell| {
                let args = SupervisorArgs {
                    name: S::NAME.to_string(),
                    strategy: Strategy::OneForOne,
                    policy,
                    children: children.clone(),
                    observer: Some(Arc::clone(&observer)),
                    on_give_up: OnGiveUp::Escalate,
                };
                Box::pin(async move {
                    let (supervisor, _) =
                        Actor::spawn_linked(None, Supervisor, args, parent).await?;
                    Ok(supervisor.get_cell())
                })
            });
        let (supervisor, _) = Actor::spawn(
            None,
            Supervisor,
            SupervisorArgs {
                name: format!("{}.root", S::NAME),
                strategy: Strategy::OneForOne,
                policy: ESCALATION_POLICY,
                children: vec![members_supervisor],
                observer: Some(Arc::new(CoolingObserver::new(
                    S::NAME,
                    Arc::clone(&self.core.cooling),
                ))),
                on_give_up: OnGiveUp::CoolDown(COOL_DOWN),
            },
        )
        .await
        .map_err(|e| RuntimeError::Startup(format!("service {}: {e}", S::NAME)))?;
        self.core
            .supervisors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((S::NAME.to_string(), supervisor));
        tracing::info!(
            service = S::NAME,
            members = slots.len(),
            sharded,
            "service started"
        );
        Ok(())
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

    /// Kills a member of `service` abruptly (its supervisor restarts it): member `pid` on
    /// `node`, or a random member on `node`, or a random member anywhere. A node takes at most
    /// [`KILLS_PER_SECOND`]; beyond, [`KillError::RateLimited`].
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

/// What one member slot of a service needs to start.
struct MemberSlotSpec {
    index: u32,
    sharded: bool,
    store: Option<Store>,
    mailbox_capacity: usize,
}

fn member_spec<S: Service>(
    service: Arc<S>,
    registry: Arc<Registry>,
    slot_spec: MemberSlotSpec,
) -> ChildSpec {
    let MemberSlotSpec {
        index,
        sharded,
        store,
        mailbox_capacity,
    } = slot_spec;
    ChildSpec::new(
        format!("{}/{index}", S::NAME),
        move |supervisor: ActorCell| {
            let service = Arc::clone(&service);
            let registry = Arc::clone(&registry);
            let store = store.clone();
            Box::pin(async move {
                let info = MemberInfo {
                    service: S::NAME,
                    node: registry.node().clone(),
                    index,
                    sharded,
                    store,
                };
                let mailbox = Arc::new(Mailbox::new(mailbox_capacity));
                let member = Member {
                    service,
                    info,
                    mailbox: Arc::clone(&mailbox),
                };
                let (actor, _) = Actor::spawn_linked(None, member, (), supervisor).await?;
                let handle = LocalHandle::<S> {
                    actor: actor.clone(),
                    mailbox,
                };
                let slot = MemberSlot {
                    index,
                    pid: actor.get_id().pid(),
                };
                registry.add_local(S::NAME, slot, actor.get_cell(), Arc::new(handle));
                Ok(actor.get_cell())
            })
        },
    )
}

/// Keeps the registry in step with a service's supervisor.
struct Observer {
    registry: Arc<Registry>,
    service: &'static str,
    /// The restart times of this service's members (registered once, recorded per restart).
    restarts: ::metrics::Histogram,
}

impl SupervisorObserver for Observer {
    fn child_started(&self, _index: usize, _name: &str, _cell: &ActorCell) {
        // The child spec registers the member itself, with its typed handle.
    }

    fn child_stopped(&self, _index: usize, _name: &str, cell: &ActorCell) {
        self.registry
            .remove_local(self.service, cell.get_id().pid());
    }

    fn event(&self, event: &SupervisorEvent) {
        if let SupervisorEvent::Restarted { took, .. } = event {
            self.restarts.record(took.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests;

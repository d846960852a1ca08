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

use crate::cluster::{Cluster, ClusterSettings, NodeId};
use crate::registry::{LocalHandle, MemberSlot, Registry, ServiceSummary};
use crate::router::Router;
use crate::service::endpoint::TypedEndpoint;
use crate::service::mailbox::Mailbox;
use crate::service::{CallError, CallOptions, Member, MemberInfo, Service, ServiceSpec};
use crate::supervisor::{
    ChildSpec, RestartPolicy, Strategy, Supervisor, SupervisorArgs, SupervisorEvent, SupervisorMsg,
    SupervisorObserver,
};
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
}

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

/// Restart times, for metrics.
#[derive(Debug, Default)]
pub struct RestartLog {
    entries: Mutex<Vec<(String, Duration)>>,
}

impl RestartLog {
    fn record(&self, service: &str, took: Duration) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= 100_000 {
            entries.drain(..50_000);
        }
        entries.push((service.to_string(), took));
    }

    /// Every recorded restart of `service`: how long each took.
    pub fn of(&self, service: &str) -> Vec<Duration> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(s, _)| s == service)
            .map(|(_, d)| *d)
            .collect()
    }
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
    restarts: Arc<RestartLog>,
}

/// The runtime of this node. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    core: Arc<Core>,
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
        let cluster = Cluster::start(settings.cluster, Arc::clone(&registry)).await?;
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
                restarts: Arc::new(RestartLog::default()),
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
        Ok(runtime)
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

    /// Restart times of supervised members.
    pub fn restarts(&self) -> &RestartLog {
        &self.core.restarts
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
        let children = (0..spec.members_per_node)
            .map(|index| {
                member_spec(
                    Arc::clone(&service),
                    Arc::clone(registry),
                    index,
                    spec.mailbox_capacity,
                )
            })
            .collect();
        let observer = Arc::new(Observer {
            registry: Arc::clone(registry),
            service: S::NAME,
            restarts: Arc::clone(&self.core.restarts),
        });
        let (supervisor, _) = Actor::spawn(
            None,
            Supervisor,
            SupervisorArgs {
                name: S::NAME.to_string(),
                strategy: Strategy::OneForOne,
                policy: self.core.restart,
                children,
                observer: Some(observer),
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
            members = spec.members_per_node,
            "service started"
        );
        Ok(true)
    }

    /// The router to the members of `S` on every node (one per service per node).
    pub fn router<S: Service>(&self) -> Router<S> {
        let mut routers = self.core.routers.lock().unwrap_or_else(|p| p.into_inner());
        let shared = routers.entry(S::NAME).or_insert_with(|| {
            Arc::new(Router::<S>::new(
                Arc::clone(&self.core.registry),
                self.core.transport.clone(),
            ))
        });
        match Arc::clone(shared).downcast::<Router<S>>() {
            Ok(router) => (*router).clone(),
            // Two service types with the same name: each gets its own router.
            Err(_) => Router::new(Arc::clone(&self.core.registry), self.core.transport.clone()),
        }
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
            .filter(|s| s.name != System::NAME)
            .collect()
    }

    /// Kills a member of `service` abruptly (its supervisor restarts it): member `pid` on
    /// `node`, or a random member on `node`, or a random member anywhere.
    pub async fn kill_member(
        &self,
        service: &str,
        node: Option<NodeId>,
        pid: Option<u64>,
    ) -> Result<Vec<KilledMember>, CallError> {
        let node = match node {
            Some(node) => node,
            None => {
                let members = self.core.registry.members(service).members;
                if members.is_empty() {
                    return Err(CallError::NoMember(service.to_string()));
                }
                members[rand::random_range(0..members.len())].node.clone()
            }
        };
        let request = SystemRequest::Kill {
            service: service.to_string(),
            pid,
        };
        let options = CallOptions::timeout(Duration::from_secs(5)).on(node);
        match self.router::<System>().call(request, options).await? {
            SystemResponse::Killed(killed) => Ok(killed),
        }
    }

    /// Stops every service (members first stop taking messages; each supervisor stops its
    /// members), closes the links and leaves the cluster, within `deadline`.
    pub async fn shutdown(&self, deadline: Duration) {
        let started = tokio::time::Instant::now();
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
        let left = deadline.saturating_sub(started.elapsed());
        self.core
            .cluster
            .shutdown(left.max(Duration::from_millis(100)))
            .await;
    }
}

fn member_spec<S: Service>(
    service: Arc<S>,
    registry: Arc<Registry>,
    index: u32,
    mailbox_capacity: usize,
) -> ChildSpec {
    ChildSpec::new(
        format!("{}/{index}", S::NAME),
        move |supervisor: ActorCell| {
            let service = Arc::clone(&service);
            let registry = Arc::clone(&registry);
            Box::pin(async move {
                let info = MemberInfo {
                    service: S::NAME,
                    node: registry.node().clone(),
                    index,
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
    restarts: Arc<RestartLog>,
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
            self.restarts.record(self.service, *took);
        }
    }
}

#[cfg(test)]
mod tests;

//! Hosting a service on this node: its members, each under a supervisor of ours, registered
//! while they live; sharded services once their placement is agreed.

use std::sync::Arc;

use ractor::{Actor, ActorCell};

use super::{COOL_DOWN, ESCALATION_POLICY, Runtime};
use crate::registry::{LocalHandle, MemberSlot, Registry};
use crate::service::endpoint::TypedEndpoint;
use crate::service::{Member, MemberInfo, Outbound, Service};
use crate::store::Store;
use crate::supervisor::{
    ChildSpec, CoolingObserver, OnGiveUp, Strategy, Supervisor, SupervisorArgs, SupervisorEvent,
    SupervisorObserver,
};
use crate::{Result, RuntimeError};

impl Runtime {
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
                        outbound: self.core.outbound.clone(),
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
}

/// What one member slot of a service needs to start.
struct MemberSlotSpec {
    index: u32,
    sharded: bool,
    store: Option<Store>,
    outbound: Outbound,
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
        outbound,
        mailbox_capacity,
    } = slot_spec;
    // The slot's traffic outlives its members (kept in the registry, read at scrape time).
    let traffic = registry.traffic(S::NAME, index);
    ChildSpec::new(
        format!("{}/{index}", S::NAME),
        move |supervisor: ActorCell| {
            let service = Arc::clone(&service);
            let registry = Arc::clone(&registry);
            let store = store.clone();
            let outbound = outbound.clone();
            let traffic = Arc::clone(&traffic);
            Box::pin(async move {
                let info = MemberInfo {
                    service: S::NAME,
                    node: registry.node().clone(),
                    index,
                    sharded,
                    store,
                    outbound: Some(outbound),
                };
                let mailbox = traffic.mailbox(mailbox_capacity);
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

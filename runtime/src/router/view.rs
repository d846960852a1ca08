//! The router's cached view of a service's members, rebuilt only when the registry's epoch
//! moves, and the pick among them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Router;
use crate::cluster::NodeId;
use crate::registry::balance::{Balance, Balancer, Candidate, PickInput};
use crate::registry::{LocalHandle, MemberSlot};
use crate::service::{CallOptions, Service};
use crate::transport::LinkSlot;

/// One member a router can send to.
pub(super) struct Target<S: Service> {
    pub(super) node: NodeId,
    pub(super) slot: MemberSlot,
    pub(super) outstanding: Arc<AtomicUsize>,
    pub(super) local: Option<Arc<LocalHandle<S>>>,
    /// The link slot of a remote member's node.
    pub(super) link: Option<Arc<LinkSlot>>,
}

/// A set of targets a pick may choose from, with their balancer candidates.
#[derive(Default)]
pub(super) struct Pool {
    pub(super) indices: Vec<usize>,
    pub(super) candidates: Vec<Candidate>,
}

impl Pool {
    pub(super) fn push(&mut self, index: usize, candidate: Candidate) {
        self.indices.push(index);
        self.candidates.push(candidate);
    }
}

pub(super) struct View<S: Service> {
    pub(super) epoch: u64,
    pub(super) targets: Vec<Target<S>>,
    /// Every target.
    pub(super) all: Pool,
    /// The local targets.
    pub(super) local: Pool,
    /// The targets of each node.
    pub(super) by_node: Vec<(NodeId, Pool)>,
}

impl<S: Service> View<S> {
    pub(super) fn empty() -> Self {
        Self {
            epoch: 0,
            targets: Vec::new(),
            all: Pool::default(),
            local: Pool::default(),
            by_node: Vec::new(),
        }
    }
}

impl<S: Service> Router<S> {
    pub(super) fn view(&self) -> Arc<View<S>> {
        let epoch = self.inner.registry.epoch();
        let view = self.inner.view.load_full();
        if view.epoch == epoch {
            return view;
        }
        let fresh = Arc::new(self.build_view());
        self.inner.view.store(Arc::clone(&fresh));
        fresh
    }

    fn build_view(&self) -> View<S> {
        let members = self.inner.registry.members(S::NAME);
        let mut outstanding = self
            .inner
            .outstanding
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut view = View::empty();
        view.epoch = members.epoch;
        for m in members.members {
            let identity = Candidate::identity_of(m.node.as_str(), m.slot.index);
            let candidate = Candidate {
                identity,
                outstanding: 0,
            };
            let index = view.targets.len();
            let handle = m.local.and_then(|h| h.downcast::<LocalHandle<S>>().ok());
            if handle.is_some() {
                view.local.push(index, candidate);
            }
            view.all.push(index, candidate);
            match view.by_node.iter_mut().find(|(node, _)| *node == m.node) {
                Some((_, pool)) => pool.push(index, candidate),
                None => {
                    let mut pool = Pool::default();
                    pool.push(index, candidate);
                    view.by_node.push((m.node.clone(), pool));
                }
            }
            view.targets.push(Target {
                link: if handle.is_none() {
                    self.inner.transport.slot(&m.node)
                } else {
                    None
                },
                node: m.node,
                slot: m.slot,
                outstanding: Arc::clone(outstanding.entry(identity).or_default()),
                local: handle,
            });
        }
        view
    }

    /// Picks a target index, honouring the node and slot filters, local preference and
    /// exclusions (targets that already failed this request).
    pub(super) fn pick(
        &self,
        view: &View<S>,
        options: &CallOptions,
        excluded: &[usize],
    ) -> Option<usize> {
        let empty = Pool::default();
        let pool = match &options.node {
            Some(node) => view
                .by_node
                .iter()
                .find(|(n, _)| n == node)
                .map_or(&empty, |(_, p)| p),
            None if self.inner.prefer_local && !view.local.indices.is_empty() => &view.local,
            None => &view.all,
        };
        let input = PickInput {
            counter: self.inner.counter.fetch_add(1, Ordering::Relaxed),
            random: if self.inner.balance == Balance::LeastOutstanding {
                [rand::random(), rand::random()]
            } else {
                [0, 0]
            },
            key: options.key,
        };
        let plain = excluded.is_empty()
            && options.member.is_none()
            && self.inner.balance != Balance::LeastOutstanding;
        if plain {
            // The common case: no filtering, no allocation.
            return self
                .inner
                .balance
                .pick(&pool.candidates, &input)
                .map(|chosen| pool.indices[chosen]);
        }
        let mut indices: Vec<usize> = pool
            .indices
            .iter()
            .copied()
            .filter(|i| !excluded.contains(i))
            .filter(|i| {
                options
                    .member
                    .is_none_or(|m| view.targets[*i].slot.index == m)
            })
            .collect();
        if indices.is_empty() && options.node.is_none() && !excluded.is_empty() {
            // Local preference exhausted by failures: fall back to any member.
            indices = view
                .all
                .indices
                .iter()
                .copied()
                .filter(|i| !excluded.contains(i))
                .collect();
        }
        let candidates: Vec<Candidate> = indices
            .iter()
            .map(|i| Candidate {
                identity: view.all.candidates[*i].identity,
                outstanding: view.targets[*i].outstanding.load(Ordering::Relaxed),
            })
            .collect();
        self.inner
            .balance
            .pick(&candidates, &input)
            .map(|chosen| indices[chosen])
    }
}

//! Sending to a service: pick a member with the service's balancer, deliver locally by an actor
//! message or remotely over a link, and retry idempotent calls on another member.
//!
//! A [`Router`] caches the service's members and rebuilds them only when the registry's epoch
//! changes, so a send costs one atomic load, one pick and one delivery.
//!
//! ```no_run
//! # async fn demo(runtime: &troupe_runtime::Runtime) -> Result<(), troupe_runtime::CallError> {
//! use troupe_runtime::echo::{Echo, EchoRequest};
//! use troupe_runtime::CallOptions;
//!
//! let echo = runtime.router::<Echo>();
//! let reply = echo.call(EchoRequest::new(b"hi".to_vec()), CallOptions::default()).await?;
//! assert_eq!(reply.map(|r| r.payload).ok(), Some(b"hi".to_vec())); // Err: its deadline passed
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use tokio::sync::oneshot;
use tokio::time::{Instant, timeout_at};

use crate::cluster::NodeId;
use crate::registry::balance::{Balance, Balancer, Candidate, PickInput};
use crate::registry::{LocalHandle, MemberSlot, Registry};
use crate::service::{
    CallError, CallOptions, Envelope, MemberMsg, ReplyTo, Service, Target as WireTarget, decode,
    encode,
};
use crate::shard::ShardTable;
use crate::telemetry::{self, TraceContext};
use crate::transport::{LinkSlot, Transport};

/// One member a router can send to.
struct Target<S: Service> {
    node: NodeId,
    slot: MemberSlot,
    outstanding: Arc<AtomicUsize>,
    local: Option<Arc<LocalHandle<S>>>,
    /// The link slot of a remote member's node.
    link: Option<Arc<LinkSlot>>,
}

/// A set of targets a pick may choose from, with their balancer candidates.
#[derive(Default)]
struct Pool {
    indices: Vec<usize>,
    candidates: Vec<Candidate>,
}

impl Pool {
    fn push(&mut self, index: usize, candidate: Candidate) {
        self.indices.push(index);
        self.candidates.push(candidate);
    }
}

struct View<S: Service> {
    epoch: u64,
    targets: Vec<Target<S>>,
    /// Every target.
    all: Pool,
    /// The local targets.
    local: Pool,
    /// The targets of each node.
    by_node: Vec<(NodeId, Pool)>,
}

impl<S: Service> View<S> {
    fn empty() -> Self {
        Self {
            epoch: 0,
            targets: Vec::new(),
            all: Pool::default(),
            local: Pool::default(),
            by_node: Vec::new(),
        }
    }
}

/// How long a sender may wait for room: computing a deadline reads the clock, so a cast that
/// finds room at once never does.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Patience {
    /// Until this instant.
    Until(Instant),
    /// For this long from when waiting starts.
    For(std::time::Duration),
}

impl Patience {
    pub(crate) fn deadline(self) -> Instant {
        match self {
            Self::Until(deadline) => deadline,
            Self::For(timeout) => Instant::now() + timeout,
        }
    }

    /// The deadline, computed on first use and the same afterwards.
    fn deadline_later(self) -> LazyDeadline {
        LazyDeadline {
            patience: self,
            at: std::cell::Cell::new(None),
        }
    }
}

struct LazyDeadline {
    patience: Patience,
    at: std::cell::Cell<Option<Instant>>,
}

impl LazyDeadline {
    fn get(&self) -> Instant {
        match self.at.get() {
            Some(at) => at,
            None => {
                let at = self.patience.deadline();
                self.at.set(Some(at));
                at
            }
        }
    }
}

struct Inner<S: Service> {
    registry: Arc<Registry>,
    transport: Transport,
    name: Arc<str>,
    /// Where each shard is served, for a sharded service ([`crate::shard`]).
    shards: Option<Arc<ShardTable>>,
    balance: Balance,
    prefer_local: bool,
    /// The cached view: read on every send without a lock (an atomic load), replaced when the
    /// registry's epoch moves.
    view: ArcSwap<View<S>>,
    counter: AtomicU64,
    /// In-flight counts per member identity, kept across view rebuilds.
    outstanding: Mutex<HashMap<u64, Arc<AtomicUsize>>>,
    _service: PhantomData<fn() -> S>,
}

/// Sends requests to the members of service `S`. Cheap to clone; share one per service.
pub struct Router<S: Service> {
    inner: Arc<Inner<S>>,
}

impl<S: Service> Clone for Router<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: Service> std::fmt::Debug for Router<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("service", &self.inner.name)
            .finish_non_exhaustive()
    }
}

/// Where a request went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The member's node.
    pub node: NodeId,
    /// The member's slot.
    pub index: u32,
}

impl<S: Service> Router<S> {
    pub(crate) fn new(
        registry: Arc<Registry>,
        transport: Transport,
        shards: Option<Arc<ShardTable>>,
    ) -> Self {
        let spec = registry.spec(S::NAME).unwrap_or_default();
        let inner = Inner {
            registry,
            transport,
            name: Arc::from(S::NAME),
            shards,
            balance: spec.balance,
            prefer_local: spec.prefer_local,
            view: ArcSwap::from_pointee(View::empty()),
            counter: AtomicU64::new(rand::random::<u64>() >> 1),
            outstanding: Mutex::new(HashMap::new()),
            _service: PhantomData,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    fn view(&self) -> Arc<View<S>> {
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
    fn pick(&self, view: &View<S>, options: &CallOptions, excluded: &[usize]) -> Option<usize> {
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

    fn no_member(&self) -> CallError {
        CallError::NoMember(S::NAME.to_string())
    }

    /// Sends a one-way request to one member. Returns once the request is queued (at most once
    /// delivered: a member that dies with it queued loses it). Waits for room until `timeout`
    /// (default 5 s), then fails with [`CallError::Overloaded`].
    pub async fn cast(&self, request: S::Request) -> Result<(), CallError> {
        self.cast_with(request, CallOptions::default()).await
    }

    /// [`Router::cast`] with options (key, node, timeout).
    pub async fn cast_with(
        &self,
        request: S::Request,
        options: CallOptions,
    ) -> Result<(), CallError> {
        let trace = telemetry::current();
        let mut request = Some(request);
        // The common case, a local member with room, is served from a borrowed view: no clone
        // of it, no clock, no await.
        let (view, mut next_pick) = {
            let epoch = self.inner.registry.epoch();
            let guard = self.inner.view.load();
            if guard.epoch == epoch {
                let pick = self.pick(&guard, &options, &[]);
                if let Some(handle) = pick.and_then(|i| guard.targets[i].local.as_ref())
                    && let Some(req) = request.take()
                {
                    match try_send_local(handle, MemberMsg::Cast(req, trace.map(Box::new))) {
                        Ok(()) => return Ok(()),
                        Err((_, Some(back))) => request = request_of(Some(back)),
                        Err((e, None)) => return Err(e),
                    }
                }
                (arc_swap::Guard::into_inner(guard), pick)
            } else {
                drop(guard);
                (self.view(), None)
            }
        };
        let patience = Patience::For(options.timeout_or_default());
        let mut excluded = Vec::new();
        let mut encoded: Option<Vec<u8>> = None;
        loop {
            let Some(i) = next_pick
                .take()
                .or_else(|| self.pick(&view, &options, &excluded))
            else {
                return Err(self.no_member());
            };
            let target = &view.targets[i];
            let result = match &target.local {
                Some(handle) => {
                    let Some(req) = request.take() else {
                        return Err(self.no_member());
                    };
                    match send_local(handle, MemberMsg::Cast(req, trace.map(Box::new)), patience)
                        .await
                    {
                        Ok(()) => return Ok(()),
                        Err((e, back)) => {
                            request = request_of(back);
                            Err(e)
                        }
                    }
                }
                None => {
                    let payload = match &encoded {
                        Some(p) => p.clone(),
                        None => {
                            let Some(req) = &request else {
                                return Err(self.no_member());
                            };
                            let p = encode(req)?;
                            encoded = Some(p.clone());
                            p
                        }
                    };
                    match target.link.as_ref().and_then(|slot| slot.get()) {
                        Some(link) => {
                            link.cast(
                                Arc::clone(&self.inner.name),
                                self.wire_target(target, &options),
                                payload,
                                trace,
                                patience,
                            )
                            .await
                        }
                        None => Err(CallError::Unreachable(target.node.to_string())),
                    }
                }
            };
            match result {
                Ok(()) => return Ok(()),
                // Nothing was queued: another member may take it.
                Err(e @ (CallError::Unreachable(_) | CallError::NoMember(_)))
                    if request.is_some() && excluded.len() < view.targets.len() =>
                {
                    tracing::debug!(service = S::NAME, error = %e, "cast target unavailable; trying another member");
                    excluded.push(i);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends a request and waits for the reply.
    pub async fn call(
        &self,
        request: S::Request,
        options: CallOptions,
    ) -> Result<S::Response, CallError>
    where
        S::Request: Clone,
    {
        self.call_traced(request, options).await.map(|(r, _)| r)
    }

    /// [`Router::call`], also saying which member answered.
    pub async fn call_traced(
        &self,
        request: S::Request,
        options: CallOptions,
    ) -> Result<(S::Response, Delivered), CallError>
    where
        S::Request: Clone,
    {
        let deadline = options.deadline();
        let trace = telemetry::current();
        let mut excluded = Vec::new();
        let mut encoded: Option<Vec<u8>> = None;
        loop {
            let view = self.view();
            let Some(i) = self.pick(&view, &options, &excluded) else {
                return Err(self.no_member());
            };
            let target = &view.targets[i];
            let result = {
                // Counted while in flight, and given back even when the caller drops this
                // future (an HTTP client gone): a guard, not a second statement.
                let _in_flight = InFlight::new(&target.outstanding);
                let wire_target = self.wire_target(target, &options);
                self.call_once(
                    target,
                    wire_target,
                    request.clone(),
                    &mut encoded,
                    trace,
                    deadline,
                )
                .await
            };
            match result {
                Ok(response) => {
                    return Ok((
                        response,
                        Delivered {
                            node: target.node.clone(),
                            index: target.slot.index,
                        },
                    ));
                }
                // Another member may take a request that was not applied; one that may have
                // been applied is sent again only if it is idempotent.
                Err(e)
                    if (e.not_applied() || (options.idempotent && e.is_retryable()))
                        && Instant::now() < deadline =>
                {
                    tracing::debug!(service = S::NAME, node = %target.node, error = %e, "call failed; retrying on another member");
                    excluded.push(i);
                    if excluded.len() >= view.targets.len() {
                        // Every member failed once: start over (they may be back) after a pause.
                        excluded.clear();
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// How a remote member is named on the wire: a sharded service's member, or one the caller
    /// named, by its slot (only it may take the request); a member a balancer picked by its
    /// actor id (another may stand in if it is gone).
    fn wire_target(&self, target: &Target<S>, options: &CallOptions) -> WireTarget {
        if self.inner.shards.is_some() || options.member.is_some() {
            WireTarget::Slot(target.slot.index)
        } else {
            WireTarget::Pick(target.slot.pid)
        }
    }

    /// One attempt. The error says whether the request may have been applied
    /// ([`CallError::not_applied`]).
    async fn call_once(
        &self,
        target: &Target<S>,
        wire_target: WireTarget,
        request: S::Request,
        encoded: &mut Option<Vec<u8>>,
        trace: Option<TraceContext>,
        deadline: Instant,
    ) -> Result<S::Response, CallError> {
        match &target.local {
            Some(handle) => {
                let (tx, rx) = oneshot::channel();
                let envelope = Envelope {
                    request,
                    reply: Some(ReplyTo::local(tx)),
                    deadline: Some(deadline),
                    trace,
                };
                send_local(
                    handle,
                    MemberMsg::One(Box::new(envelope)),
                    Patience::Until(deadline),
                )
                .await
                .map_err(|(e, _)| e)?;
                match timeout_at(deadline, rx).await {
                    Ok(Ok(result)) => result,
                    Ok(Err(_)) => Err(CallError::MemberFailed),
                    Err(_) => Err(CallError::Timeout),
                }
            }
            None => {
                let payload = match encoded {
                    Some(p) => p.clone(),
                    None => {
                        let p = encode(&request)?;
                        *encoded = Some(p.clone());
                        p
                    }
                };
                let link = target
                    .link
                    .as_ref()
                    .and_then(|slot| slot.get())
                    .ok_or_else(|| CallError::Unreachable(target.node.to_string()))?;
                let bytes = link
                    .call(
                        Arc::clone(&self.inner.name),
                        wire_target,
                        payload,
                        trace,
                        deadline,
                    )
                    .await?;
                decode(&bytes)
            }
        }
    }

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
            return Err(CallError::BadMessage(format!(
                "service {} is not sharded",
                S::NAME
            )));
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
                tracing::debug!(service = S::NAME, shard, node = %node, error = %e, "sharded call failed");
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

    /// Calls counted in flight over all members, for tests.
    #[cfg(test)]
    pub(crate) fn num_outstanding(&self) -> usize {
        self.inner
            .outstanding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// The members this router can reach now: (node, slot) pairs.
    pub fn members(&self) -> Vec<(NodeId, u32)> {
        self.view()
            .targets
            .iter()
            .map(|t| (t.node.clone(), t.slot.index))
            .collect()
    }
}

/// One call in flight to a member, counted for the least-outstanding balancer until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Delivers to a local member without waiting: `Err` gives the message back with the reason
/// (full, or the member is gone).
fn try_send_local<S: Service>(
    handle: &LocalHandle<S>,
    message: MemberMsg<S>,
) -> Result<(), (CallError, Option<MemberMsg<S>>)> {
    if !handle.mailbox.try_reserve(1) {
        return Err((CallError::Overloaded, Some(message)));
    }
    match handle.actor.send_message(message) {
        Ok(()) => Ok(()),
        Err(e) => {
            handle.mailbox.release(1);
            let message = match e {
                ractor::MessagingErr::SendErr(message) => Some(message),
                _ => None,
            };
            Err((CallError::NoMember(S::NAME.into()), message))
        }
    }
}

/// Delivers to a local member: waits for mailbox room until the deadline. On failure, gives the
/// message back when it was not queued.
pub(crate) async fn send_local<S: Service>(
    handle: &LocalHandle<S>,
    message: MemberMsg<S>,
    patience: Patience,
) -> Result<(), (CallError, Option<MemberMsg<S>>)> {
    let deadline = patience.deadline_later();
    let mut message = message;
    loop {
        match try_send_local(handle, message) {
            Err((CallError::Overloaded, Some(back))) => {
                let deadline = deadline.get();
                if !handle.mailbox.reserve(1, deadline).await {
                    return Err((CallError::Overloaded, Some(back)));
                }
                // Room came; give it back and take it like any sender (another may be quicker:
                // then wait again, until the same deadline).
                handle.mailbox.release(1);
                message = back;
            }
            other => return other,
        }
    }
}

/// The request inside a message that was given back unsent.
fn request_of<S: Service>(message: Option<MemberMsg<S>>) -> Option<S::Request> {
    match message? {
        MemberMsg::Cast(request, _) => Some(request),
        MemberMsg::One(envelope) => Some(envelope.request),
        MemberMsg::Batch(_) => None,
    }
}

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
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use tokio::sync::oneshot;
use tokio::time::{Instant, timeout_at};

use crate::cluster::NodeId;
use crate::deadline::Patience;
use crate::registry::Registry;
use crate::registry::balance::Balance;
use crate::service::{
    CallError, CallOptions, Envelope, MemberMsg, ReplyTo, Service, Target as WireTarget, decode,
    encode,
};
use crate::shard::ShardTable;
use crate::telemetry::{self, TraceContext};

mod local;
mod post;
mod sharded;
mod view;

use view::{Target, View};

use crate::transport::Transport;
pub(crate) use local::send_local;
use local::{InFlight, request_of, try_send_local};
pub(crate) use post::Poster;

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
                    tracing::debug!(service = S::NAME, member_node = %target.node, error = %e, "call failed; retrying on another member");
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

    /// Calls counted in flight over all members, for tests.
    #[cfg(test)]
    pub(crate) fn num_outstanding(&self) -> usize {
        self.inner
            .outstanding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|c| c.load(std::sync::atomic::Ordering::Relaxed))
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

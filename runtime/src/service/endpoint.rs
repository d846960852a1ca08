//! The typed endpoint of a hosted service: turns requests from peers into member messages.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::{Duration, Instant};

use super::{
    CallError, Endpoint, Envelope, MemberMsg, RemoteDelivery, ReplyTo, Service, Target, decode,
};
use crate::registry::{LocalHandle, Registry};

/// How long a batch from a peer waits for mailbox room when none of its calls has a nearer
/// deadline, before its calls fail as overloaded and its casts are dropped.
const MAX_WAIT_FOR_ROOM: Duration = Duration::from_secs(1);

pub(crate) struct TypedEndpoint<S: Service> {
    registry: Arc<Registry>,
    counter: AtomicU64,
    _service: PhantomData<fn() -> S>,
}

impl<S: Service> TypedEndpoint<S> {
    pub(crate) fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            counter: AtomicU64::new(0),
            _service: PhantomData,
        }
    }

    /// The live local member `target` names (see [`Target`]): a slot is served by its own
    /// member or not at all.
    fn member(&self, target: Target) -> Option<Arc<LocalHandle<S>>> {
        let handles = self.registry.local_handles(S::NAME);
        let any = || {
            if handles.is_empty() {
                return None;
            }
            let n = self.counter.fetch_add(1, Ordering::Relaxed) as usize;
            handles.get(n % handles.len())
        };
        let chosen = match target {
            Target::Any => any(),
            Target::Pick(pid) => handles
                .iter()
                .find(|(slot, _)| slot.pid == pid)
                .or_else(any),
            Target::Slot(index) => handles.iter().find(|(slot, _)| slot.index == index),
        }?;
        Arc::clone(&chosen.1).downcast::<LocalHandle<S>>().ok()
    }

    async fn deliver_run(&self, run: Vec<RemoteDelivery>, target: Target) {
        let Some(handle) = self.member(target) else {
            for d in run {
                if let Some(reply) = d.reply {
                    reply.send(Err(CallError::NoMember(S::NAME.into())));
                }
            }
            return;
        };
        let mut envelopes = Vec::with_capacity(run.len());
        let mut wait_until = Instant::now() + MAX_WAIT_FOR_ROOM;
        for d in run {
            match decode::<S::Request>(&d.payload) {
                Ok(request) => {
                    if let Some(deadline) = d.deadline {
                        wait_until = wait_until.min(deadline);
                    }
                    envelopes.push(Envelope {
                        request,
                        reply: d.reply.map(ReplyTo::remote),
                        deadline: d.deadline,
                        trace: d.trace,
                    });
                }
                Err(e) => {
                    tracing::warn!(service = S::NAME, error = %e, "dropping a request that does not decode");
                    if let Some(reply) = d.reply {
                        reply.send(Err(e));
                    }
                }
            }
        }
        let capacity = handle.mailbox.capacity();
        while !envelopes.is_empty() {
            let rest = envelopes.split_off(envelopes.len().min(capacity));
            let chunk = std::mem::replace(&mut envelopes, rest);
            if !handle.mailbox.reserve(chunk.len(), wait_until).await {
                let dropped = chunk.iter().filter(|e| e.reply.is_none()).count();
                if dropped > 0 {
                    tracing::warn!(
                        service = S::NAME,
                        dropped,
                        "member stayed full: dropping one-way messages"
                    );
                }
                for e in chunk {
                    if let Some(reply) = e.reply {
                        reply.send(Err(CallError::Overloaded));
                    }
                }
                continue;
            }
            // A member that died in the meantime gives the batch back, or drops it unhandled:
            // either way its calls fail as not applied (`Dropped`) through their reply
            // channels.
            if let Err(ractor::MessagingErr::SendErr(MemberMsg::Batch(back))) =
                handle.actor.send_message(MemberMsg::Batch(chunk))
            {
                handle.mailbox.unreserve(back.len());
            }
        }
    }
}

impl<S: Service> Endpoint for TypedEndpoint<S> {
    fn deliver_batch(
        &self,
        batch: Vec<RemoteDelivery>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            // One mailbox message per member, each keeping the order its requests came in:
            // order is promised per sender and member, not across members.
            let mut runs: Vec<(Target, Vec<RemoteDelivery>)> = Vec::new();
            let mut index: HashMap<Target, usize> = HashMap::new();
            for d in batch {
                let slot = match index.get(&d.target) {
                    Some(i) => *i,
                    None => {
                        index.insert(d.target, runs.len());
                        runs.push((d.target, Vec::new()));
                        runs.len() - 1
                    }
                };
                runs[slot].1.push(d);
            }
            for (target, run) in runs {
                self.deliver_run(run, target).await;
            }
        })
    }
}

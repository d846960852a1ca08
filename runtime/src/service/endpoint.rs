//! The typed endpoint of a hosted service: turns requests from peers into member messages.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::{Duration, Instant};

use super::{CallError, Endpoint, Envelope, MemberMsg, RemoteDelivery, ReplyTo, Service, decode};
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

    /// Member `pid` if it is alive here, else another live local member.
    fn member(&self, pid: Option<u64>) -> Option<Arc<LocalHandle<S>>> {
        let handles = self.registry.local_handles(S::NAME);
        let chosen = pid
            .and_then(|pid| handles.iter().find(|(slot, _)| slot.pid == pid))
            .or_else(|| {
                if handles.is_empty() {
                    return None;
                }
                let n = self.counter.fetch_add(1, Ordering::Relaxed) as usize;
                handles.get(n % handles.len())
            })?;
        Arc::clone(&chosen.1).downcast::<LocalHandle<S>>().ok()
    }

    async fn deliver_run(&self, run: Vec<RemoteDelivery>, pid: Option<u64>) {
        let Some(handle) = self.member(pid) else {
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
            // A member that died in the meantime drops the batch: its calls fail as
            // MemberFailed (retryable) through their reply channels.
            let _ = handle.actor.send_message(MemberMsg::Batch(chunk));
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
            let mut runs: Vec<(Option<u64>, Vec<RemoteDelivery>)> = Vec::new();
            let mut index: HashMap<Option<u64>, usize> = HashMap::new();
            for d in batch {
                let slot = match index.get(&d.pid) {
                    Some(i) => *i,
                    None => {
                        index.insert(d.pid, runs.len());
                        runs.push((d.pid, Vec::new()));
                        runs.len() - 1
                    }
                };
                runs[slot].1.push(d);
            }
            for (pid, run) in runs {
                self.deliver_run(run, pid).await;
            }
        })
    }
}

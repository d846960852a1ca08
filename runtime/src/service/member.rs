//! The actor around each member: runs [`Service::init`] and [`Service::handle`], honours
//! deadlines, sets the caller's trace context, and releases mailbox room after each message.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;

use super::mailbox::RELEASE_EVERY;
use super::{CallError, MailboxLimit, MemberInfo, ReplyTo, RequestContext, Service};
use crate::telemetry::{self, KeyValue, Kind, Span, TraceContext};

/// One request to a member.
pub(crate) struct Envelope<S: Service> {
    pub(crate) request: S::Request,
    /// Where the response goes; `None` for a cast.
    pub(crate) reply: Option<ReplyTo<S::Response>>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) trace: Option<TraceContext>,
}

/// What a member's mailbox holds. Each request was counted into the member's [`Mailbox`] by
/// its sender; the member gives the room back once it is handled.
pub(crate) enum MemberMsg<S: Service> {
    /// A one-way request from this node: the smallest message, for the most frequent case
    /// (ractor moves every message several times: the enum is kept about this size).
    Cast(S::Request, Option<Box<TraceContext>>),
    /// A call, or a request with a deadline: boxed, so that it does not make every message big.
    One(Box<Envelope<S>>),
    /// Several requests that arrived together from one peer, in order.
    Batch(Vec<Envelope<S>>),
}

impl<S: Service> ractor::Message for MemberMsg<S> {}

/// The member actor.
pub(crate) struct Member<S: Service> {
    pub(crate) service: Arc<S>,
    pub(crate) info: MemberInfo,
    pub(crate) mailbox: MailboxLimit,
}

/// A member's state: the service's, and the room it has not given back yet.
pub(crate) struct MemberState<T> {
    inner: T,
    unreleased: usize,
}

impl<S: Service> Member<S> {
    async fn process(&self, state: &mut S::State, envelope: Envelope<S>) {
        let Envelope {
            request,
            mut reply,
            deadline,
            trace,
        } = envelope;
        if let (Some(deadline), Some(_)) = (deadline, &reply)
            && Instant::now() >= deadline
        {
            // Nobody waits for this answer any more: skip the work.
            if let Some(reply) = reply {
                reply.send(Err(CallError::Expired));
            }
            return;
        }
        if let Some(reply) = &mut reply {
            reply.start();
        }
        let cx = RequestContext::new(&self.info, trace, deadline);
        let response = match trace {
            // Boxed: the traced path is rarer, and keeping its larger future out of this one
            // keeps every message's future small (it is moved several times per message).
            Some(trace) => {
                // This message's span: a child of the span that sent it, on whichever node.
                let context = trace.child();
                let span = self.span(context, trace.span_id, &request);
                let response = Box::pin(telemetry::scope(
                    context,
                    self.service.handle(state, request, &cx),
                ))
                .await;
                drop(span);
                response
            }
            None => self.service.handle(state, request, &cx).await,
        };
        let (after, effects) = cx.into_release();
        release(reply.map(|r| (r, response)), after, effects);
    }
}

/// Sends the reply (if anyone waits for one) and releases the effects, once `after` is durable:
/// at once if there is nothing to wait for or it is durable already (most reads: no task to
/// spawn and wake per ask), else from a task of its own while the member goes on. The task is
/// the member's no longer: a kill of the member from now on does not cut the answer or the
/// effects off. If the flush fails, the caller is told the outcome is unknown and the effects
/// are dropped (nothing a command caused leaves unless its batch is durable).
fn release<Resp: serde::Serialize + Send + 'static>(
    reply: Option<(ReplyTo<Resp>, Resp)>,
    after: Option<crate::store::Durable>,
    effects: Vec<super::Effect>,
) {
    let run = |effects: Vec<super::Effect>| effects.into_iter().for_each(|effect| effect());
    match after.filter(|durable| !durable.is_reached()) {
        None => {
            run(effects);
            if let Some((reply, response)) = reply {
                reply.send(Ok(response));
            }
        }
        Some(durable) if reply.is_some() || !effects.is_empty() => {
            tokio::spawn(async move {
                match durable.wait().await {
                    Ok(()) => {
                        run(effects);
                        if let Some((reply, response)) = reply {
                            reply.send(Ok(response));
                        }
                    }
                    Err(e) => {
                        if !effects.is_empty() {
                            tracing::warn!(error = %e, dropped = effects.len(), "a flush failed: the effects of its commands are dropped");
                        }
                        if let Some((reply, _)) = reply {
                            reply.send(Err(CallError::NotDurable(e.to_string())));
                        }
                    }
                }
            });
        }
        Some(_) => {}
    }
}

impl<S: Service> Member<S> {
    /// The span of one message handled (nothing is built while export is off).
    fn span(&self, context: TraceContext, parent: [u8; 8], request: &S::Request) -> Span {
        Span::start(context, Some(parent), Kind::Internal, || {
            let info = &self.info;
            let kind = S::kind(request);
            let mut attributes = vec![
                KeyValue::new("troupe.service", info.service),
                KeyValue::new("troupe.message.kind", kind.to_string()),
                KeyValue::new("troupe.node", info.node.to_string()),
            ];
            if info.sharded {
                attributes.push(KeyValue::new("troupe.shard", i64::from(info.index)));
            } else {
                attributes.push(KeyValue::new("troupe.member", i64::from(info.index)));
            }
            (format!("{} {kind}", info.service).into(), attributes)
        })
    }

    /// Gives back room for `n` handled messages: in bulk, or at once if a sender waits.
    fn handled(&self, state: &mut MemberState<S::State>, n: usize) {
        self.mailbox.count_handled(n);
        state.unreleased += n;
        if state.unreleased >= RELEASE_EVERY || self.mailbox.has_waiters() {
            self.mailbox.release(std::mem::take(&mut state.unreleased));
        }
    }
}

impl<S: Service> Member<S> {
    async fn deliver(&self, message: MemberMsg<S>, state: &mut MemberState<S::State>) {
        match message {
            MemberMsg::Cast(request, trace) => {
                let envelope = Envelope {
                    request,
                    reply: None,
                    deadline: None,
                    trace: trace.map(|t| *t),
                };
                self.process(&mut state.inner, envelope).await;
                self.handled(state, 1);
            }
            MemberMsg::One(envelope) => {
                self.process(&mut state.inner, *envelope).await;
                self.handled(state, 1);
            }
            MemberMsg::Batch(envelopes) => {
                let n = envelopes.len();
                for envelope in envelopes {
                    self.process(&mut state.inner, envelope).await;
                }
                self.handled(state, n);
            }
        }
    }
}

impl<S: Service> Actor for Member<S> {
    type Msg = MemberMsg<S>;
    type State = MemberState<S::State>;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        let inner = self.service.init(&self.info).await.map_err(|e| {
            format!(
                "{}/{} failed to start: {e}",
                self.info.service, self.info.index
            )
        })?;
        Ok(MemberState {
            inner,
            unreleased: 0,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            // The most frequent message, a local one-way request without trace context, runs
            // the service's handler directly: this future stays about the size of the
            // handler's own.
            MemberMsg::Cast(request, None) => {
                let cx = RequestContext::new(&self.info, None, None);
                let _ = self.service.handle(&mut state.inner, request, &cx).await;
                let (after, effects) = cx.into_release();
                if !effects.is_empty() {
                    release::<S::Response>(None, after, effects);
                }
                self.handled(state, 1);
            }
            // The others carry more (reply channels, deadlines, batches) and make a larger
            // future, which ractor would move through several layers of its own per message:
            // on the heap it is moved as a pointer instead.
            other => Box::pin(self.deliver(other, state)).await,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

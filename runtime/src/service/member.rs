//! The actor around each member: runs [`Service::init`] and [`Service::handle`], honours
//! deadlines, sets the caller's trace context, and releases mailbox room after each message.

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::{CallError, MemberInfo, ReplyTo, RequestContext, Service};
use crate::telemetry::{self, TraceContext};

/// One request to a member.
pub(crate) struct Envelope<S: Service> {
    pub(crate) request: S::Request,
    /// Where the response goes; `None` for a cast.
    pub(crate) reply: Option<ReplyTo<S::Response>>,
    pub(crate) deadline: Option<Instant>,
    pub(crate) trace: Option<TraceContext>,
}

/// What a member's mailbox holds. Each message holds its share of the mailbox limit until it is
/// handled.
pub(crate) enum MemberMsg<S: Service> {
    One(Envelope<S>, OwnedSemaphorePermit),
    /// Several requests that arrived together from one peer, in order.
    Batch(Vec<Envelope<S>>, OwnedSemaphorePermit),
}

impl<S: Service> ractor::Message for MemberMsg<S> {}

/// The member actor.
pub(crate) struct Member<S: Service> {
    pub(crate) service: Arc<S>,
    pub(crate) info: MemberInfo,
}

impl<S: Service> Member<S> {
    async fn process(&self, state: &mut S::State, envelope: Envelope<S>) {
        let Envelope {
            request,
            reply,
            deadline,
            trace,
        } = envelope;
        if let (Some(deadline), Some(_)) = (deadline, &reply)
            && Instant::now() >= deadline
        {
            // Nobody waits for this answer any more: skip the work.
            if let Some(reply) = reply {
                reply.send(Err(CallError::Timeout));
            }
            return;
        }
        let cx = RequestContext {
            member: &self.info,
            trace,
            deadline,
        };
        let response = match trace {
            Some(trace) => {
                telemetry::scope(trace.child(), self.service.handle(state, request, &cx)).await
            }
            None => self.service.handle(state, request, &cx).await,
        };
        if let Some(reply) = reply {
            reply.send(Ok(response));
        }
    }
}

impl<S: Service> Actor for Member<S> {
    type Msg = MemberMsg<S>;
    type State = S::State;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        self.service.init(&self.info).await.map_err(|e| {
            format!(
                "{}/{} failed to start: {e}",
                self.info.service, self.info.index
            )
            .into()
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            MemberMsg::One(envelope, permit) => {
                self.process(state, envelope).await;
                drop(permit);
            }
            MemberMsg::Batch(envelopes, permit) => {
                for envelope in envelopes {
                    self.process(state, envelope).await;
                }
                drop(permit);
            }
        }
        Ok(())
    }
}

//! Delivering to a member on this node: a bounded mailbox, waited on until a deadline.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::deadline::Patience;
use crate::registry::LocalHandle;
use crate::service::{CallError, MemberMsg, Service};

/// One call in flight to a member, counted for the least-outstanding balancer until dropped.
pub(super) struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    pub(super) fn new(count: &'a AtomicUsize) -> Self {
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
pub(super) fn try_send_local<S: Service>(
    handle: &LocalHandle<S>,
    message: MemberMsg<S>,
) -> Result<(), (CallError, Option<MemberMsg<S>>)> {
    if !handle.mailbox.try_reserve(1) {
        return Err((CallError::Overloaded, Some(message)));
    }
    match handle.actor.send_message(message) {
        Ok(()) => Ok(()),
        Err(e) => {
            handle.mailbox.unreserve(1);
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
                handle.mailbox.unreserve(1);
                message = back;
            }
            other => return other,
        }
    }
}

/// The request inside a message that was given back unsent.
pub(super) fn request_of<S: Service>(message: Option<MemberMsg<S>>) -> Option<S::Request> {
    match message? {
        MemberMsg::Cast(request, _) => Some(request),
        MemberMsg::One(envelope) => Some(envelope.request),
        MemberMsg::Batch(_) => None,
    }
}

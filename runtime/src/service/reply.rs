//! Where a member's answer goes: a local caller's channel, or a peer link.

use std::fmt;

use serde::Serialize;
use tokio::sync::oneshot;

use super::{CallError, encode};

/// Sends encoded replies to a caller on another node; implemented by the transport.
pub(crate) trait ReplySink: Send + 'static {
    /// Sends the result. Called at most once.
    fn send(self: Box<Self>, result: Result<Vec<u8>, CallError>);
}

/// The reply channel of one call. If it is dropped without a reply, the caller hears at once
/// instead of waiting for its deadline: [`CallError::Dropped`] (nothing was done) if no member
/// had started handling the request (it was queued in a mailbox that died), else
/// [`CallError::MemberFailed`] (it may have been applied).
pub struct ReplyTo<Resp: Serialize + Send + 'static> {
    inner: Option<Inner<Resp>>,
    started: bool,
}

enum Inner<Resp> {
    Local(oneshot::Sender<Result<Resp, CallError>>),
    Remote(Box<dyn ReplySink>),
}

impl<Resp: Serialize + Send + 'static> fmt::Debug for ReplyTo<Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.inner {
            Some(Inner::Local(_)) => "local",
            Some(Inner::Remote(_)) => "remote",
            None => "sent",
        };
        write!(f, "ReplyTo({kind})")
    }
}

impl<Resp: Serialize + Send + 'static> ReplyTo<Resp> {
    pub(crate) fn local(tx: oneshot::Sender<Result<Resp, CallError>>) -> Self {
        Self {
            inner: Some(Inner::Local(tx)),
            started: false,
        }
    }

    pub(crate) fn remote(sink: Box<dyn ReplySink>) -> Self {
        Self {
            inner: Some(Inner::Remote(sink)),
            started: false,
        }
    }

    /// Marks the request as taken by a member: from now on a drop without a reply means its
    /// outcome is unknown.
    pub(crate) fn start(&mut self) {
        self.started = true;
    }

    /// Sends the result to the caller (who may have stopped waiting).
    pub fn send(mut self, result: Result<Resp, CallError>) {
        match self.inner.take() {
            Some(Inner::Local(tx)) => {
                let _ = tx.send(result);
            }
            Some(Inner::Remote(sink)) => sink.send(result.and_then(|r| encode(&r))),
            None => {}
        }
    }
}

impl<Resp: Serialize + Send + 'static> Drop for ReplyTo<Resp> {
    fn drop(&mut self) {
        let error = if self.started {
            CallError::MemberFailed
        } else {
            CallError::Dropped
        };
        match self.inner.take() {
            Some(Inner::Local(tx)) => {
                let _ = tx.send(Err(error));
            }
            Some(Inner::Remote(sink)) => sink.send(Err(error)),
            None => {}
        }
    }
}

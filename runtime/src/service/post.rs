//! Posting an encoded request to a service by name: how a member's effects (a tell to another
//! entity, a timer that fires) leave it, without the member knowing the service's types.
//!
//! The [`Post`] trait is defined here, below the router, and implemented by the router's layer
//! ([`crate::router::Poster`]); the runtime hands every member one ([`MemberInfo::outbound`]).
//! An in-process test harness hands a recording one instead.
//!
//! [`MemberInfo::outbound`]: super::MemberInfo::outbound

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::time::Duration;

use super::CallError;
use crate::events::Bus;

/// Which member of a service a posted request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// The shard that owns this key (a sharded service): that shard and no other.
    Shard(Vec<u8>),
    /// This shard of a sharded service (an operator's request about the shard itself).
    Slot(u32),
    /// Any live member (a stateless service).
    Any,
}

/// A posted request on its way.
pub type Posting = Pin<Box<dyn Future<Output = Result<(), CallError>> + Send + 'static>>;

/// A call on its way: the member's encoded response.
pub type Answering = Pin<Box<dyn Future<Output = Result<Vec<u8>, CallError>> + Send + 'static>>;

/// Delivers encoded requests one-way to services by name.
pub trait Post: Send + Sync + 'static {
    /// Delivers `request` (an encoded request of `service`) to the member `to` names, waiting
    /// at most `timeout` for room or a link. Returns once it is handed over: at most once
    /// delivered, like a cast.
    fn post(&self, service: &str, to: To, request: Vec<u8>, timeout: Duration) -> Posting;

    /// Delivers `request` to the member `to` names and waits up to `timeout` for its encoded
    /// response (see [`CallError`] for what a failure says was applied).
    fn call(&self, service: &str, to: To, request: Vec<u8>, timeout: Duration) -> Answering;
}

/// A member's way out to other services, and the event bus its events go out on. Cheap to
/// clone.
#[derive(Clone)]
pub struct Outbound {
    post: Arc<dyn Post>,
    bus: Arc<Bus>,
}

impl Outbound {
    /// Posts through `post`; events go to the subscriptions of `bus`.
    pub fn new(post: Arc<dyn Post>, bus: Arc<Bus>) -> Self {
        Self { post, bus }
    }

    /// See [`Post::post`].
    pub fn post(&self, service: &str, to: To, request: Vec<u8>, timeout: Duration) -> Posting {
        self.post.post(service, to, request, timeout)
    }

    /// See [`Post::call`].
    pub fn call(&self, service: &str, to: To, request: Vec<u8>, timeout: Duration) -> Answering {
        self.post.call(service, to, request, timeout)
    }

    /// The event bus.
    pub fn bus(&self) -> &Arc<Bus> {
        &self.bus
    }
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Outbound")
    }
}

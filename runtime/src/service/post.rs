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

/// Which member of a service a posted request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum To {
    /// The shard that owns this key (a sharded service): that shard and no other.
    Shard(Vec<u8>),
    /// Any live member (a stateless service).
    Any,
}

/// A posted request on its way.
pub type Posting = Pin<Box<dyn Future<Output = Result<(), CallError>> + Send + 'static>>;

/// Delivers encoded requests one-way to services by name.
pub trait Post: Send + Sync + 'static {
    /// Delivers `request` (an encoded request of `service`) to the member `to` names, waiting
    /// at most `timeout` for room or a link. Returns once it is handed over: at most once
    /// delivered, like a cast.
    fn post(&self, service: &str, to: To, request: Vec<u8>, timeout: Duration) -> Posting;
}

/// A member's way out to other services. Cheap to clone.
#[derive(Clone)]
pub struct Outbound(Arc<dyn Post>);

impl Outbound {
    /// Posts through `post`.
    pub fn new(post: Arc<dyn Post>) -> Self {
        Self(post)
    }

    /// See [`Post::post`].
    pub fn post(&self, service: &str, to: To, request: Vec<u8>, timeout: Duration) -> Posting {
        self.0.post(service, to, request, timeout)
    }
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Outbound")
    }
}

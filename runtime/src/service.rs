//! Services: a named group of identical actors (members) on the nodes that host it.
//!
//! # The model
//!
//! A [`Service`] says what its members do: how a member builds its state ([`Service::init`],
//! again after every restart) and how it handles one request ([`Service::handle`]). The runtime
//! wraps each member in an actor of its own ([`member`]), starts `members_per_node` of them
//! under a [`crate::supervisor::Supervisor`] on every node that hosts the service, and lists the
//! live ones in the cluster-wide [`crate::registry`]. Senders reach members through a
//! [`crate::Router`], which picks one with a balancer and delivers locally by a plain actor
//! message or remotely over the [`crate::transport`].
//!
//! Requests and responses are serde types: bincode crosses nodes, nothing is encoded locally.
//! A handler's domain failures belong in its `Response` type (`Result<Order, OrderError>`);
//! a panic in a handler fails the member, whose supervisor restarts it, and the caller gets
//! [`CallError::MemberFailed`].
//!
//! # Mailboxes are bounded
//!
//! Every member has a mailbox limit ([`ServiceSpec::mailbox_capacity`]). A local sender waits
//! for room until its deadline and then gets [`CallError::Overloaded`]; traffic from a peer waits
//! in the peer link, whose bounded queue pushes back on the senders of that node.

mod budget;
pub(crate) mod endpoint;
pub(crate) mod mailbox;
pub(crate) mod member;
mod post;
mod reply;

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::{Duration, Instant};

use crate::ErrorKind;
use crate::cluster::NodeId;
use crate::registry::balance::Balance;
use crate::store::{Keyspace, Store};
use crate::telemetry::TraceContext;

pub use mailbox::TrafficSnapshot;
pub(crate) use member::{Envelope, Member, MemberMsg};
pub use post::{Answering, Outbound, Post, Posting, To};
pub(crate) use reply::ReplySink;
pub use reply::ReplyTo;

/// What the members of a service do. One value of this type is shared by all the members on a
/// node; per-member data lives in [`Service::State`].
pub trait Service: Send + Sync + 'static {
    /// The service's name, unique in the cluster (`kv`, `orders`).
    const NAME: &'static str;
    /// What members receive.
    type Request: Serialize + DeserializeOwned + Send + 'static;
    /// What they answer.
    type Response: Serialize + DeserializeOwned + Send + 'static;
    /// One member's state.
    type State: Send + 'static;

    /// Builds a member's state when it starts and after every restart. An error fails the
    /// start; the supervisor retries with backoff.
    fn init(
        &self,
        member: &MemberInfo,
    ) -> impl Future<Output = Result<Self::State, ServiceError>> + Send;

    /// Handles one request. The response is sent to the caller of a call and dropped for a cast.
    fn handle(
        &self,
        state: &mut Self::State,
        request: Self::Request,
        cx: &RequestContext<'_>,
    ) -> impl Future<Output = Self::Response> + Send;

    /// What kind of message `request` is, for its trace span (`order.place`); read only while
    /// spans are exported.
    fn kind(_request: &Self::Request) -> &str {
        "request"
    }
}

/// Which member this is, and what it may use.
#[derive(Debug, Clone)]
pub struct MemberInfo {
    /// The service's name.
    pub service: &'static str,
    /// The node the member runs on.
    pub node: NodeId,
    /// Its slot on that node, `0..members_per_node`, kept across restarts; for a sharded
    /// service, its shard number.
    pub index: u32,
    /// Whether `index` is a shard number.
    pub sharded: bool,
    /// The node's store, if it has one.
    pub store: Option<Store>,
    /// The way out to other services, for the effects of what the member handles (see
    /// [`Post`]); `None` where there is none (a member run outside a runtime).
    pub outbound: Option<Outbound>,
}

/// How long a restarted member waits for its predecessor to release its keyspace.
const CLAIM_WAIT: Duration = Duration::from_secs(5);

impl MemberInfo {
    /// The name of this member's keyspace: `<service>/<shard or slot>`.
    pub fn keyspace_name(&self) -> String {
        format!("{}/{}", self.service, self.index)
    }

    /// Claims this member's own keyspace (see [`crate::store`]).
    pub async fn keyspace(&self) -> Result<Keyspace, ServiceError> {
        let store = self
            .store
            .as_ref()
            .ok_or_else(|| ServiceError("this node has no store".into()))?;
        store
            .claim(&self.keyspace_name(), CLAIM_WAIT)
            .await
            .map_err(|e| ServiceError(e.to_string()))
    }
}

/// What a handler knows about the request it handles.
pub struct RequestContext<'a> {
    /// The member handling it.
    pub member: &'a MemberInfo,
    /// The caller's trace context.
    pub trace: Option<TraceContext>,
    /// When the caller stops waiting, if it waits.
    pub deadline: Option<Instant>,
    /// What the reply waits for (see [`RequestContext::reply_when_durable`]). A std mutex:
    /// set once by the handler, taken once by the member, never contended.
    pub(crate) reply_after: std::sync::Mutex<Option<crate::store::Durable>>,
    /// What runs once the reply may leave (see [`RequestContext::when_durable`]).
    pub(crate) effects: std::sync::Mutex<Vec<Effect>>,
}

/// Something a handler caused, released once what it waits for is durable.
pub type Effect = Box<dyn FnOnce() + Send + 'static>;

impl std::fmt::Debug for RequestContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestContext")
            .field("member", &self.member)
            .field("trace", &self.trace)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl<'a> RequestContext<'a> {
    /// Holds this request's reply until `durable` is reached, while the member goes on with
    /// its next message: a handler that applied a write with [`Keyspace::apply`] answers only
    /// once what it wrote is on disk, without making every other request wait for the disk. If the flush fails, the caller is told the
    /// outcome is unknown ([`CallError::NotDurable`]). The last call wins.
    pub fn reply_when_durable(&self, durable: crate::store::Durable) {
        *self.reply_after.lock().unwrap_or_else(|p| p.into_inner()) = Some(durable);
    }

    /// Runs `effect` once the reply may leave: after what
    /// [`RequestContext::reply_when_durable`] waits for is durable (at once if nothing), for a
    /// call and a cast alike; never if the flush fails. Effects run in the order they were
    /// added, before the reply is sent.
    pub fn when_durable(&self, effect: Effect) {
        self.effects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(effect);
    }

    pub(crate) fn new(
        member: &'a MemberInfo,
        trace: Option<TraceContext>,
        deadline: Option<Instant>,
    ) -> RequestContext<'a> {
        RequestContext {
            member,
            trace,
            deadline,
            reply_after: std::sync::Mutex::new(None),
            effects: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// What the reply waits for and the effects to release then, taken by the member.
    pub(crate) fn into_release(self) -> (Option<crate::store::Durable>, Vec<Effect>) {
        (
            self.reply_after
                .into_inner()
                .unwrap_or_else(|p| p.into_inner()),
            self.effects.into_inner().unwrap_or_else(|p| p.into_inner()),
        )
    }
}

/// A service failed to start a member.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServiceError(pub String);

/// How a service runs: where, how many members, how they are picked.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// Members on each hosting node.
    pub members_per_node: u32,
    /// The nodes that host it (`None`: every node).
    pub nodes: Option<Vec<NodeId>>,
    /// How a sender picks a member.
    pub balance: Balance,
    /// Prefer members on the sender's node when there are any.
    pub prefer_local: bool,
    /// Messages a member may have queued before senders wait.
    pub mailbox_capacity: usize,
    /// A stateful service's number of shards: members are shards, placed on the hosting nodes
    /// by [`crate::shard`], and `members_per_node` does not apply.
    pub shards: Option<u32>,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            members_per_node: 2,
            nodes: None,
            balance: Balance::RoundRobin,
            prefer_local: false,
            mailbox_capacity: 4096,
            shards: None,
        }
    }
}

impl ServiceSpec {
    /// Whether node `id` hosts the service.
    pub fn hosted_on(&self, id: &NodeId) -> bool {
        self.nodes.as_ref().is_none_or(|nodes| nodes.contains(id))
    }
}

/// How a request to a service can fail.
///
/// Every failure says what the caller may assume about the request: either it was **not
/// applied** (never sent, refused, or dropped before a member took it: trying again is safe,
/// [`CallError::not_applied`]), or its **outcome is unknown** (it reached a member that may have
/// applied it before the answer was lost: only an idempotent request may be sent again,
/// [`ErrorKind::OutcomeUnknown`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, serde::Deserialize)]
pub enum CallError {
    /// No live member of the service can be reached (or the one named is not running).
    #[error("no live member of service {0}")]
    NoMember(String),
    /// The service is not known to this node.
    #[error("unknown service {0}")]
    UnknownService(String),
    /// The deadline passed after the request was handed to a member or a link, before a
    /// reply: the request may have been applied.
    #[error("the deadline passed before an answer came")]
    Timeout,
    /// The deadline passed before a member took the request: nothing was done.
    #[error("the deadline passed before the request was handled; nothing was done")]
    Expired,
    /// The node of the chosen member cannot be reached; the request was not sent.
    #[error("node {0} is unreachable")]
    Unreachable(String),
    /// The link to the member's node dropped after the request was sent: it may have been
    /// applied.
    #[error("the connection to node {0} dropped before an answer came")]
    Lost(String),
    /// The member died while handling the request: it may have been applied.
    #[error("the member failed while handling the request")]
    MemberFailed,
    /// The member stopped before it took the request: nothing was done.
    #[error("the member stopped before handling the request; nothing was done")]
    Dropped,
    /// The member's mailbox or the link to its node stayed full until the deadline.
    #[error("overloaded")]
    Overloaded,
    /// The write was applied but the store failed before it was durable: it may or may not
    /// be there after a restart.
    #[error("the store failed before the write was durable: {0}")]
    NotDurable(String),
    /// A message could not be encoded or decoded.
    #[error("bad message: {0}")]
    BadMessage(String),
    /// The shard that owns the key lives on a node that is down (or was not heard from).
    #[error("shard {shard} of {service} is on node {node}, which is unavailable")]
    ShardUnavailable {
        /// The service.
        service: String,
        /// The shard.
        shard: u32,
        /// Its node.
        node: String,
    },
    /// The shard's data is not where the configuration places it, or the nodes have not
    /// agreed where it is yet: nothing is served rather than an empty keyspace
    /// ([`crate::shard`]). The message names the cause.
    #[error("{0}")]
    Placement(String),
}

impl CallError {
    /// Whether the request certainly was not applied and trying again now or later may
    /// succeed: safe to retry whatever the request does.
    pub fn not_applied(&self) -> bool {
        matches!(
            self,
            Self::NoMember(_)
                | Self::Unreachable(_)
                | Self::Dropped
                | Self::Overloaded
                | Self::ShardUnavailable { .. }
        )
    }

    /// Whether trying again (another member, or later) may succeed: always for a failure that
    /// applied nothing, and for an idempotent request also after an unknown outcome.
    pub fn is_retryable(&self) -> bool {
        self.not_applied() || matches!(self, Self::Lost(_) | Self::MemberFailed)
    }

    /// The kind, for the edge.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownService(_) | Self::BadMessage(_) => ErrorKind::Internal,
            Self::Timeout | Self::Lost(_) | Self::MemberFailed | Self::NotDurable(_) => {
                ErrorKind::OutcomeUnknown
            }
            Self::NoMember(_)
            | Self::Expired
            | Self::Unreachable(_)
            | Self::Dropped
            | Self::Overloaded
            | Self::ShardUnavailable { .. }
            | Self::Placement(_) => ErrorKind::Unavailable,
        }
    }
}

/// Options of one call.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// How long to wait for the reply, all retries included (default 5 s).
    pub timeout: Option<Duration>,
    /// The key for key-affinity balancing.
    pub key: Option<u64>,
    /// Send only to members on this node.
    pub node: Option<NodeId>,
    /// Send only to the member in this slot (with `node`).
    pub member: Option<u32>,
    /// The request may be delivered more than once: retry retryable failures on another member
    /// until the deadline.
    pub idempotent: bool,
}

impl CallOptions {
    /// The default timeout of a call.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

    /// Options with `timeout`.
    pub fn timeout(timeout: Duration) -> Self {
        Self {
            timeout: Some(timeout),
            ..Self::default()
        }
    }

    /// These options, on node `node`.
    pub fn on(mut self, node: NodeId) -> Self {
        self.node = Some(node);
        self
    }

    /// These options, idempotent.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    pub(crate) fn deadline(&self) -> Instant {
        Instant::now() + self.timeout_or_default()
    }

    pub(crate) fn timeout_or_default(&self) -> Duration {
        self.timeout.unwrap_or(Self::DEFAULT_TIMEOUT)
    }
}

/// The type-erased face of a hosted service, for the transport: decode and deliver.
pub(crate) trait Endpoint: Send + Sync + 'static {
    /// Delivers requests that arrived together from a peer, in order, each to its
    /// [`Target`]. Waits for mailbox room, which pushes back on the link.
    fn deliver_batch(
        &self,
        batch: Vec<RemoteDelivery>,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// Which member of a service a request from a peer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Target {
    /// Any live member.
    Any,
    /// The member with this actor id, picked by a balancer: if it is gone, any other live
    /// member (members of a stateless service are interchangeable).
    Pick(u64),
    /// The member in this slot and no other, whatever its actor id (it may have restarted):
    /// for a sharded service the slot is the shard, whose data no other member has. If no
    /// member runs in the slot, nothing is delivered and the caller is told so.
    Slot(u32),
}

/// One request from a peer.
pub(crate) struct RemoteDelivery {
    pub(crate) target: Target,
    pub(crate) payload: bytes::Bytes,
    pub(crate) deadline: Option<Instant>,
    pub(crate) trace: Option<TraceContext>,
    pub(crate) reply: Option<Box<dyn ReplySink>>,
}

/// Encodes a message for the wire, into a vector of exactly its size (small messages are
/// encoded on the stack first, to avoid growing the vector).
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CallError> {
    let mut scratch = [0u8; 256];
    match bincode::serde::encode_into_slice(value, &mut scratch, bincode::config::standard()) {
        Ok(n) => Ok(scratch[..n].to_vec()),
        Err(_) => bincode::serde::encode_to_vec(value, bincode::config::standard())
            .map_err(|e| CallError::BadMessage(e.to_string())),
    }
}

/// The largest message a peer may send (payload of one request or response).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The most decoding one message may allocate: four times [`MAX_MESSAGE_BYTES`], room for a
/// message at the limit that is one byte buffer (counted three times, see below) and for one
/// of many small strings and numbers, which take more room decoded than on the wire.
///
/// [`decode`] counts what the value allocates as it is built (`service/budget.rs`): each
/// string and byte buffer its length, each sequence element three times its size and each map
/// entry four times (collections that grow by doubling hold spare room and, while they move,
/// the old block too), at least one byte each (so a claimed count of `()`s costs its length in
/// budget, not just in time). A message that needs more is refused. Outside the count are one
/// string or buffer of at most [`MAX_MESSAGE_BYTES`], allocated as it is read and counted
/// right after, and what serde preallocates for a sequence before its first element is
/// decoded (at most 1 MiB, per level of nesting): so decoding a message has at most
/// `MAX_DECODED_BYTES + MAX_MESSAGE_BYTES + 1 MiB` allocated at once, plus 1 MiB per
/// sequence nested in another (`runtime/tests/decode_bounds.rs` checks it with a counting
/// allocator).
pub const MAX_DECODED_BYTES: usize = 4 * MAX_MESSAGE_BYTES;

/// Decodes a message from the wire, bounded by [`MAX_MESSAGE_BYTES`] read and
/// [`MAX_DECODED_BYTES`] allocated: a length that claims more than the first is refused before
/// anything is allocated for it, and a message that decodes to more than the second fails
/// with [`CallError::BadMessage`] saying so, as soon as it is over. Public so that the bounds
/// can be checked from outside the crate (`runtime/tests/decode_bounds.rs`).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CallError> {
    let config = bincode::config::standard().with_limit::<MAX_MESSAGE_BYTES>();
    let budget = budget::Budget::new(MAX_DECODED_BYTES);
    match bincode::serde::seed_decode_from_slice(budget.seed::<T>(), bytes, config) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok(_) => Err(CallError::BadMessage("trailing bytes".into())),
        Err(_) if budget.exceeded() => Err(CallError::BadMessage(format!(
            "the message decodes larger than the bound of {MAX_DECODED_BYTES} bytes"
        ))),
        Err(e) => Err(CallError::BadMessage(e.to_string())),
    }
}

/// Shared handle to a member's mailbox limit.
pub(crate) type MailboxLimit = Arc<mailbox::Mailbox>;

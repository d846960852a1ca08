//! The generic actor runtime of Troupe. It knows nothing of orders, users or HTTP: it gives the
//! layers above it a cluster of nodes that find each other and notice failures, supervised
//! groups of actors on them, a registry of who is alive where, and a fast way to reach them.
//!
//! # Layout
//!
//! - [`cluster`]: membership over `ractor_cluster`: seeds from the configuration, a full mesh
//!   dialled with backoff, our own heartbeat failure detector, and [`ClusterEvent`]s.
//! - [`registry`]: which members of which service live where, gossiped in heartbeats;
//!   [`registry::balance`]: the pure balancers.
//! - [`service`]: the [`Service`] trait, member actors, bounded mailboxes, [`CallError`].
//! - [`router`]: [`Router`], the sending side: pick, deliver, retry.
//! - [`transport`]: authenticated TCP links between nodes carrying batched envelopes.
//! - [`shard`]: entity key -> shard -> node, by stable and rendezvous hashing.
//! - [`store`]: each stateful actor's own keyspace on sled, typed values, group commit.
//! - [`entity`]: the typed model of stateful services: ids, state, commands with their own
//!   replies, domain errors; replies after durability.
//! - [`supervisor`]: restart strategies, backoff and intensity limits over ractor supervision.
//! - [`runtime`]: [`Runtime`], one node's runtime behind one handle.
//! - [`builtin`]: the built-in services, together: [`echo`] (diagnostics), [`kv`] (the
//!   sharded key-value store, the example to copy), the node's system service and the
//!   [`bench`] driver.
//! - [`telemetry`]: W3C trace context carried through every hop.
//! - [`metrics`]: the series the runtime records through the `metrics` facade.
//! - [`backoff`], [`hash`], `deadline`: exponential backoff with jitter; stable hashing; how
//!   long a sender may wait.
//! - [`error`]: [`RuntimeError`] and the [`ErrorKind`] the edge maps to a status.

pub mod backoff;
pub mod builtin;
pub mod cluster;
mod deadline;
pub mod entity;
pub mod error;
pub mod events;
pub mod hash;
pub mod metrics;
pub mod registry;
pub mod router;
pub mod runtime;
pub mod saga;
pub mod service;
pub mod shard;
pub mod store;
pub mod supervisor;
pub mod telemetry;
pub mod transport;

pub(crate) use builtin::system;
pub use builtin::{bench, echo, kv, probe};
pub use cluster::{
    Cluster, ClusterEvent, ClusterSettings, ClusterView, NodeId, NodeSpec, NodeStatus, PeerView,
};
pub use error::{ErrorKind, RuntimeError};
pub use registry::Registry;
pub use router::Router;
pub use runtime::{KilledMember, Runtime, RuntimeSettings, StoreSettings};
pub use service::{CallError, CallOptions, Service, ServiceSpec};

/// The result of runtime operations.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

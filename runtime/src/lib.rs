//! The generic actor runtime of Troupe. It knows nothing of orders, users or HTTP: it gives the
//! layers above it a cluster of nodes that find each other, notice failures and tell everyone.
//!
//! # Layout
//!
//! - [`cluster`]: membership over `ractor_cluster`: seeds from the configuration, a full mesh
//!   dialled with backoff, our own heartbeat failure detector, and [`ClusterEvent`]s.
//! - [`backoff`]: exponential backoff with jitter, as a pure function.
//! - [`supervisor`]: restart strategies, backoff and intensity limits over ractor supervision.
//! - [`error`]: [`RuntimeError`] and the [`ErrorKind`] the edge maps to a status.

pub mod backoff;
pub mod cluster;
pub mod error;
pub mod supervisor;

pub use cluster::{
    Cluster, ClusterEvent, ClusterSettings, ClusterView, NodeId, NodeSpec, NodeStatus, PeerView,
};
pub use error::{ErrorKind, RuntimeError};

/// The result of runtime operations.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

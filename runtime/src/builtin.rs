//! The built-in services every node runs, together: they are small, they use only what any
//! service may use, and they are the examples to copy.
//!
//! - [`echo`]: the diagnostic service (answers what it is sent, optionally after a delay).
//! - [`kv`]: the sharded, persistent key-value store, an entity per key.
//! - `system`: the node's own service (failure injection: kills at a bounded rate).
//! - [`bench`]: the throughput benchmark's driver (`POST /admin/bench`).
//! - [`probe`]: a publisher and a counting subscriber, the event bus end to end.

pub mod bench;
pub mod echo;
pub mod kv;
pub mod probe;
pub(crate) mod system;

//! `kv`: the built-in key-value service, and the smallest sharded, persistent service: the
//! example to copy when writing your own.
//!
//! Each shard is one actor that owns one keyspace (`kv/<shard>`). A `Put` applies the value with
//! the key's next version and answers only once the write is durable, without making the shard
//! wait for the disk: the shard goes on with its next request while the group commit runs, and
//! the answer leaves when it is done ([`RequestContext::reply_when_durable`]). A `Get` waits
//! until what it reads is durable, and answers with it. A shard keeps no state in memory beyond its
//! keyspace handle, so a restart (a crash, a kill) loses nothing: the next request reads from
//! disk.
//!
//! ```no_run
//! # async fn demo(runtime: &troupe_runtime::Runtime) -> Result<(), troupe_runtime::CallError> {
//! use troupe_runtime::kv::{Kv, KvRequest, KvResponse};
//! use troupe_runtime::CallOptions;
//!
//! let kv = runtime.router::<Kv>();
//! let put = KvRequest::Put { key: "color".into(), value: b"\"blue\"".to_vec() };
//! let KvResponse::Put { version } = kv.call_sharded(b"color", put, CallOptions::default()).await?
//! else { unreachable!() };
//! # Ok(()) }
//! ```

use serde::{Deserialize, Serialize};

use crate::service::{MemberInfo, RequestContext, Service, ServiceError};
use crate::store::{Keyspace, WriteBatch};

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// The largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// The kv service.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kv;

/// A request to a kv shard. Route it with [`crate::Router::call_sharded`] by the key's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvRequest {
    /// Store `value` at `key`.
    Put {
        /// The key (at most [`MAX_KEY_BYTES`]).
        key: String,
        /// The value (at most [`MAX_VALUE_BYTES`]).
        value: Vec<u8>,
    },
    /// Read `key`.
    Get {
        /// The key.
        key: String,
    },
}

/// A stored value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// 1 for the first put of a key, then one more per put.
    pub version: u64,
    /// The value.
    pub value: Vec<u8>,
}

/// A kv shard's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvResponse {
    /// The put is durable, as this version.
    Put {
        /// The key's new version.
        version: u64,
    },
    /// The key's durable value, if any.
    Get(Option<Versioned>),
    /// The request was refused (too large) or the store failed; nothing was stored.
    Failed(String),
}

impl Service for Kv {
    const NAME: &'static str = "kv";
    type Request = KvRequest;
    type Response = KvResponse;
    /// A shard's state is its keyspace: everything else is read from it.
    type State = Keyspace;

    async fn init(&self, member: &MemberInfo) -> Result<Keyspace, ServiceError> {
        member.keyspace().await
    }

    async fn handle(
        &self,
        keyspace: &mut Keyspace,
        request: KvRequest,
        cx: &RequestContext<'_>,
    ) -> KvResponse {
        match request {
            KvRequest::Put { key, value } => {
                if key.is_empty() || key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
                    return KvResponse::Failed("key or value out of bounds".into());
                }
                let version = match keyspace.get::<Versioned>(key.as_bytes()) {
                    Ok(current) => current.map_or(1, |v| v.version + 1),
                    Err(e) => return KvResponse::Failed(e.to_string()),
                };
                let mut batch = WriteBatch::new();
                if let Err(e) = batch.put(key.as_bytes(), &Versioned { version, value }) {
                    return KvResponse::Failed(e.to_string());
                }
                match keyspace.apply(batch) {
                    Ok(durable) => {
                        cx.reply_when_durable(durable);
                        KvResponse::Put { version }
                    }
                    Err(e) => KvResponse::Failed(e.to_string()),
                }
            }
            KvRequest::Get { key } => {
                // Whatever this shard shows must be durable: wait for the writes applied so
                // far (while the disk is full, for the writes in flight to settle).
                if let Err(e) = keyspace.durable().await {
                    return KvResponse::Failed(e.to_string());
                }
                match keyspace.get::<Versioned>(key.as_bytes()) {
                    Ok(found) => KvResponse::Get(found),
                    Err(e) => KvResponse::Failed(e.to_string()),
                }
            }
        }
    }
}

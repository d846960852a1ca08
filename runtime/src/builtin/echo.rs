//! `echo`: the built-in diagnostic service. Every member answers with the payload it got, its
//! node and slot, and how many requests it has handled; a request may ask it to wait first,
//! to stand in for a slow or stuck handler in deadline tests. `troupe bench` drives it.
//!
//! Echo honours the caller's deadline: a request whose deadline has passed when it is handled
//! does no work (it is not counted) and is answered with [`EchoError::DeadlinePassed`]; a
//! delayed echo waits until its delay or the deadline, whichever comes first, so a stuck
//! caller's abandoned requests do not keep a member busy.

use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};

use crate::service::{MemberInfo, RequestContext, Service, ServiceError};

/// The echo service.
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

/// A request to echo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoRequest {
    /// Sent back as is.
    #[serde(with = "bytes_as_slice")]
    pub payload: Vec<u8>,
    /// Wait this long before answering (0: answer at once).
    pub delay_ms: u32,
}

impl EchoRequest {
    /// A request that echoes `payload` at once.
    pub fn new(payload: Vec<u8>) -> Self {
        Self {
            payload,
            delay_ms: 0,
        }
    }
}

/// Echo's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EchoResponse {
    /// The request's payload.
    #[serde(with = "bytes_as_slice")]
    pub payload: Vec<u8>,
    /// The node of the member that answered.
    pub node: std::sync::Arc<str>,
    /// Its slot.
    pub index: u32,
    /// Requests this member has handled since it started, this one included.
    pub handled: u64,
}

/// Why echo did not answer with the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum EchoError {
    /// The caller's deadline passed before the echo was done: nobody waits for it any more.
    #[error("the deadline passed before the echo was done")]
    DeadlinePassed,
}

impl Service for Echo {
    const NAME: &'static str = "echo";
    type Request = EchoRequest;
    type Response = Result<EchoResponse, EchoError>;
    /// Requests handled, and the node's id (shared, not copied into every response).
    type State = (u64, std::sync::Arc<str>);

    async fn init(&self, member: &MemberInfo) -> Result<Self::State, ServiceError> {
        Ok((0, std::sync::Arc::from(member.node.as_str())))
    }

    async fn handle(
        &self,
        (handled, node): &mut Self::State,
        request: EchoRequest,
        cx: &RequestContext<'_>,
    ) -> Result<EchoResponse, EchoError> {
        if cx.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(EchoError::DeadlinePassed);
        }
        *handled += 1;
        if request.delay_ms > 0 {
            let done = Instant::now() + Duration::from_millis(u64::from(request.delay_ms));
            match cx.deadline {
                Some(deadline) if deadline < done => {
                    tokio::time::sleep_until(deadline).await;
                    return Err(EchoError::DeadlinePassed);
                }
                _ => tokio::time::sleep_until(done).await,
            }
        }
        Ok(EchoResponse {
            payload: request.payload,
            node: std::sync::Arc::clone(node),
            index: cx.member.index,
            handled: *handled,
        })
    }
}

/// Serializes bytes as one byte string rather than a sequence of numbers.
mod bytes_as_slice {
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

#[cfg(test)]
mod tests;

//! The link's wire format: frames of envelopes, little-endian, every length checked against
//! what is left before anything is allocated.
//!
//! ```text
//! frame    := len:u32 envelope*            (len counts the envelopes' bytes, 1..=max_frame)
//! envelope := 1 cast  | 2 call  | 3 reply
//! cast     := target service deadline trace payload
//! call     := corr:u64 target service deadline trace payload
//! reply    := corr:u64 status:u8 payload    (status 0: payload is the response; else an error)
//! target   := 0 | 1 pid:u64 | 2 slot:u32    (any member; that member or, if gone, another;
//!                                            exactly the member in that slot: see `Target`)
//! service  := len:u8 utf8
//! deadline := unix_us:u64                   (wall-clock deadline; 0: none)
//! trace    := 0 | 1 trace_id:[16] span_id:[8] flags:u8
//! payload  := len:u32 bytes
//! ```
//!
//! Deadlines are absolute wall-clock times, so that time a request spends in buffers, in a
//! frozen process or in a queue on either side is counted: a request that arrives after its
//! caller gave up is answered [`CallError::Expired`] and never handled. This assumes the nodes'
//! clocks agree to well within a deadline (NTP), as they do on one machine.

use std::sync::Arc;

use tokio::time::{Duration, Instant};

use crate::service::{CallError, Target};
use crate::telemetry::TraceContext;

const CAST: u8 = 1;
const CALL: u8 = 2;
const REPLY: u8 = 3;

/// Reply statuses on the wire.
const OK: u8 = 0;

/// One decoded envelope, borrowing its payload from the frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming<'a> {
    Request {
        correlation: Option<u64>,
        target: Target,
        service: &'a str,
        /// Wall-clock microseconds since the Unix epoch.
        deadline: Option<u64>,
        trace: Option<TraceContext>,
        payload: &'a [u8],
    },
    Reply {
        correlation: u64,
        result: Result<&'a [u8], CallError>,
    },
}

/// One envelope to send.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Request {
        correlation: Option<u64>,
        target: Target,
        service: Arc<str>,
        deadline: Option<Instant>,
        trace: Option<TraceContext>,
        payload: Vec<u8>,
    },
    Reply {
        correlation: u64,
        result: Result<Vec<u8>, CallError>,
    },
}

/// The time now on both clocks: the monotonic one deadlines are kept in, and the wall clock
/// they travel in. Read once per frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    pub(crate) mono: Instant,
    /// Microseconds since the Unix epoch.
    pub(crate) wall_us: u64,
}

impl Now {
    pub(crate) fn read() -> Self {
        let wall_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        Self {
            mono: Instant::now(),
            wall_us,
        }
    }

    /// `deadline` on the wall clock.
    pub(crate) fn wall_of(self, deadline: Instant) -> u64 {
        let left = deadline.saturating_duration_since(self.mono);
        self.wall_us
            .saturating_add(u64::try_from(left.as_micros()).unwrap_or(u64::MAX))
    }

    /// A wall-clock deadline on the monotonic clock, or `None` if it has passed.
    pub(crate) fn mono_of(self, deadline_us: u64) -> Option<Instant> {
        let left = deadline_us.checked_sub(self.wall_us).filter(|l| *l > 0)?;
        Some(self.mono + Duration::from_micros(left))
    }
}

/// Why bytes from a peer were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    #[error("truncated envelope")]
    Truncated,
    #[error("unknown envelope kind {0}")]
    UnknownKind(u8),
    #[error("service name is not UTF-8")]
    BadServiceName,
    #[error("unknown reply status {0}")]
    BadStatus(u8),
    #[error("malformed error payload")]
    BadError,
    #[error("unknown target kind {0}")]
    BadTarget(u8),
}

impl Outgoing {
    /// Appends this envelope to `buf`. A request whose deadline has passed is not written:
    /// returns `false`.
    pub(crate) fn encode(&self, buf: &mut Vec<u8>, now: Now) -> bool {
        match self {
            Self::Request {
                correlation,
                target,
                service,
                deadline,
                trace,
                payload,
            } => {
                let deadline_us = match deadline {
                    Some(d) => {
                        if *d <= now.mono {
                            return false;
                        }
                        now.wall_of(*d).max(1)
                    }
                    None => 0,
                };
                match correlation {
                    Some(c) => {
                        buf.push(CALL);
                        buf.extend_from_slice(&c.to_le_bytes());
                    }
                    None => buf.push(CAST),
                }
                match target {
                    Target::Any => buf.push(0),
                    Target::Pick(pid) => {
                        buf.push(1);
                        buf.extend_from_slice(&pid.to_le_bytes());
                    }
                    Target::Slot(slot) => {
                        buf.push(2);
                        buf.extend_from_slice(&slot.to_le_bytes());
                    }
                }
                let name = service.as_bytes();
                let len = name.len().min(255);
                buf.push(len as u8);
                buf.extend_from_slice(&name[..len]);
                buf.extend_from_slice(&deadline_us.to_le_bytes());
                match trace {
                    Some(t) => {
                        buf.push(1);
                        buf.extend_from_slice(&t.trace_id);
                        buf.extend_from_slice(&t.span_id);
                        buf.push(u8::from(t.sampled));
                    }
                    None => buf.push(0),
                }
                put_payload(buf, payload);
            }
            Self::Reply {
                correlation,
                result,
            } => {
                buf.push(REPLY);
                buf.extend_from_slice(&correlation.to_le_bytes());
                match result {
                    Ok(payload) => {
                        buf.push(OK);
                        put_payload(buf, payload);
                    }
                    Err(e) => {
                        buf.push(1);
                        let bytes = crate::service::encode(e).unwrap_or_default();
                        put_payload(buf, &bytes);
                    }
                }
            }
        }
        true
    }
}

fn put_payload(buf: &mut Vec<u8>, payload: &[u8]) {
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Reads envelopes out of one frame's bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.bytes.len() < n {
            return Err(WireError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn payload(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    /// The next envelope, or `None` at the end of the frame.
    pub(crate) fn next_envelope(&mut self) -> Option<Result<Incoming<'a>, WireError>> {
        if self.bytes.is_empty() {
            return None;
        }
        Some(self.envelope())
    }

    fn envelope(&mut self) -> Result<Incoming<'a>, WireError> {
        match self.u8()? {
            kind @ (CAST | CALL) => {
                let correlation = if kind == CALL {
                    Some(self.u64()?)
                } else {
                    None
                };
                let target = match self.u8()? {
                    0 => Target::Any,
                    1 => Target::Pick(self.u64()?),
                    2 => Target::Slot(self.u32()?),
                    other => return Err(WireError::BadTarget(other)),
                };
                let len = self.u8()? as usize;
                let service =
                    std::str::from_utf8(self.take(len)?).map_err(|_| WireError::BadServiceName)?;
                let deadline = match self.u64()? {
                    0 => None,
                    us => Some(us),
                };
                let trace = match self.u8()? {
                    0 => None,
                    _ => {
                        let mut trace_id = [0u8; 16];
                        trace_id.copy_from_slice(self.take(16)?);
                        let mut span_id = [0u8; 8];
                        span_id.copy_from_slice(self.take(8)?);
                        let sampled = self.u8()? & 1 == 1;
                        Some(TraceContext {
                            trace_id,
                            span_id,
                            sampled,
                        })
                    }
                };
                let payload = self.payload()?;
                Ok(Incoming::Request {
                    correlation,
                    target,
                    service,
                    deadline,
                    trace,
                    payload,
                })
            }
            REPLY => {
                let correlation = self.u64()?;
                let status = self.u8()?;
                let payload = self.payload()?;
                let result = match status {
                    OK => Ok(payload),
                    1 => Err(crate::service::decode::<CallError>(payload)
                        .map_err(|_| WireError::BadError)?),
                    other => return Err(WireError::BadStatus(other)),
                };
                Ok(Incoming::Reply {
                    correlation,
                    result,
                })
            }
            other => Err(WireError::UnknownKind(other)),
        }
    }
}

#[cfg(test)]
mod tests;

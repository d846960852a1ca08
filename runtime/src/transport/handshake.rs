//! Mutual authentication of a link with the cluster cookie: the Noise protocol
//! (`Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`, through the `snow` crate), keyed by a pre-shared key
//! derived from the cookie.
//!
//! ```text
//! dialer   -> acceptor: "TRPL" version:u16 id_d id_a      (in clear: who calls whom)
//! dialer   -> acceptor: len:u16 noise(-> psk, e)           (sealed empty payload: proves the key)
//! acceptor -> dialer:   len:u16 noise(<- e, ee)            (sealed empty payload: proves the key)
//! dialer   -> acceptor: the first sealed chunk: CONFIRM    (proves the dialer is live, not a replay)
//! id       := len:u8 utf8 (a configured node id)
//! prologue := "troupe/link/v2" id_d id_a                  (both ids, each with its length)
//! psk      := PBKDF2-HMAC-SHA256(cookie, salt, 600,000 iterations), once per process
//! ```
//!
//! # What this gives, and to whom
//!
//! - The acceptor sends nothing before the dialer's first Noise message has verified, and that
//!   message can only be made with the key: a stranger who connects learns nothing keyed by the
//!   cookie (the old handshake's acceptor sent its MAC first, an offline guessing oracle).
//! - A recorded first message replayed later gets an answer keyed by a fresh ephemeral key the
//!   replayer does not have, and no link: the acceptor installs a link only once the dialer's
//!   first sealed chunk (which needs that ephemeral secret) has arrived.
//! - Forward secrecy: the traffic keys come from ephemeral Diffie-Hellman; a cookie that leaks
//!   later does not open recorded traffic.
//! - Whoever sees a handshake (on path) can still test cookie guesses offline against the
//!   dialer's first message: every pre-shared-key protocol without a PAKE allows it. The slow,
//!   salted derivation of the key makes each guess cost what a PBKDF2 of 600,000 rounds costs;
//!   a long random cookie makes the search hopeless.
//!
//! Constant-time comparison of tags comes from the library. Every read is bounded (ids at most
//! 255 bytes, Noise messages at most 65535) and the caller puts a deadline on the whole exchange.

use std::num::NonZeroU32;
use std::sync::Arc;

use snow::StatelessTransportState;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::seal::{Opener, SealError, Sealer};
use crate::cluster::NodeId;

const MAGIC: &[u8; 4] = b"TRPL";
/// Version 1 was the HMAC handshake with unsealed frames.
const VERSION: u16 = 2;
const PATTERN: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
const PROLOGUE_LABEL: &[u8] = b"troupe/link/v2";
/// The plaintext of the dialer's first sealed chunk.
const CONFIRM: &[u8] = b"troupe/link/confirm";
/// Domain separation for the key derivation: a table built for another protocol's use of the
/// same cookie (or of common passwords under plain PBKDF2) does not apply here.
const PSK_SALT: &[u8] = b"troupe/link/psk/v1/pbkdf2-hmac-sha256";
/// OWASP's 2023 figure for PBKDF2-HMAC-SHA256: about 0.2 s of one core, once per process.
const PSK_ITERATIONS: u32 = 600_000;
/// A Noise handshake message here is 48 bytes; anything longer is refused before reading it.
const MAX_HANDSHAKE_MESSAGE: usize = 1024;

/// The link key, derived from the cluster cookie. Never printed.
#[derive(Clone)]
pub(crate) struct Psk([u8; 32]);

impl std::fmt::Debug for Psk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Psk(..)")
    }
}

impl Psk {
    /// Derives the key from `cookie`: slow on purpose (see the module docs), run it off the
    /// async threads and once.
    pub(crate) fn derive(cookie: &str) -> Self {
        Self::derive_with(cookie, PSK_ITERATIONS)
    }

    fn derive_with(cookie: &str, iterations: u32) -> Self {
        let mut key = [0u8; 32];
        let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
        aws_lc_rs::pbkdf2::derive(
            aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
            iterations,
            PSK_SALT,
            cookie.as_bytes(),
            &mut key,
        );
        Self(key)
    }

    /// A cheap key for unit tests.
    #[cfg(test)]
    pub(crate) fn for_test(cookie: &str) -> Self {
        Self::derive_with(cookie, 1)
    }
}

/// The traffic keys of an authenticated link, with each direction's next nonce.
pub(crate) struct Keys {
    pub(crate) sealer: Sealer,
    pub(crate) opener: Opener,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a troupe link (bad magic)")]
    BadMagic,
    #[error("unsupported link protocol version {0}")]
    BadVersion(u16),
    #[error("peer id is not valid UTF-8")]
    BadId,
    #[error("peer {0:?} is not a configured node")]
    UnknownPeer(String),
    #[error("the dialer wants node {wanted}, this is {me}")]
    WrongPeer { wanted: String, me: String },
    #[error("handshake message of {0} bytes is too long")]
    TooLong(usize),
    #[error("authentication failed (wrong cluster cookie?)")]
    BadKey,
    #[error("noise: {0}")]
    Noise(String),
}

impl From<snow::Error> for HandshakeError {
    fn from(e: snow::Error) -> Self {
        match e {
            snow::Error::Decrypt => Self::BadKey,
            other => Self::Noise(other.to_string()),
        }
    }
}

impl From<SealError> for HandshakeError {
    fn from(e: SealError) -> Self {
        match e {
            SealError::Io(e) => Self::Io(e),
            _ => Self::BadKey,
        }
    }
}

fn push_id(buf: &mut Vec<u8>, id: &str) {
    let id = id.as_bytes();
    let len = id.len().min(255);
    buf.push(len as u8);
    buf.extend_from_slice(&id[..len]);
}

fn prologue(dialer: &str, acceptor: &str) -> Vec<u8> {
    let mut p = PROLOGUE_LABEL.to_vec();
    push_id(&mut p, dialer);
    push_id(&mut p, acceptor);
    p
}

fn builder<'a>(psk: &'a Psk, prologue: &'a [u8]) -> Result<snow::Builder<'a>, HandshakeError> {
    let params: snow::params::NoiseParams = PATTERN
        .parse()
        .map_err(|e: snow::Error| HandshakeError::Noise(e.to_string()))?;
    Ok(snow::Builder::new(params)
        .psk(0, &psk.0)?
        .prologue(prologue)?)
}

async fn read_id<R: AsyncRead + Unpin>(r: &mut R) -> Result<String, HandshakeError> {
    let len = r.read_u8().await? as usize;
    let mut id = vec![0u8; len];
    r.read_exact(&mut id).await?;
    String::from_utf8(id).map_err(|_| HandshakeError::BadId)
}

async fn write_message<W: AsyncWrite + Unpin>(w: &mut W, msg: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(2 + msg.len());
    buf.extend_from_slice(&(msg.len() as u16).to_le_bytes());
    buf.extend_from_slice(msg);
    w.write_all(&buf).await?;
    w.flush().await
}

async fn read_message<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, HandshakeError> {
    let len = r.read_u16_le().await? as usize;
    if len > MAX_HANDSHAKE_MESSAGE {
        return Err(HandshakeError::TooLong(len));
    }
    let mut msg = vec![0u8; len];
    r.read_exact(&mut msg).await?;
    Ok(msg)
}

fn keys(state: StatelessTransportState) -> Keys {
    let state = Arc::new(state);
    Keys {
        sealer: Sealer::new(Arc::clone(&state)),
        opener: Opener::new(state),
    }
}

/// Authenticates an outgoing link to `expected`; returns its traffic keys.
pub(crate) async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: &NodeId,
    expected: &NodeId,
    psk: &Psk,
) -> Result<Keys, HandshakeError> {
    let prologue = prologue(me.as_str(), expected.as_str());
    let mut noise = builder(psk, &prologue)?.build_initiator()?;
    let mut buf = vec![0u8; MAX_HANDSHAKE_MESSAGE];
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    push_id(&mut out, me.as_str());
    push_id(&mut out, expected.as_str());
    let n = noise.write_message(&[], &mut buf)?;
    out.extend_from_slice(&(n as u16).to_le_bytes());
    out.extend_from_slice(&buf[..n]);
    stream.write_all(&out).await?;
    stream.flush().await?;
    let answer = read_message(stream).await?;
    noise.read_message(&answer, &mut buf)?;
    let mut keys = keys(noise.into_stateless_transport_mode()?);
    let confirm = keys.sealer.seal(CONFIRM)?;
    stream.write_all(confirm).await?;
    stream.flush().await?;
    Ok(keys)
}

/// Authenticates an incoming link; returns the peer's id and the traffic keys. `known` maps a
/// claimed id to a configured peer.
pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: &NodeId,
    psk: &Psk,
    known: impl Fn(&str) -> Option<NodeId>,
) -> Result<(NodeId, Keys), HandshakeError> {
    let mut magic = [0u8; 4];
    stream.read_exact(&mut magic).await?;
    if &magic != MAGIC {
        return Err(HandshakeError::BadMagic);
    }
    let version = stream.read_u16_le().await?;
    if version != VERSION {
        return Err(HandshakeError::BadVersion(version));
    }
    let claimed = read_id(stream).await?;
    let wanted = read_id(stream).await?;
    let Some(peer) = known(&claimed).filter(|p| p != me) else {
        return Err(HandshakeError::UnknownPeer(claimed));
    };
    if wanted != me.as_str() {
        return Err(HandshakeError::WrongPeer {
            wanted,
            me: me.to_string(),
        });
    }
    let prologue = prologue(peer.as_str(), me.as_str());
    let mut noise = builder(psk, &prologue)?.build_responder()?;
    let mut buf = vec![0u8; MAX_HANDSHAKE_MESSAGE];
    // Nothing is sent before this message, which only a holder of the key can make, verifies.
    let first = read_message(stream).await?;
    noise.read_message(&first, &mut buf)?;
    let n = noise.write_message(&[], &mut buf)?;
    write_message(stream, &buf[..n]).await?;
    let mut keys = keys(noise.into_stateless_transport_mode()?);
    let confirm = keys.opener.read_chunk(stream).await?;
    if confirm != CONFIRM {
        return Err(HandshakeError::BadKey);
    }
    Ok((peer, keys))
}

#[cfg(test)]
mod tests;

//! Mutual authentication of a link with the cluster cookie, without sending it.
//!
//! ```text
//! dialer   -> acceptor: "TRPL" version:u16 id nonce_d:[32]
//! acceptor -> dialer:   "TRPL" version:u16 id nonce_a:[32] mac_a:[32]
//! dialer   -> acceptor: mac_d:[32]
//! acceptor -> dialer:   0x01
//! id    := len:u8 utf8 (a configured node id)
//! mac_a := HMAC-SHA256(cookie, "troupe/link/acceptor" nonce_d nonce_a id_a id_d)
//! mac_d := HMAC-SHA256(cookie, "troupe/link/dialer"   nonce_a nonce_d id_d id_a)
//! ```
//!
//! Each side proves it knows the cookie by a MAC over both fresh nonces, so a recorded
//! handshake cannot be replayed and a stranger learns nothing about the cookie. Every read is
//! bounded (an id is at most 255 bytes) and the whole exchange has a deadline.

use aws_lc_rs::hmac;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::cluster::NodeId;

const MAGIC: &[u8; 4] = b"TRPL";
const VERSION: u16 = 1;
const ACCEPTED: u8 = 1;

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
    #[error("expected node {expected}, reached {actual}")]
    WrongPeer { expected: String, actual: String },
    #[error("authentication failed (wrong cluster cookie?)")]
    BadMac,
}

struct Hello {
    id: String,
    nonce: [u8; 32],
}

async fn write_hello<W: AsyncWrite + Unpin>(
    w: &mut W,
    id: &NodeId,
    nonce: &[u8; 32],
    mac: Option<&[u8]>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(128);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&VERSION.to_le_bytes());
    let id = id.as_str().as_bytes();
    buf.push(id.len() as u8);
    buf.extend_from_slice(id);
    buf.extend_from_slice(nonce);
    if let Some(mac) = mac {
        buf.extend_from_slice(mac);
    }
    w.write_all(&buf).await?;
    w.flush().await
}

async fn read_hello<R: AsyncRead + Unpin>(r: &mut R) -> Result<Hello, HandshakeError> {
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic).await?;
    if &magic != MAGIC {
        return Err(HandshakeError::BadMagic);
    }
    let version = r.read_u16_le().await?;
    if version != VERSION {
        return Err(HandshakeError::BadVersion(version));
    }
    let len = r.read_u8().await? as usize;
    let mut id = vec![0u8; len];
    r.read_exact(&mut id).await?;
    let id = String::from_utf8(id).map_err(|_| HandshakeError::BadId)?;
    let mut nonce = [0u8; 32];
    r.read_exact(&mut nonce).await?;
    Ok(Hello { id, nonce })
}

fn mac(cookie: &[u8], label: &[u8], parts: &[&[u8]]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA256, cookie);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(label);
    for part in parts {
        ctx.update(&[part.len() as u8]);
        ctx.update(part);
    }
    ctx.sign()
}

fn verify(cookie: &[u8], label: &[u8], parts: &[&[u8]], tag: &[u8]) -> Result<(), HandshakeError> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, cookie);
    let mut msg = Vec::with_capacity(256);
    msg.extend_from_slice(label);
    for part in parts {
        msg.push(part.len() as u8);
        msg.extend_from_slice(part);
    }
    hmac::verify(&key, &msg, tag).map_err(|_| HandshakeError::BadMac)
}

/// Authenticates an outgoing link to `expected`.
pub(crate) async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: &NodeId,
    expected: &NodeId,
    cookie: &[u8],
) -> Result<(), HandshakeError> {
    let nonce_d: [u8; 32] = rand::random();
    write_hello(stream, me, &nonce_d, None).await?;
    let hello = read_hello(stream).await?;
    if hello.id != expected.as_str() {
        return Err(HandshakeError::WrongPeer {
            expected: expected.to_string(),
            actual: hello.id,
        });
    }
    let mut mac_a = [0u8; 32];
    stream.read_exact(&mut mac_a).await?;
    let (id_a, id_d) = (hello.id.as_bytes(), me.as_str().as_bytes());
    verify(
        cookie,
        b"troupe/link/acceptor",
        &[&nonce_d, &hello.nonce, id_a, id_d],
        &mac_a,
    )?;
    let mac_d = mac(
        cookie,
        b"troupe/link/dialer",
        &[&hello.nonce, &nonce_d, id_d, id_a],
    );
    stream.write_all(mac_d.as_ref()).await?;
    stream.flush().await?;
    match stream.read_u8().await? {
        ACCEPTED => Ok(()),
        _ => Err(HandshakeError::BadMac),
    }
}

/// Authenticates an incoming link; returns the peer's id. `known` maps a claimed id to a
/// configured peer.
pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    me: &NodeId,
    cookie: &[u8],
    known: impl Fn(&str) -> Option<NodeId>,
) -> Result<NodeId, HandshakeError> {
    let hello = read_hello(stream).await?;
    let Some(peer) = known(&hello.id).filter(|p| p != me) else {
        return Err(HandshakeError::UnknownPeer(hello.id));
    };
    let nonce_a: [u8; 32] = rand::random();
    let (id_a, id_d) = (me.as_str().as_bytes(), peer.as_str().as_bytes());
    let mac_a = mac(
        cookie,
        b"troupe/link/acceptor",
        &[&hello.nonce, &nonce_a, id_a, id_d],
    );
    write_hello(stream, me, &nonce_a, Some(mac_a.as_ref())).await?;
    let mut mac_d = [0u8; 32];
    stream.read_exact(&mut mac_d).await?;
    verify(
        cookie,
        b"troupe/link/dialer",
        &[&nonce_a, &hello.nonce, id_d, id_a],
        &mac_d,
    )?;
    stream.write_all(&[ACCEPTED]).await?;
    stream.flush().await?;
    Ok(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        NodeId::try_new(s).unwrap()
    }

    async fn run(
        dial_cookie: &[u8],
        accept_cookie: &[u8],
        dial_as: &str,
        expect: &str,
    ) -> (Result<(), HandshakeError>, Result<NodeId, HandshakeError>) {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let known = |claimed: &str| ["n1", "n2"].contains(&claimed).then(|| id(claimed));
        let (me_d, exp) = (id(dial_as), id(expect));
        let me_a = id("n2");
        // Each side drops its end when done, as a real connection would be closed.
        tokio::join!(
            async {
                let r = dial(&mut a, &me_d, &exp, dial_cookie).await;
                drop(a);
                r
            },
            async {
                let r = accept(&mut b, &me_a, accept_cookie, known).await;
                drop(b);
                r
            }
        )
    }

    #[tokio::test]
    async fn the_same_cookie_authenticates_both_ways() {
        let (d, a) = run(b"cookie-cookie-cookie", b"cookie-cookie-cookie", "n1", "n2").await;
        d.unwrap();
        assert_eq!(a.unwrap(), id("n1"));
    }

    #[tokio::test]
    async fn a_different_cookie_fails_on_both_sides() {
        let (d, a) = run(b"cookie-cookie-cookie", b"another-cookie-here", "n1", "n2").await;
        assert!(matches!(d, Err(HandshakeError::BadMac)), "{d:?}");
        assert!(a.is_err());
    }

    #[tokio::test]
    async fn unknown_or_unexpected_peers_are_refused() {
        let (_, a) = run(b"cookie-cookie-cookie", b"cookie-cookie-cookie", "n9", "n2").await;
        assert!(matches!(a, Err(HandshakeError::UnknownPeer(p)) if p == "n9"));
        let (d, _) = run(b"cookie-cookie-cookie", b"cookie-cookie-cookie", "n1", "n3").await;
        assert!(matches!(d, Err(HandshakeError::WrongPeer { .. })), "{d:?}");
    }

    #[tokio::test]
    async fn garbage_is_refused() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        a.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let r = accept(&mut b, &id("n2"), b"cookie", |_| None).await;
        assert!(matches!(r, Err(HandshakeError::BadMagic)));
    }
}

//! A raw link client for black-box tests (feature `testsuite`): it completes the real
//! handshake with a node's link port, then writes calls and never reads, as a misbehaving (or
//! hostile but authenticated) peer would. Not part of the runtime's API.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Duration;

use super::handshake::{self, Psk};
use super::seal::Sealer;
use super::wire::Outgoing;
use crate::cluster::NodeId;
use crate::service::Target;

/// An authenticated link to a node, driven by hand.
#[doc(hidden)]
pub struct RawLink {
    stream: TcpStream,
    sealer: Sealer,
    next_correlation: u64,
}

impl std::fmt::Debug for RawLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawLink").finish_non_exhaustive()
    }
}

impl RawLink {
    /// Dials `addr` as node `me`, expecting node `peer` there, with the cluster `cookie`.
    pub async fn connect(
        addr: SocketAddr,
        me: &str,
        peer: &str,
        cookie: &str,
    ) -> std::io::Result<Self> {
        let cookie = cookie.to_string();
        let psk = tokio::task::spawn_blocking(move || Psk::derive(&cookie)).await?;
        let me = NodeId::try_new(me).map_err(std::io::Error::other)?;
        let peer = NodeId::try_new(peer).map_err(std::io::Error::other)?;
        let mut stream = TcpStream::connect(addr).await?;
        let keys = handshake::dial(&mut stream, &me, &peer, &psk)
            .await
            .map_err(std::io::Error::other)?;
        Ok(Self {
            stream,
            sealer: keys.sealer,
            next_correlation: 1,
        })
    }

    /// Writes one frame of `count` calls to any member of `service`, each carrying `request`
    /// and a deadline a minute away. Blocks while the node does not read; fails once the node
    /// has closed the link.
    pub async fn send_calls<T: Serialize>(
        &mut self,
        service: &str,
        request: &T,
        count: usize,
    ) -> std::io::Result<()> {
        let payload = crate::service::encode(request).map_err(std::io::Error::other)?;
        let service: Arc<str> = Arc::from(service);
        let now = super::wire::Now::read();
        let mut frame = vec![0u8; 4];
        for _ in 0..count {
            let envelope = Outgoing::Request {
                correlation: Some(self.next_correlation),
                target: Target::Any,
                service: Arc::clone(&service),
                deadline: Some(now.mono + Duration::from_secs(60)),
                trace: None,
                payload: payload.clone(),
            };
            envelope.encode(&mut frame, now);
            self.next_correlation += 1;
        }
        let len = u32::try_from(frame.len() - 4).map_err(std::io::Error::other)?;
        frame[..4].copy_from_slice(&len.to_le_bytes());
        let sealed = self.sealer.seal(&frame).map_err(std::io::Error::other)?;
        self.stream.write_all(sealed).await
    }
}

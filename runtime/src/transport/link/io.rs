//! The link's two tasks: the reader (open chunks, cut frames) and the writer (batch, seal,
//! write with a timeout).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;

use super::super::Core;
use super::super::seal::{Opener, Sealer};
use super::super::wire::{Now, Outgoing};
use super::{Link, MAX_BATCH_BYTES, MAX_YIELDS, QueuedReply, READ_CHUNK, dispatch};

/// Reads sealed chunks, opens them and hands each whole frame to [`dispatch`]; a chunk that
/// fails to open, or a frame length out of bounds, closes the link.
pub(super) async fn read_loop<R: AsyncRead + Unpin>(
    link: Link,
    mut read: R,
    mut opener: Opener,
    mut closing: watch::Receiver<bool>,
    core: Arc<Core>,
) {
    let max_frame = core.settings.max_frame_bytes;
    // Frames are split off this buffer of opened bytes without copying; their payloads are
    // handed on as slices of it.
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let reason = 'reading: loop {
        // Bytes read with the handshake's last message, or by the read below.
        if let Err(e) = opener.open_into(&mut buf) {
            core.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %link.peer(), error = %e, "link traffic failed authentication: dropping the link");
            break format!("bad chunk: {e}");
        }
        while buf.len() >= 4 {
            let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if len == 0 || len > max_frame {
                core.stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(peer = %link.peer(), len, max_frame, "frame length out of bounds: dropping the link");
                break 'reading format!("bad frame length {len}");
            }
            if buf.len() < 4 + len {
                buf.reserve(4 + len - buf.len());
                break;
            }
            buf.advance(4);
            let frame = buf.split_to(len).freeze();
            if !dispatch(&link, frame, &core, &mut closing).await {
                break 'reading "closing".to_string();
            }
        }
        let sealed = opener.sealed_buf();
        if sealed.capacity() - sealed.len() < READ_CHUNK / 4 {
            sealed.reserve(READ_CHUNK);
        }
        tokio::select! {
            biased;
            _ = closing.wait_for(|closed| *closed) => break "closing".to_string(),
            read = read.read_buf(sealed) => match read {
                Ok(0) => break "connection closed by peer".to_string(),
                Ok(_) => {}
                Err(e) => break format!("read failed: {e}"),
            },
        }
    };
    link.close(&reason);
    core.forget_link(&link);
}

/// Writes what is queued, batched into frames, sealed; see the parent module.
pub(super) async fn write_loop<W: AsyncWrite + Unpin>(
    link: Link,
    mut write: W,
    mut sealer: Sealer,
    mut requests: mpsc::Receiver<Outgoing>,
    mut replies: mpsc::UnboundedReceiver<QueuedReply>,
    mut closing: watch::Receiver<bool>,
    core: Arc<Core>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let reason = loop {
        let first = tokio::select! {
            biased;
            _ = closing.wait_for(|closed| *closed) => break "closing",
            r = replies.recv() => r.map(|r| r.envelope),
            r = requests.recv() => r,
        };
        let Some(first) = first else {
            break "queue closed";
        };
        // With several calls in flight on this link, the caller that woke us likely has
        // siblings about to send too (callers woken by one frame of replies), and tokio runs
        // the woken writer before them. Let them run first, so their envelopes share this
        // frame: one system call instead of many. A lone call does not wait.
        if link.inner.in_flight.load(Ordering::Relaxed) > 1 {
            tokio::task::yield_now().await;
        }
        let now = Now::read();
        buf.clear();
        buf.extend_from_slice(&[0; 4]);
        let mut num_envelopes = u64::from(first.encode(&mut buf, now));
        let mut yields = 0;
        loop {
            let before = num_envelopes;
            while buf.len() < MAX_BATCH_BYTES {
                let next = match replies.try_recv() {
                    Ok(r) => r.envelope,
                    Err(_) => match requests.try_recv() {
                        Ok(r) => r,
                        Err(_) => break,
                    },
                };
                num_envelopes += u64::from(next.encode(&mut buf, now));
            }
            // Under load (more than one envelope was waiting), let the other tasks of this
            // node run before writing, as long as that brings more envelopes: what they queue
            // meanwhile joins this frame, one system call instead of several. An idle link
            // writes its single envelope at once.
            let grew = yields == 0 || num_envelopes > before;
            if num_envelopes < 2 || !grew || yields >= MAX_YIELDS || buf.len() >= MAX_BATCH_BYTES {
                break;
            }
            yields += 1;
            tokio::task::yield_now().await;
        }
        if num_envelopes == 0 {
            continue;
        }
        let len = (buf.len() - 4) as u32;
        buf[..4].copy_from_slice(&len.to_le_bytes());
        let sealed = match sealer.seal(&buf) {
            Ok(sealed) => sealed,
            Err(e) => {
                tracing::warn!(peer = %link.peer(), error = %e, "sealing a frame failed");
                break "sealing failed";
            }
        };
        let written = tokio::select! {
            biased;
            _ = closing.wait_for(|closed| *closed) => break "closing",
            w = timeout(core.settings.write_timeout, write.write_all(sealed)) => w,
        };
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(peer = %link.peer(), error = %e, "link write failed");
                break "write failed";
            }
            Err(_) => {
                let timeout_ms =
                    u64::try_from(core.settings.write_timeout.as_millis()).unwrap_or(u64::MAX);
                tracing::warn!(peer = %link.peer(), timeout_ms, "a frame could not be written in time: the peer does not read");
                break "write timed out";
            }
        }
        core.stats.frames_sent.fetch_add(1, Ordering::Relaxed);
        core.stats
            .envelopes_sent
            .fetch_add(num_envelopes, Ordering::Relaxed);
        if buf.capacity() > 4 * MAX_BATCH_BYTES {
            buf = Vec::with_capacity(64 * 1024);
        }
        sealer.shrink(4 * MAX_BATCH_BYTES);
    };
    link.close(reason);
    core.forget_link(&link);
}

//! Sealed traffic: after the handshake every byte of a link travels inside Noise transport
//! messages ("chunks"), each encrypted and authenticated with the link's keys.
//!
//! ```text
//! chunk := len:u16 ciphertext     (len = plaintext + 16-byte tag, 17..=65535)
//! ```
//!
//! The plaintexts of successive chunks form one byte stream, cut anywhere, over which the
//! frames of [`super::wire`] are laid as before: a frame larger than a Noise message simply
//! spans several chunks. Nonces are implicit (the count of chunks so far in that direction), so
//! a flipped bit, or a chunk dropped, reordered, replayed or injected, fails to open, and the
//! link is closed instead of anything being delivered.
//!
//! Both directions share one [`StatelessTransportState`] (read-only), each side keeping its own
//! nonce, so the reader and writer tasks need no lock.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use snow::StatelessTransportState;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The authentication tag of every chunk.
const TAG: usize = 16;
/// The largest Noise message.
const MAX_CHUNK: usize = 65535;
/// The most plaintext one chunk carries.
pub(crate) const MAX_PLAIN: usize = MAX_CHUNK - TAG;

/// Why sealed bytes could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SealError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("a chunk of {0} bytes is shorter than its tag")]
    Short(usize),
    #[error("a chunk failed authentication")]
    Open,
    #[error("sealing failed: {0}")]
    Seal(snow::Error),
}

/// Seals outgoing plaintext.
pub(crate) struct Sealer {
    keys: Arc<StatelessTransportState>,
    nonce: u64,
    out: Vec<u8>,
}

impl Sealer {
    pub(crate) fn new(keys: Arc<StatelessTransportState>) -> Self {
        Self {
            keys,
            nonce: 0,
            out: Vec::new(),
        }
    }

    /// Seals `plain` as consecutive chunks; returns the bytes to write.
    pub(crate) fn seal(&mut self, plain: &[u8]) -> Result<&[u8], SealError> {
        self.out.clear();
        let chunks = plain.len().div_ceil(MAX_PLAIN);
        self.out.reserve(plain.len() + chunks * (2 + TAG));
        for piece in plain.chunks(MAX_PLAIN) {
            let len = piece.len() + TAG;
            self.out.extend_from_slice(&(len as u16).to_le_bytes());
            let start = self.out.len();
            self.out.resize(start + len, 0);
            self.keys
                .write_message(self.nonce, piece, &mut self.out[start..])
                .map_err(SealError::Seal)?;
            self.nonce += 1;
        }
        Ok(&self.out)
    }

    /// Gives back memory a large frame left behind.
    pub(crate) fn shrink(&mut self, keep: usize) {
        if self.out.capacity() > keep {
            self.out = Vec::with_capacity(keep);
        }
    }
}

/// Opens incoming chunks.
pub(crate) struct Opener {
    keys: Arc<StatelessTransportState>,
    nonce: u64,
    /// Bytes read from the socket, not yet opened: at most one partial chunk plus one read.
    sealed: BytesMut,
}

impl Opener {
    pub(crate) fn new(keys: Arc<StatelessTransportState>) -> Self {
        Self {
            keys,
            nonce: 0,
            sealed: BytesMut::new(),
        }
    }

    /// The buffer the socket is read into.
    pub(crate) fn sealed_buf(&mut self) -> &mut BytesMut {
        &mut self.sealed
    }

    /// Opens the next whole chunk buffered, appending its plaintext to `plain`; `Ok(false)` if
    /// no whole chunk is buffered.
    fn open_one(&mut self, plain: &mut BytesMut) -> Result<bool, SealError> {
        if self.sealed.len() < 2 {
            return Ok(false);
        }
        let len = usize::from(u16::from_le_bytes([self.sealed[0], self.sealed[1]]));
        if len < TAG {
            return Err(SealError::Short(len));
        }
        if self.sealed.len() < 2 + len {
            self.sealed.reserve(2 + len - self.sealed.len());
            return Ok(false);
        }
        let start = plain.len();
        plain.resize(start + len - TAG, 0);
        let opened =
            self.keys
                .read_message(self.nonce, &self.sealed[2..2 + len], &mut plain[start..]);
        match opened {
            Ok(n) => plain.truncate(start + n),
            Err(_) => {
                plain.truncate(start);
                return Err(SealError::Open);
            }
        }
        self.nonce += 1;
        self.sealed.advance(2 + len);
        Ok(true)
    }

    /// Opens every whole chunk buffered, appending the plaintext to `plain`.
    pub(crate) fn open_into(&mut self, plain: &mut BytesMut) -> Result<(), SealError> {
        while self.open_one(plain)? {}
        Ok(())
    }

    /// Reads and opens exactly one chunk (the handshake's confirmation), leaving whatever
    /// follows it buffered.
    pub(crate) async fn read_chunk<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
    ) -> Result<Vec<u8>, SealError> {
        let mut plain = BytesMut::new();
        loop {
            if self.open_one(&mut plain)? {
                return Ok(plain.to_vec());
            }
            if self.sealed.capacity() - self.sealed.len() < 1024 {
                self.sealed.reserve(4096);
            }
            if r.read_buf(&mut self.sealed).await? == 0 {
                return Err(SealError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    /// A sealer and the opener of its chunks, keyed by a real Noise handshake.
    pub(super) fn pair() -> (Sealer, Opener) {
        let params: snow::params::NoiseParams =
            "Noise_NN_25519_ChaChaPoly_BLAKE2s".parse().unwrap();
        let mut i = snow::Builder::new(params.clone())
            .build_initiator()
            .unwrap();
        let mut r = snow::Builder::new(params).build_responder().unwrap();
        let mut buf = [0u8; 1024];
        let mut out = [0u8; 1024];
        let n = i.write_message(&[], &mut buf).unwrap();
        r.read_message(&buf[..n], &mut out).unwrap();
        let n = r.write_message(&[], &mut buf).unwrap();
        i.read_message(&buf[..n], &mut out).unwrap();
        let i = Arc::new(i.into_stateless_transport_mode().unwrap());
        let r = Arc::new(r.into_stateless_transport_mode().unwrap());
        (Sealer::new(i), Opener::new(r))
    }

    #[test]
    fn large_plaintexts_span_chunks_and_come_back_whole() {
        let (mut sealer, mut opener) = pair();
        let plain: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let sealed = sealer.seal(&plain).unwrap().to_vec();
        assert_eq!(sealed.len(), plain.len() + 4 * (2 + TAG));
        let mut out = BytesMut::new();
        // Delivered in odd pieces, as a socket would.
        for piece in sealed.chunks(7_777) {
            opener.sealed_buf().extend_from_slice(piece);
            opener.open_into(&mut out).unwrap();
        }
        assert_eq!(&out[..], &plain[..]);
    }

    #[test]
    fn a_flipped_bit_a_replay_or_a_short_chunk_fails_to_open() {
        let (mut sealer, mut opener) = pair();
        let mut sealed = sealer.seal(b"hello").unwrap().to_vec();
        sealed[5] ^= 1;
        opener.sealed_buf().extend_from_slice(&sealed);
        assert!(matches!(
            opener.open_into(&mut BytesMut::new()),
            Err(SealError::Open)
        ));

        let (mut sealer, mut opener) = pair();
        let first = sealer.seal(b"one").unwrap().to_vec();
        opener.sealed_buf().extend_from_slice(&first);
        opener.open_into(&mut BytesMut::new()).unwrap();
        opener.sealed_buf().extend_from_slice(&first);
        assert!(matches!(
            opener.open_into(&mut BytesMut::new()),
            Err(SealError::Open)
        ));

        let (_, mut opener) = pair();
        opener.sealed_buf().extend_from_slice(&[3, 0, 1, 2, 3]);
        assert!(matches!(
            opener.open_into(&mut BytesMut::new()),
            Err(SealError::Short(3))
        ));
    }
}

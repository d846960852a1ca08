//! The registry's side of the cluster's gossip: this node's [`Directory`] is its heartbeat
//! payload, and each peer's payload is decoded (bounded) back into that peer's directory.
//!
//! The cluster does not know what the payload is ([`crate::cluster::Gossip`]); the registry
//! encodes and decodes it. A peer's payload comes from the network: one that does not decode
//! whole is dropped, logged and counted, never applied in part and never a panic.

use std::sync::atomic::Ordering;

use super::{Directory, Registry};
use crate::cluster::{Gossip, MAX_PAYLOAD_BYTES, NodeId, NodeStatus, PayloadChanged};

impl Directory {
    /// The directory as a gossip payload (bincode).
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Encoding integers, strings and collections of them into a Vec cannot fail.
        bincode::serde::encode_to_vec(self, bincode::config::standard()).unwrap_or_default()
    }

    /// A directory from a peer's payload: None unless `bytes` is exactly one directory of at
    /// most [`MAX_PAYLOAD_BYTES`] (a length claimed inside is never allocated beyond that).
    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > MAX_PAYLOAD_BYTES {
            return None;
        }
        let config = bincode::config::standard().with_limit::<MAX_PAYLOAD_BYTES>();
        match bincode::serde::decode_from_slice::<Self, _>(bytes, config) {
            Ok((directory, used)) if used == bytes.len() => Some(directory),
            _ => None,
        }
    }
}

impl Registry {
    /// How many peers' directories were dropped since start because they did not decode.
    pub fn num_bad_payloads(&self) -> u64 {
        self.num_bad_payloads.load(Ordering::Relaxed)
    }
}

impl Gossip for Registry {
    fn payload(&self) -> Vec<u8> {
        let payload = self.local_directory().encode();
        let too_large = payload.len() > MAX_PAYLOAD_BYTES;
        // The cluster will not send it; say why, once per episode.
        if too_large && !self.too_large.swap(true, Ordering::Relaxed) {
            tracing::error!(
                len = payload.len(),
                max = MAX_PAYLOAD_BYTES,
                "this node's directory is too large to gossip: it has too many service members"
            );
        } else if !too_large {
            self.too_large.store(false, Ordering::Relaxed);
        }
        payload
    }

    fn peer_payload(&self, node: &NodeId, incarnation: u64, payload: &[u8]) {
        match Directory::decode(payload) {
            Some(directory) => self.apply_peer(node, incarnation, directory),
            None => {
                let total = self.num_bad_payloads.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    peer = %node,
                    len = payload.len(),
                    total,
                    "dropped a peer's directory that does not decode"
                );
            }
        }
    }

    fn peer_status(&self, node: &NodeId, status: NodeStatus) {
        Registry::peer_status(self, node, status);
    }

    fn attach(&self, changed: PayloadChanged) {
        self.set_on_local_change(move || changed.notify());
    }
}

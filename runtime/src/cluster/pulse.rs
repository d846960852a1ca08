//! The heartbeat carrier: one small remotable actor per node, joined to a `pg` group, so that
//! `ractor_cluster` shows every node the pulse actors of its connected peers.
//!
//! Heartbeats are pulled, not pushed: every heartbeat interval a node *calls* each peer's pulse
//! actor, and the peer answers with its latest [`Beat`]. The answer travels back over the
//! session the call went out on (`ractor_cluster` matches a reply to its call within one
//! session), and the asking node knows which peer that session authenticated as; so a beat is
//! bound to its session, and a beat that claims to come from another node than the one its
//! session belongs to is refused (a pushed message carries no sender, so a node holding the
//! cookie could otherwise speak for another). When a node's gossip payload changes it *pokes*
//! its peers, which pull at once; a poke carries nothing, so a forged one costs only a pull.
//!
//! A heartbeat is a bincode-encoded [`Beat`]. It comes from the network, so its decoding is
//! bounded and one that does not decode is counted, logged and dropped. Its payload is opaque
//! here: whoever publishes it decodes it (see `gossip`).

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use super::membership::MembershipMsg;

/// The `pg` scope and group every node's pulse actor joins.
pub(crate) const PULSE_SCOPE: &str = "troupe.cluster";
pub(crate) const PULSE_GROUP: &str = "pulse";

/// The largest frame the cluster port accepts (`ractor_cluster`'s inbound frame limit). Only
/// heartbeats are large: everything else `ractor_cluster` sends over it (authentication, pings,
/// the `pg` membership of the one pulse actor per node) is a few hundred bytes. A stranger can
/// make a node buffer at most this much per unauthenticated connection (see [`super::gate`]).
pub(crate) const MAX_FRAME_BYTES: u64 = 1024 * 1024;

/// Room in a frame for what wraps a heartbeat: the protobuf envelope of a remote cast (target,
/// variant name, trace context), a few dozen bytes in practice.
const FRAME_OVERHEAD: usize = 4 * 1024;

/// The largest heartbeat we send or decode. A heartbeat is its sender's gossip payload plus a
/// few integers; a payload of at most [`super::MAX_PAYLOAD_BYTES`] always fits
/// ([`tests::the_largest_payload_fits`]). (The registry's directory, the payload a node
/// gossips, is at most 57 KiB per service at the configuration's bounds.) A heartbeat that
/// would not fit is not sent and says so in the log (see `Membership`).
pub(crate) const MAX_BEAT_BYTES: usize = MAX_FRAME_BYTES as usize - FRAME_OVERHEAD;

/// One heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Beat {
    /// The sender's node id, checked against the configuration by the receiver.
    pub(crate) from: String,
    /// The sender process's incarnation (random at start).
    pub(crate) incarnation: u64,
    /// A counter per incarnation, for diagnostics.
    pub(crate) seq: u64,
    /// The sender's gossip payload, opaque here (see `gossip`).
    pub(crate) payload: Vec<u8>,
    /// The size of the sender's store on disk.
    pub(crate) store_bytes: Option<u64>,
}

impl Beat {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Encoding a struct of a string, bytes and integers into a Vec cannot fail.
        bincode::serde::encode_to_vec(self, bincode::config::standard()).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > MAX_BEAT_BYTES {
            return None;
        }
        let config = bincode::config::standard().with_limit::<MAX_BEAT_BYTES>();
        match bincode::serde::decode_from_slice::<Self, _>(bytes, config) {
            Ok((beat, used)) if used == bytes.len() => Some(beat),
            _ => None,
        }
    }
}

/// What travels between pulse actors.
#[derive(RactorClusterMessage)]
pub(crate) enum PulseMsg {
    /// Asks for this node's latest encoded [`Beat`]; the number is the asker's pull count, for
    /// diagnostics.
    #[rpc]
    Pull(u64, ractor::RpcReplyPort<Vec<u8>>),
    /// The sender's gossip payload changed: pull from it (from every peer) now.
    Poke(u64),
}

/// Receives heartbeats and hands them to the membership actor.
pub(crate) struct Pulse;

impl Actor for Pulse {
    type Msg = PulseMsg;
    type State = ActorRef<MembershipMsg>;
    type Arguments = ActorRef<MembershipMsg>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        membership: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        ractor::pg::join_scoped(
            PULSE_SCOPE.to_string(),
            PULSE_GROUP.to_string(),
            vec![myself.get_cell()],
        );
        Ok(membership)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        membership: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // The membership actor stops only at shutdown; a lost message then is harmless.
        let _ = match message {
            PulseMsg::Pull(_, reply) => membership.cast(MembershipMsg::Pull(reply)),
            PulseMsg::Poke(_) => membership.cast(MembershipMsg::PullNow),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::gossip::{BEAT_HEADER_BYTES, MAX_PAYLOAD_BYTES};

    #[test]
    fn beats_round_trip_and_garbage_is_refused() {
        let beat = Beat {
            from: "n1".into(),
            incarnation: u64::MAX,
            seq: 42,
            payload: b"any bytes at all".to_vec(),
            store_bytes: Some(1 << 40),
        };
        assert_eq!(Beat::decode(&beat.encode()), Some(beat.clone()));
        assert_eq!(Beat::decode(&[0xff; 12]), None);
        assert_eq!(Beat::decode(&[]), None);
        let mut trailing = beat.encode();
        trailing.push(0);
        assert_eq!(Beat::decode(&trailing), None);
        // A length prefix claiming a huge string must not allocate it.
        assert_eq!(Beat::decode(&[0xfc, 0xff, 0xff, 0xff, 0x7f, b'a']), None);
        assert_eq!(Beat::decode(&vec![1; MAX_BEAT_BYTES + 1]), None);
        // A payload claiming billions of bytes must not allocate them.
        let mut huge = beat.encode();
        huge.truncate(3 + 9 + 1); // the id "n1", the incarnation and the sequence number
        assert_eq!(huge[12], 42);
        huge.extend_from_slice(&[0xfc, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(Beat::decode(&huge), None);
    }

    /// A payload of [`MAX_PAYLOAD_BYTES`] fits in a heartbeat whose every other field is at its
    /// largest (a 64-character node id, integers at their widest).
    #[test]
    fn the_largest_payload_fits() {
        let mut beat = Beat {
            from: "n".repeat(64),
            incarnation: u64::MAX,
            seq: u64::MAX,
            payload: Vec::new(),
            store_bytes: Some(u64::MAX),
        };
        let header = beat.encode().len();
        assert!(header + 9 <= BEAT_HEADER_BYTES, "{header} bytes");
        beat.payload = vec![0xff; MAX_PAYLOAD_BYTES];
        let len = beat.encode().len();
        assert!(len <= MAX_BEAT_BYTES, "{len} bytes");
        assert_eq!(Beat::decode(&beat.encode()), Some(beat));
    }

    /// Properties over arbitrary heartbeats (opaque payloads) and arbitrary bytes from a peer.
    mod proptests {
        use proptest::prelude::*;

        use super::*;

        fn beat() -> impl Strategy<Value = Beat> {
            (
                ".{0,64}",
                any::<u64>(),
                any::<u64>(),
                prop::collection::vec(any::<u8>(), 0..512),
                any::<Option<u64>>(),
            )
                .prop_map(|(from, incarnation, seq, payload, store_bytes)| Beat {
                    from,
                    incarnation,
                    seq,
                    payload,
                    store_bytes,
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            #[test]
            fn beats_come_back_as_sent(beat in beat()) {
                prop_assert_eq!(Beat::decode(&beat.encode()), Some(beat));
            }

            /// A heartbeat cut short, or with bytes after it, is refused, never misread.
            #[test]
            fn a_cut_or_padded_beat_is_refused(
                beat in beat(),
                cut in any::<prop::sample::Index>(),
                extra in prop::collection::vec(any::<u8>(), 1..8),
            ) {
                let bytes = beat.encode();
                prop_assert_eq!(Beat::decode(&bytes[..cut.index(bytes.len())]), None);
                let mut padded = bytes;
                padded.extend_from_slice(&extra);
                prop_assert_eq!(Beat::decode(&padded), None);
            }

            /// Arbitrary bytes, or a real beat with bytes changed, never panic the decoder.
            #[test]
            fn any_bytes_decode_or_are_refused_without_panicking(
                bytes in prop::collection::vec(any::<u8>(), 0..256),
                beat in beat(),
                changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            ) {
                let _ = Beat::decode(&bytes);
                let mut bytes = beat.encode();
                for (at, value) in changes {
                    let at = at.index(bytes.len());
                    bytes[at] = value;
                }
                let _ = Beat::decode(&bytes);
            }
        }
    }
}

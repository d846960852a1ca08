//! The heartbeat carrier: one small remotable actor per node, joined to a `pg` group, so that
//! `ractor_cluster` shows every node the pulse actors of its connected peers.
//!
//! Heartbeats are pulled, not pushed: every heartbeat interval a node *calls* each peer's pulse
//! actor, and the peer answers with its latest [`Beat`]. The answer travels back over the
//! session the call went out on (`ractor_cluster` matches a reply to its call within one
//! session), and the asking node knows which peer that session authenticated as; so a beat is
//! bound to its session, and a beat that claims to come from another node than the one its
//! session belongs to is refused (a pushed message carries no sender, so a node holding the
//! cookie could otherwise speak for another). When a node's directory changes it *pokes* its
//! peers, which pull at once; a poke carries nothing, so a forged one costs only a pull.
//!
//! A heartbeat is a bincode-encoded [`Beat`]. It comes from the network, so its decoding is
//! bounded and one that does not decode is counted, logged and dropped.

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};

use super::membership::MembershipMsg;
use crate::registry::Directory;

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

/// The largest heartbeat we send or decode. A heartbeat is its sender's directory plus a few
/// integers: at most 14 bytes per member (a varint slot index and pid) and the service's name
/// (at most 64 bytes). Configuration allows at most 4,096 members of one service on a node,
/// 57 KiB at most ([`tests::largest_service_directory`]), so this leaves room for at least 17
/// services at their largest; the default services take a few hundred bytes. A heartbeat that
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
    /// The sender's members, so that every peer's registry follows them.
    pub(crate) directory: Directory,
    /// The size of the sender's store on disk.
    pub(crate) store_bytes: Option<u64>,
}

impl Beat {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Encoding a struct of a string and two integers into a Vec cannot fail.
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
    /// The sender's directory changed: pull from it (from every peer) now.
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

    #[test]
    fn beats_round_trip_and_garbage_is_refused() {
        let mut directory = Directory {
            version: 3,
            ..Directory::default()
        };
        directory.services.insert(
            "echo".into(),
            vec![crate::registry::MemberSlot { index: 1, pid: 77 }],
        );
        let beat = Beat {
            from: "n1".into(),
            incarnation: u64::MAX,
            seq: 42,
            directory,
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
        // A directory claiming billions of members must not allocate them.
        let mut huge = beat.encode();
        huge.truncate(12);
        huge.extend_from_slice(&[0xfc, 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(Beat::decode(&huge), None);
    }

    /// The largest directory one service can have under the configuration's bounds (4,096
    /// members on one node, a 64-character name, pids and slot indexes at their largest).
    #[test]
    fn largest_service_directory() {
        let mut directory = Directory {
            version: u64::MAX,
            ..Directory::default()
        };
        let members = (0..4096)
            .map(|i| crate::registry::MemberSlot {
                index: u32::MAX - i,
                pid: u64::MAX - u64::from(i),
            })
            .collect();
        directory.services.insert("s".repeat(64), members);
        let beat = Beat {
            from: "n".repeat(64),
            incarnation: u64::MAX,
            seq: u64::MAX,
            directory,
            store_bytes: Some(u64::MAX),
        };
        let len = beat.encode().len();
        assert!(len <= 58 * 1024, "{len} bytes");
        assert!(MAX_BEAT_BYTES / len >= 17, "{len} bytes");
        assert_eq!(Beat::decode(&beat.encode()), Some(beat));
    }

    /// Properties over arbitrary heartbeats and arbitrary bytes from a peer.
    mod proptests {
        use proptest::prelude::*;

        use super::*;
        use crate::registry::MemberSlot;

        fn beat() -> impl Strategy<Value = Beat> {
            let slots = prop::collection::vec(
                any::<(u32, u64)>().prop_map(|(index, pid)| MemberSlot { index, pid }),
                0..20,
            );
            let directory = (
                any::<u64>(),
                prop::collection::btree_map(".{0,20}", slots, 0..6),
            )
                .prop_map(|(version, services)| Directory { version, services });
            (
                ".{0,64}",
                any::<u64>(),
                any::<u64>(),
                directory,
                any::<Option<u64>>(),
            )
                .prop_map(|(from, incarnation, seq, directory, store_bytes)| Beat {
                    from,
                    incarnation,
                    seq,
                    directory,
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

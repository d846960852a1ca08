//! Properties of sealed chunks over arbitrary plaintexts, arbitrary socket reads, tampering and
//! arbitrary bytes from a peer: what opens is exactly what was sealed, in order, and nothing
//! that was not sealed with the link's keys is ever delivered.

use bytes::BytesMut;
use proptest::prelude::*;

use super::tests::pair;
use super::*;

/// Plaintexts of a link: mostly small, sometimes larger than one chunk.
fn messages() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let message = prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..400),
        1 => (MAX_PLAIN - 3..MAX_PLAIN + 70).prop_map(|n| vec![0xa5; n]),
    ];
    prop::collection::vec(message, 1..6)
}

/// Delivers `bytes` in pieces of the given sizes (cycled), opening after each, as the link's
/// reader does; returns what opened and how it ended.
fn deliver(opener: &mut Opener, bytes: &[u8], pieces: &[usize]) -> (Vec<u8>, Result<(), String>) {
    let mut plain = BytesMut::new();
    let mut rest = bytes;
    let mut sizes = pieces.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        opener.sealed_buf().extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        if let Err(e) = opener.open_into(&mut plain) {
            return (plain.to_vec(), Err(e.to_string()));
        }
    }
    (plain.to_vec(), Ok(()))
}

fn pieces() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..5000, 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn what_is_sealed_opens_whole_and_in_order_however_it_is_read(
        messages in messages(),
        pieces in pieces(),
    ) {
        let (mut sealer, mut opener) = pair();
        let mut sealed = Vec::new();
        for m in &messages {
            sealed.extend_from_slice(sealer.seal(m).unwrap());
        }
        let (plain, end) = deliver(&mut opener, &sealed, &pieces);
        prop_assert_eq!(end, Ok(()));
        prop_assert_eq!(plain, messages.concat());
    }

    /// One flipped bit anywhere: everything sealed before the chunk it hit opens, nothing of
    /// that chunk or after it does.
    #[test]
    fn a_flipped_bit_delivers_nothing_of_its_chunk_or_after(
        messages in messages(),
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
        pieces in pieces(),
    ) {
        let (mut sealer, mut opener) = pair();
        let mut sealed = Vec::new();
        // Where each chunk starts in the sealed stream, and how much plaintext precedes it.
        let mut chunks: Vec<(usize, usize)> = Vec::new();
        let mut before = 0;
        for m in &messages {
            let mut offset = sealed.len();
            sealed.extend_from_slice(sealer.seal(m).unwrap());
            for piece in m.chunks(MAX_PLAIN) {
                chunks.push((offset, before));
                offset += 2 + piece.len() + TAG;
                before += piece.len();
            }
        }
        prop_assume!(!sealed.is_empty());
        let at = at.index(sealed.len());
        sealed[at] ^= 1 << bit;
        let hit = chunks.iter().rev().find(|(start, _)| *start <= at).copied().unwrap_or((0, 0));
        let (plain, _) = deliver(&mut opener, &sealed, &pieces);
        prop_assert_eq!(plain, messages.concat()[..hit.1].to_vec());
    }

    /// Bytes from a peer without the keys: nothing opens, nothing panics, and the opener
    /// buffers at most about one chunk beyond what was read.
    #[test]
    fn bytes_without_the_keys_never_open(
        bytes in prop::collection::vec(any::<u8>(), 0..3000),
        pieces in pieces(),
    ) {
        let (_, mut opener) = pair();
        let (plain, _) = deliver(&mut opener, &bytes, &pieces);
        prop_assert!(plain.is_empty(), "{} bytes opened without the keys", plain.len());
        let capacity = opener.sealed_buf().capacity();
        prop_assert!(
            capacity <= 2 * (bytes.len() + 2 + MAX_CHUNK),
            "{} bytes buffered after reading {}", capacity, bytes.len()
        );
    }
}

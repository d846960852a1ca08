//! Decoding a message from a peer ([`troupe_runtime::service::decode`]) allocates no more than
//! its bound, whatever lengths the bytes claim: measured with a counting global allocator,
//! which is why this is a test binary of its own.
//!
//! The peak is process-wide, so the tests take turns.

#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde::de::DeserializeOwned;
use troupe_runtime::CallError;
use troupe_runtime::service::{MAX_MESSAGE_BYTES, decode};

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let live = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters only observe.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as the old and the new block both live, as a moving realloc has them.
        grew(new_size);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most `decode::<T>(bytes)` had allocated at once, beyond what was live before.
fn peak_of<T: DeserializeOwned>(bytes: &[u8]) -> (usize, bool) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let decoded = decode::<T>(bytes).is_ok();
    (PEAK.load(Ordering::Relaxed).saturating_sub(before), decoded)
}

/// A bincode (standard configuration) length prefix: a varint.
fn length(n: u64) -> Vec<u8> {
    match n {
        0..=250 => vec![n as u8],
        251..=0xffff => [&[251u8][..], &(n as u16).to_le_bytes()].concat(),
        0x1_0000..=0xffff_ffff => [&[252u8][..], &(n as u32).to_le_bytes()].concat(),
        _ => [&[253u8][..], &n.to_le_bytes()].concat(),
    }
}

/// What serde preallocates at most for a sequence whose length is claimed (its "cautious"
/// size hint), and some room for the decoder itself.
const SLACK: usize = 1024 * 1024 + 64 * 1024;

/// Every length a peer could claim, with a few bytes after it, for every shape of container.
fn claimed_lengths() {
    let claims = [
        MAX_MESSAGE_BYTES as u64 - 1,
        MAX_MESSAGE_BYTES as u64,
        MAX_MESSAGE_BYTES as u64 + 1,
        1 << 30,
        u32::MAX as u64,
        1 << 40,
        u64::MAX,
    ];
    for claim in claims {
        let mut bytes = length(claim);
        bytes.extend_from_slice(b"abc");
        let peaks = [
            ("String", peak_of::<String>(&bytes)),
            ("Vec<u8>", peak_of::<Vec<u8>>(&bytes)),
            ("Vec<u64>", peak_of::<Vec<u64>>(&bytes)),
            ("Vec<String>", peak_of::<Vec<String>>(&bytes)),
            ("Vec<Vec<u8>>", peak_of::<Vec<Vec<u8>>>(&bytes)),
            (
                "BTreeMap<String, Vec<u8>>",
                peak_of::<BTreeMap<String, Vec<u8>>>(&bytes),
            ),
        ];
        for (ty, (peak, decoded)) in peaks {
            assert!(!decoded, "{ty}: 3 bytes decoded as {claim} elements");
            let bound = if claim > MAX_MESSAGE_BYTES as u64 {
                // Over the limit: refused before its length is allocated.
                SLACK
            } else {
                MAX_MESSAGE_BYTES + SLACK
            };
            assert!(
                peak <= bound,
                "{ty}: a claim of {claim} in 3 bytes allocated {peak} bytes (bound {bound})"
            );
        }
    }
}

/// Arbitrary bytes, and arbitrary lengths followed by arbitrary bytes.
fn arbitrary_bytes() {
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (any::<u64>(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(claim, rest)| [
            length(claim),
            rest
        ]
        .concat()),
        (
            any::<u64>(),
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(a, b, rest)| [length(a), length(b), rest].concat()),
    ];
    let mut runner = TestRunner::new(Config::with_cases(256));
    runner
        .run(&bytes, |bytes| {
            let bound = MAX_MESSAGE_BYTES + SLACK;
            for (ty, (peak, _)) in [
                ("String", peak_of::<String>(&bytes)),
                ("Vec<u64>", peak_of::<Vec<u64>>(&bytes)),
                ("Vec<String>", peak_of::<Vec<String>>(&bytes)),
                ("Vec<Vec<u8>>", peak_of::<Vec<Vec<u8>>>(&bytes)),
                (
                    "BTreeMap<String, Vec<u8>>",
                    peak_of::<BTreeMap<String, Vec<u8>>>(&bytes),
                ),
                ("CallError", peak_of::<CallError>(&bytes)),
                (
                    "Option<(u64, String)>",
                    peak_of::<Option<(u64, String)>>(&bytes),
                ),
            ] {
                prop_assert!(
                    peak <= bound,
                    "{}: {} bytes allocated (bound {})",
                    ty,
                    peak,
                    bound
                );
            }
            Ok(())
        })
        .unwrap();
}

/// The peak is process-wide: the tests of this binary take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_claimed_length_allocates_within_the_bound() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    // The counter sees a claim within the bound: a string that says it has 4 MiB less 100
    // bytes (the claim counts the 8 bytes of the length itself too) gets them.
    let claim = [length(MAX_MESSAGE_BYTES as u64 - 100), b"abc".to_vec()].concat();
    let (peak, decoded) = peak_of::<String>(&claim);
    assert!(!decoded && peak >= MAX_MESSAGE_BYTES - 100, "{peak}");
    claimed_lengths();
    arbitrary_bytes();
}

/// Fails today, so ignored: the bound counts 8 bytes per length and 4 per enum variant
/// read, but a decoded `String` or `Vec` takes 24 bytes and an enum as much as its largest
/// variant, so sequences of small elements decode to many times the bound: measured, 1 MB
/// of zeros decodes as a `Vec<CallError>` that holds 50 MB before it is refused, 100 kB as a
/// 6 MB `Vec<String>`, and 100 kB as a `Vec` of a 264-byte enum whose variant takes one byte on
/// the wire: 50 MB, decoded. (Elements of size zero are worse: a 5-byte `Vec<()>` claiming
/// 2^26 elements decodes in a second of CPU, and a longer claim takes as long as it says.) A fix belongs where the payload is decoded (bound the
/// decoded size, or the element count against the payload length), not in bincode's
/// configuration. Run with `--ignored`.
#[test]
#[ignore = "fails today: serde sequences of small elements decode to many times the bound"]
fn a_sequence_of_small_elements_decodes_within_the_bound() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let bound = MAX_MESSAGE_BYTES + SLACK;
    let n = 1_000_000;
    let bytes = [length(n as u64), vec![0u8; n]].concat();
    for (ty, (peak, _)) in [
        ("Vec<String>", peak_of::<Vec<String>>(&bytes)),
        ("Vec<CallError>", peak_of::<Vec<CallError>>(&bytes)),
    ] {
        assert!(
            peak <= bound,
            "{ty}: {n} bytes of zeros allocated {peak} bytes (bound {bound})"
        );
    }
}

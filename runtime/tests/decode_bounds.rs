//! Decoding a message from a peer ([`troupe_runtime::service::decode`]) allocates no more than
//! its bound, whatever lengths the bytes claim: measured with a counting global allocator,
//! which is why this is a test binary of its own.
//!
//! The counts are per thread (a decode runs on the thread that calls it), so the tests of
//! this binary, running side by side, do not disturb each other's measurements.
//!
//! Two bounds: what bytes are read ([`MAX_MESSAGE_BYTES`], a claimed length beyond it is never
//! allocated) and what the decoded value takes ([`MAX_DECODED_BYTES`], counted as it is built,
//! however few bytes each element takes on the wire).

#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use troupe_runtime::CallError;
use troupe_runtime::entity::EntityRequest;
use troupe_runtime::events::Delivery;
use troupe_runtime::service::{MAX_DECODED_BYTES, MAX_MESSAGE_BYTES, decode};

/// Counts live heap bytes and their peak, per thread.
struct Counting;

thread_local! {
    /// Bytes this thread allocated less those it freed (negative when it frees blocks other
    /// threads allocated). Constant and without a destructor: reading it never allocates.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// The most `LIVE` has been since `peak_of` reset it.
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn grew(n: usize) {
    let live = LIVE.get().wrapping_add_unsigned(n);
    LIVE.set(live);
    PEAK.set(PEAK.get().max(live));
}

fn shrank(n: usize) {
    LIVE.set(LIVE.get().wrapping_sub_unsigned(n));
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
        shrank(layout.size());
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as the old and the new block both live, as a moving realloc has them.
        grew(new_size);
        shrank(layout.size());
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most `decode::<T>(bytes)` had allocated at once, beyond what was live before.
fn peak_of<T: DeserializeOwned>(bytes: &[u8]) -> (usize, bool) {
    let before = LIVE.get();
    PEAK.set(before);
    let decoded = decode::<T>(bytes).is_ok();
    let peak = PEAK.get().wrapping_sub(before);
    (usize::try_from(peak).unwrap_or(0), decoded)
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

/// The most a decode may have allocated at once, as documented at [`MAX_DECODED_BYTES`]: its
/// budget, one string or buffer read before it is counted, and serde's preallocation.
const DECODED_BOUND: usize = MAX_DECODED_BYTES + MAX_MESSAGE_BYTES + SLACK;

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
                ("Vec<CallError>", peak_of::<Vec<CallError>>(&bytes)),
                ("EntityRequest", peak_of::<EntityRequest>(&bytes)),
                ("Vec<()>", peak_of::<Vec<()>>(&bytes)),
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

#[test]
fn a_claimed_length_allocates_within_the_bound() {
    // The counter sees a claim within the bound: a string that says it has 4 MiB less 100
    // bytes (the claim counts the 8 bytes of the length itself too) gets them.
    let claim = [length(MAX_MESSAGE_BYTES as u64 - 100), b"abc".to_vec()].concat();
    let (peak, decoded) = peak_of::<String>(&claim);
    assert!(!decoded && peak >= MAX_MESSAGE_BYTES - 100, "{peak}");
    claimed_lengths();
    arbitrary_bytes();
}

/// The bound of bytes read counts 8 bytes per length and 4 per enum variant, but a decoded
/// `String` or `Vec` takes 24 bytes and an enum as much as its largest variant, so before the
/// decoded size had a bound of its own, sequences of small elements decoded to many times
/// the bound: 1 MB of zeros as a `Vec<CallError>` held 50 MB before it was refused, 100 kB as a
/// `Vec` of a 264-byte enum whose variant takes one byte on the wire 50 MB, decoded; and
/// elements of size zero cost time instead: a 5-byte `Vec<()>` claiming 2^26 elements decoded
/// in a second of CPU (a longer claim took as long as it said).
#[test]
fn a_sequence_of_small_elements_decodes_within_the_bound() {
    let zeros = |n: usize| [length(n as u64), vec![0u8; n]].concat();
    let (megabyte, hundred_kb) = (zeros(1_000_000), zeros(100_000));
    let units = length(1 << 26);
    for (ty, input, (peak, decoded), refused) in [
        (
            "Vec<String>",
            &megabyte,
            peak_of::<Vec<String>>(&megabyte),
            true,
        ),
        (
            "Vec<CallError>",
            &megabyte,
            peak_of::<Vec<CallError>>(&megabyte),
            true,
        ),
        (
            "Vec<Wide>",
            &hundred_kb,
            peak_of::<Vec<Wide>>(&hundred_kb),
            true,
        ),
        ("Vec<()>", &units, peak_of::<Vec<()>>(&units), true),
        // 100,000 empty strings (7 MB by the count) are within the budget: decoded.
        (
            "Vec<String>",
            &hundred_kb,
            peak_of::<Vec<String>>(&hundred_kb),
            false,
        ),
    ] {
        let n = input.len();
        eprintln!("{ty}: {n} bytes allocated {peak} bytes at most, decoded: {decoded}");
        assert!(
            peak <= DECODED_BOUND,
            "{ty}: {n} bytes allocated {peak} bytes (bound {DECODED_BOUND})"
        );
        assert_eq!(decoded, !refused, "{ty} of {n} bytes");
    }
    // Refused for its size, and the caller is told so.
    for error in [
        decode::<Vec<CallError>>(&megabyte).map(drop),
        decode::<Vec<Wide>>(&hundred_kb).map(drop),
        decode::<Vec<()>>(&units).map(drop),
        decode::<Vec<()>>(&length(u64::MAX)).map(drop),
    ] {
        let Err(CallError::BadMessage(message)) = error else {
            panic!("{error:?}: decoded or refused for another reason");
        };
        assert!(
            message.contains("decodes larger than the bound"),
            "{message}"
        );
    }
}

/// An enum of 264 bytes whose first variant takes one byte on the wire.
#[allow(clippy::large_enum_variant)] // The point of it.
#[derive(Debug, Serialize, Deserialize)]
enum Wide {
    Narrow,
    Wide([u64; 32]),
}

/// Messages of the largest size a peer may send still decode, within the bound.
#[test]
fn messages_up_to_the_limit_still_decode() {
    let large = EntityRequest {
        command: "put".into(),
        id: b"key".to_vec(),
        payload: vec![7; MAX_MESSAGE_BYTES - 64],
        timer: None,
        event: None,
    };
    let small: Vec<String> = (0..100_000).map(|i| format!("key-{i:06}")).collect();
    let text = "x".repeat(MAX_MESSAGE_BYTES - 16);
    let numbers: Vec<u64> = (0..400_000).map(|i| i << 40).collect();
    assert_round_trip(&large);
    assert_round_trip(&small);
    assert_round_trip(&text);
    assert_round_trip(&numbers);
    assert_round_trip(&vec![7u8; MAX_MESSAGE_BYTES - 16]);
}

/// Encodes `value` (at most [`MAX_MESSAGE_BYTES`]) and decodes it back, within the bound.
fn assert_round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let bytes = bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap();
    assert!(bytes.len() <= MAX_MESSAGE_BYTES, "{}", bytes.len());
    let (peak, _) = peak_of::<T>(&bytes);
    assert!(peak <= DECODED_BOUND, "{peak}");
    assert!(decode::<T>(&bytes).unwrap() == *value, "{value:?}");
}

/// Any value of the messages the runtime sends decodes back to itself.
#[test]
fn real_messages_decode_back_unchanged() {
    let bytes = || prop::collection::vec(any::<u8>(), 0..64);
    let delivery = (any::<String>(), any::<String>(), bytes(), any::<u64>()).prop_flat_map(
        |(subscription, source, key, seq)| {
            (any::<[u8; 16]>(), any::<bool>()).prop_map(move |(event, redrive)| Delivery {
                subscription: subscription.clone(),
                source: source.clone(),
                key: key.clone(),
                seq,
                event,
                redrive,
            })
        },
    );
    let request = (
        any::<String>(),
        bytes(),
        prop::collection::vec(any::<u8>(), 0..512),
        prop::option::of(bytes()),
        prop::option::of(delivery),
    )
        .prop_map(|(command, id, payload, timer, event)| EntityRequest {
            command,
            id,
            payload,
            timer,
            event,
        });
    let text = any::<String>;
    let call_error = prop_oneof![
        text().prop_map(CallError::NoMember),
        text().prop_map(CallError::UnknownService),
        Just(CallError::Timeout),
        Just(CallError::Expired),
        text().prop_map(CallError::Unreachable),
        text().prop_map(CallError::Lost),
        Just(CallError::MemberFailed),
        Just(CallError::Dropped),
        Just(CallError::Overloaded),
        text().prop_map(CallError::NotDurable),
        text().prop_map(CallError::BadMessage),
        (text(), any::<u32>(), text()).prop_map(|(service, shard, node)| {
            CallError::ShardUnavailable {
                service,
                shard,
                node,
            }
        }),
        text().prop_map(CallError::Placement),
    ];
    round_trips(request);
    round_trips(call_error);
    round_trips(prop::collection::vec(any::<String>(), 0..32));
    round_trips(any::<Option<(u64, String)>>());
}

/// Every value of `strategy` decodes back to itself.
fn round_trips<T>(strategy: impl Strategy<Value = T>)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut runner = TestRunner::new(Config::with_cases(256));
    runner
        .run(&strategy, |value| {
            let bytes = bincode::serde::encode_to_vec(&value, bincode::config::standard()).unwrap();
            prop_assert_eq!(decode::<T>(&bytes), Ok(value));
            Ok(())
        })
        .unwrap();
}

/// What the budget costs per message: typical messages decoded through [`decode`] and through
/// bincode alone, timed. A measurement, not a check: run it in release with `--ignored
/// --nocapture` on a quiet machine. (The counting allocator of this binary costs both alike.)
#[test]
#[ignore = "a measurement; run with --release --ignored --nocapture"]
fn the_budget_costs_little_per_message() {
    let request = EntityRequest {
        command: "put".into(),
        id: b"user-0042".to_vec(),
        payload: vec![7; 100],
        timer: None,
        event: None,
    };
    let strings: Vec<String> = (0..16).map(|i| format!("member-{i}")).collect();
    let error = CallError::ShardUnavailable {
        service: "kv".into(),
        shard: 7,
        node: "node-2".into(),
    };
    time("EntityRequest", &request);
    time("Vec<u8> of 1000", &vec![7u8; 1000]);
    time("Vec<String> of 16", &strings);
    time("CallError", &error);
}

/// Prints the time per decode of `value`, budgeted and by bincode alone.
fn time<T: Serialize + DeserializeOwned>(name: &str, value: &T) {
    const ROUNDS: u32 = 100_000;
    let bytes = bincode::serde::encode_to_vec(value, bincode::config::standard()).unwrap();
    let config = bincode::config::standard().with_limit::<MAX_MESSAGE_BYTES>();
    let (mut budgeted, mut plain) = (std::time::Duration::MAX, std::time::Duration::MAX);
    for _ in 0..5 {
        let start = tokio::time::Instant::now();
        for _ in 0..ROUNDS {
            std::hint::black_box(decode::<T>(std::hint::black_box(&bytes)).unwrap());
        }
        budgeted = budgeted.min(start.elapsed() / ROUNDS);
        let start = tokio::time::Instant::now();
        for _ in 0..ROUNDS {
            let bytes = std::hint::black_box(&bytes);
            let decoded = bincode::serde::decode_from_slice::<T, _>(bytes, config);
            std::hint::black_box(decoded.unwrap());
        }
        plain = plain.min(start.elapsed() / ROUNDS);
    }
    eprintln!(
        "{name} ({} bytes), fastest of 5 rounds: budgeted {budgeted:?}, bincode alone {plain:?}",
        bytes.len()
    );
}

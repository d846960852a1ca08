use super::*;

fn frame(envelopes: &[Outgoing], now: Now) -> Vec<u8> {
    let mut buf = Vec::new();
    for e in envelopes {
        e.encode(&mut buf, now);
    }
    buf
}

fn decode_all(bytes: &[u8]) -> Result<Vec<Incoming<'_>>, WireError> {
    let mut reader = Reader::new(bytes);
    let mut out = Vec::new();
    while let Some(e) = reader.next_envelope() {
        out.push(e?);
    }
    Ok(out)
}

#[test]
fn envelopes_round_trip() {
    let now = Now::read();
    let trace = TraceContext::new_root();
    let bytes = frame(
        &[
            Outgoing::Request {
                correlation: None,
                target: Target::Pick(7),
                service: "echo".into(),
                deadline: None,
                trace: None,
                payload: vec![1, 2, 3],
            },
            Outgoing::Request {
                correlation: Some(u64::MAX),
                target: Target::Slot(3),
                service: "kv".into(),
                deadline: Some(now.mono + Duration::from_millis(250)),
                trace: Some(trace),
                payload: vec![],
            },
            Outgoing::Reply {
                correlation: 9,
                result: Ok(vec![42; 1000]),
            },
            Outgoing::Reply {
                correlation: 10,
                result: Err(CallError::Unreachable("n2".into())),
            },
        ],
        now,
    );
    let decoded = decode_all(&bytes).unwrap();
    assert_eq!(
        decoded,
        vec![
            Incoming::Request {
                correlation: None,
                target: Target::Pick(7),
                service: "echo",
                deadline: None,
                trace: None,
                payload: &[1, 2, 3],
            },
            Incoming::Request {
                correlation: Some(u64::MAX),
                target: Target::Slot(3),
                service: "kv",
                deadline: Some(now.wall_us + 250_000),
                trace: Some(trace),
                payload: &[],
            },
            Incoming::Reply {
                correlation: 9,
                result: Ok(&[42; 1000][..])
            },
            Incoming::Reply {
                correlation: 10,
                result: Err(CallError::Unreachable("n2".into()))
            },
        ]
    );
}

#[test]
fn an_expired_request_is_not_written() {
    let now = Now::read();
    let expired = Outgoing::Request {
        correlation: Some(1),
        target: Target::Any,
        service: "echo".into(),
        deadline: Some(now.mono),
        trace: None,
        payload: vec![1],
    };
    let mut buf = Vec::new();
    assert!(!expired.encode(&mut buf, now));
    assert!(buf.is_empty());
}

#[test]
fn every_truncation_is_refused_without_panicking() {
    let now = Now::read();
    let bytes = frame(
        &[Outgoing::Request {
            correlation: Some(3),
            target: Target::Pick(1),
            service: "echo".into(),
            deadline: Some(now.mono + Duration::from_secs(1)),
            trace: Some(TraceContext::new_root()),
            payload: vec![5; 64],
        }],
        now,
    );
    for cut in 1..bytes.len() {
        assert_eq!(
            decode_all(&bytes[..cut]),
            Err(WireError::Truncated),
            "cut at {cut}"
        );
    }
}

#[test]
fn garbage_is_refused_and_huge_lengths_do_not_allocate() {
    assert_eq!(decode_all(&[99]), Err(WireError::UnknownKind(99)));
    // A cast claiming a 4 GiB payload in a 20-byte frame.
    let mut bytes = vec![CAST, 0, 4];
    bytes.extend_from_slice(b"echo");
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(decode_all(&bytes), Err(WireError::Truncated));
    // A service name that is not UTF-8.
    let bytes = [
        CAST, 0, 2, 0xff, 0xfe, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(decode_all(&bytes), Err(WireError::BadServiceName));
    // A target of an unknown kind.
    assert_eq!(decode_all(&[CAST, 9]), Err(WireError::BadTarget(9)));
    // A reply with an unknown status, and one whose error does not decode.
    let mut bytes = vec![REPLY];
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.push(7);
    bytes.extend_from_slice(&0u32.to_le_bytes());
    assert_eq!(decode_all(&bytes), Err(WireError::BadStatus(7)));
    let mut bytes = vec![REPLY];
    bytes.extend_from_slice(&1u64.to_le_bytes());
    bytes.push(1);
    bytes.extend_from_slice(&2u32.to_le_bytes());
    bytes.extend_from_slice(&[0xff, 0xff]);
    assert_eq!(decode_all(&bytes), Err(WireError::BadError));
    // Random bytes never panic.
    let mut state = 7u64;
    for _ in 0..2000 {
        let len = (crate::hash::mix(state) % 64) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state = crate::hash::mix(state);
                state as u8
            })
            .collect();
        let _ = decode_all(&bytes);
    }
}

#[test]
fn deadlines_travel_on_the_wall_clock() {
    let now = Now::read();
    let deadline = now.mono + Duration::from_millis(1500);
    let wall = now.wall_of(deadline);
    assert_eq!(wall, now.wall_us + 1_500_000);
    // Read back on a node whose clocks read the same: the same instant.
    assert_eq!(now.mono_of(wall), Some(deadline));
    // Read back 2 s later on the wall clock (the request sat in a frozen process): expired.
    let later = Now {
        mono: now.mono,
        wall_us: now.wall_us + 2_000_000,
    };
    assert_eq!(later.mono_of(wall), None);
}

/// Properties over arbitrary envelopes and arbitrary bytes from a peer.
mod proptests {
    use proptest::prelude::*;

    use super::*;

    fn call_error() -> impl Strategy<Value = CallError> {
        let s = ".{0,40}";
        prop_oneof![
            s.prop_map(CallError::NoMember),
            s.prop_map(CallError::UnknownService),
            Just(CallError::Timeout),
            Just(CallError::Expired),
            s.prop_map(CallError::Unreachable),
            s.prop_map(CallError::Lost),
            Just(CallError::MemberFailed),
            Just(CallError::Dropped),
            Just(CallError::Overloaded),
            s.prop_map(CallError::NotDurable),
            s.prop_map(CallError::BadMessage),
            (s, any::<u32>(), s).prop_map(|(service, shard, node)| CallError::ShardUnavailable {
                service,
                shard,
                node
            }),
            s.prop_map(CallError::Placement),
        ]
    }

    fn target() -> impl Strategy<Value = Target> {
        prop_oneof![
            Just(Target::Any),
            any::<u64>().prop_map(Target::Pick),
            any::<u32>().prop_map(Target::Slot),
        ]
    }

    fn trace() -> impl Strategy<Value = Option<TraceContext>> {
        proptest::option::of(any::<([u8; 16], [u8; 8], bool)>().prop_map(
            |(trace_id, span_id, sampled)| TraceContext {
                trace_id,
                span_id,
                sampled,
            },
        ))
    }

    fn payload() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>(), 0..300)
    }

    /// An envelope; a deadline is between one hour and one hour and 1,000 s ahead (so that
    /// it has not passed when the test encodes it).
    fn envelope() -> impl Strategy<Value = Outgoing> {
        let base = Instant::now() + Duration::from_secs(3600);
        let request = (
            any::<Option<u64>>(),
            target(),
            // Names up to 60 characters: at most 240 bytes, within the one-byte length.
            ".{0,60}",
            proptest::option::of(1u64..1_000_000_000),
            trace(),
            payload(),
        )
            .prop_map(
                move |(correlation, target, service, deadline, trace, payload)| Outgoing::Request {
                    correlation,
                    target,
                    service: service.into(),
                    deadline: deadline.map(|us| base + Duration::from_micros(us)),
                    trace,
                    payload,
                },
            );
        let reply = (
            any::<u64>(),
            prop_oneof![payload().prop_map(Ok), call_error().prop_map(Err)],
        )
            .prop_map(|(correlation, result)| Outgoing::Reply {
                correlation,
                result,
            });
        prop_oneof![request, reply]
    }

    /// What the peer should read back for `e`, sent at `now`.
    fn read_back(e: &Outgoing, now: Now) -> Incoming<'_> {
        match e {
            Outgoing::Request {
                correlation,
                target,
                service,
                deadline,
                trace,
                payload,
            } => Incoming::Request {
                correlation: *correlation,
                target: *target,
                service,
                deadline: deadline.map(|d| now.wall_of(d).max(1)),
                trace: *trace,
                payload,
            },
            Outgoing::Reply {
                correlation,
                result,
            } => Incoming::Reply {
                correlation: *correlation,
                result: result.as_deref().map_err(Clone::clone),
            },
        }
    }

    /// Reads a frame to its end or its first error, checking on the way that the reader
    /// always advances and that what it hands out borrows from the frame (nothing is copied
    /// or allocated for it).
    fn read_all(bytes: &[u8]) -> (Vec<Incoming<'_>>, Option<WireError>) {
        let range = bytes.as_ptr_range();
        let within = |s: &[u8]| {
            s.is_empty() || (range.start <= s.as_ptr() && s.as_ptr_range().end <= range.end)
        };
        let mut reader = Reader::new(bytes);
        let mut out = Vec::new();
        for _ in 0..=bytes.len() {
            match reader.next_envelope() {
                None => return (out, None),
                Some(Err(e)) => return (out, Some(e)),
                Some(Ok(e)) => {
                    match &e {
                        Incoming::Request {
                            service, payload, ..
                        } => {
                            assert!(within(service.as_bytes()) && within(payload));
                        }
                        Incoming::Reply {
                            result: Ok(payload),
                            ..
                        } => assert!(within(payload)),
                        Incoming::Reply { .. } => {}
                    }
                    out.push(e);
                }
            }
        }
        panic!("more envelopes than bytes in a frame of {}", bytes.len());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn envelopes_come_back_as_sent(envelopes in prop::collection::vec(envelope(), 1..8)) {
            let now = Now::read();
            let bytes = frame(&envelopes, now);
            let (read, error) = read_all(&bytes);
            prop_assert_eq!(error, None);
            let expected: Vec<Incoming<'_>> = envelopes.iter().map(|e| read_back(e, now)).collect();
            prop_assert_eq!(read, expected);
        }

        /// A frame cut anywhere yields the whole envelopes before the cut and then
        /// `Truncated`: never a misread envelope.
        #[test]
        fn a_cut_frame_is_refused_after_its_whole_envelopes(
            envelopes in prop::collection::vec(envelope(), 1..5),
            cut in any::<prop::sample::Index>(),
        ) {
            let now = Now::read();
            let mut ends = Vec::new();
            let mut bytes = Vec::new();
            for e in &envelopes {
                if e.encode(&mut bytes, now) {
                    ends.push(bytes.len());
                }
            }
            prop_assume!(!bytes.is_empty());
            let cut = cut.index(bytes.len());
            let whole = ends.iter().filter(|end| **end <= cut).count();
            let (read, error) = read_all(&bytes[..cut]);
            let (all, _) = read_all(&bytes);
            prop_assert_eq!(&read[..], &all[..whole]);
            let expected = if ends.contains(&cut) || cut == 0 { None } else { Some(WireError::Truncated) };
            prop_assert_eq!(error, expected);
        }

        /// A deadline from a peer is any 64-bit number: it never panics, has passed exactly
        /// when it is not after the wall clock now, and otherwise comes back to the same
        /// wall-clock time.
        #[test]
        fn any_deadline_from_a_peer_is_read_without_panicking(
            ahead in prop_oneof![any::<u64>(), 0u64..10_000_000],
            behind in any::<bool>(),
        ) {
            let now = Now::read();
            let us = if behind { now.wall_us.saturating_sub(ahead) } else { now.wall_us.saturating_add(ahead) };
            match now.mono_of(us) {
                None => prop_assert!(us <= now.wall_us, "{} us ahead read as passed", us - now.wall_us),
                Some(at) => {
                    prop_assert!(us > now.wall_us);
                    prop_assert_eq!(now.wall_of(at), us);
                }
            }
        }

        /// Arbitrary bytes, or a valid frame with bytes changed, never panic the reader.
        #[test]
        fn any_bytes_are_read_or_refused_without_panicking(
            bytes in prop::collection::vec(any::<u8>(), 0..512),
        ) {
            let _ = read_all(&bytes);
        }

        #[test]
        fn a_corrupted_frame_is_read_or_refused_without_panicking(
            envelopes in prop::collection::vec(envelope(), 1..5),
            changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = frame(&envelopes, Now::read());
            prop_assume!(!bytes.is_empty());
            for (at, value) in changes {
                let at = at.index(bytes.len());
                bytes[at] = value;
            }
            let _ = read_all(&bytes);
        }
    }
}

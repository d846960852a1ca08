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

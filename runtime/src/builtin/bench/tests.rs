use super::*;

fn spec(payload_bytes: usize, in_flight: usize) -> BenchSpec {
    BenchSpec {
        target: NodeId::try_new("n2").unwrap(),
        mode: BenchMode::Call,
        payload_bytes,
        duration: Duration::from_secs(1),
        in_flight,
        service: BenchService::Echo,
    }
}

fn refusal(spec: &BenchSpec) -> String {
    match spec.validate() {
        Err(BenchError::Invalid(m)) => m,
        other => panic!("{spec:?} was not refused: {other:?}"),
    }
}

#[test]
fn the_product_of_payload_and_senders_is_bounded_and_named() {
    // Each field within its own bound...
    assert!(spec(MAX_PAYLOAD_BYTES, 16).validate().is_ok());
    assert!(spec(16 * 1024, MAX_IN_FLIGHT).validate().is_ok());
    // ...but not their product.
    let m = refusal(&spec(MAX_PAYLOAD_BYTES, MAX_IN_FLIGHT));
    assert!(
        m.contains("payload_bytes") && m.contains("in_flight"),
        "{m}"
    );
    assert!(m.contains(&MAX_BYTES_IN_FLIGHT.to_string()), "{m}");
    assert!(spec(MAX_PAYLOAD_BYTES, 17).validate().is_err());
}

#[test]
fn each_field_is_checked_and_named() {
    assert!(refusal(&spec(MAX_PAYLOAD_BYTES + 1, 1)).starts_with("payload_bytes"));
    assert!(refusal(&spec(16, 0)).starts_with("in_flight"));
    assert!(refusal(&spec(16, MAX_IN_FLIGHT + 1)).starts_with("in_flight"));
    let mut s = spec(16, 1);
    s.duration = Duration::ZERO;
    assert!(refusal(&s).starts_with("duration_ms"));
    s.duration = MAX_DURATION + Duration::from_millis(1);
    assert!(refusal(&s).starts_with("duration_ms"));
}

#[test]
fn a_kv_bench_writes_values_within_the_kv_limit() {
    let mut s = spec(MAX_VALUE_BYTES, 1);
    s.service = BenchService::Kv;
    assert!(s.validate().is_ok());
    s.payload_bytes = MAX_VALUE_BYTES + 1;
    let m = refusal(&s);
    assert!(
        m.contains("payload_bytes") && m.contains(&MAX_VALUE_BYTES.to_string()),
        "{m}"
    );
    s.payload_bytes = 16;
    s.mode = BenchMode::Cast;
    assert!(refusal(&s).starts_with("mode"));
}

#[test]
fn the_cast_window_keeps_every_sender_within_the_budget() {
    for (payload, in_flight) in [(MAX_PAYLOAD_BYTES, 16), (1024, 1024), (16, 1), (0, 4)] {
        let s = spec(payload, in_flight);
        let window = s.cast_window();
        assert!((1..=MAX_CAST_WINDOW).contains(&window));
        assert!(
            window * payload.max(64) * in_flight <= MAX_BYTES_IN_FLIGHT,
            "{payload} x {in_flight}: window {window}"
        );
    }
    assert_eq!(spec(MAX_PAYLOAD_BYTES, 16).cast_window(), 1);
}

//! `cargo bench --bench runtime -- events`: the event bus end to end across two node
//! processes, beside plain calls over the same link in the same run.
//!
//! Probes live on n1 and their tallies on n2 (see `troupe_runtime::probe`). `/admin/bench` on
//! n1 emits for 3 s with 64 in flight: each emit is a durable write that commits one event.
//! Every event is then delivered by n1's relays to n2, applied there durably (once: each
//! delivery carries its dedupe mark into the tally's batch) and acknowledged. The figure is
//! events committed divided by the time from the first emit until n1's relays had every one of
//! them acknowledged; the latency is from an event being durable in its outbox to its
//! acknowledgement (`GET /admin/events`).

use serde_json::{Value, json};
use tokio::time::{Duration, Instant};

use crate::{troupe_bench, two_nodes_with};

const SERVICES: &str = "[services.probe]\nshards = 16\nnodes = [\"n1\"]\n\n\
                        [services.probe-tally]\nshards = 16\nnodes = [\"n2\"]\n";

async fn delivered(client: &reqwest::Client, port: u16) -> (u64, Value) {
    let stats: Value = client
        .get(format!("http://127.0.0.1:{port}/admin/events"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let subscription = stats["subscriptions"][0].clone();
    (
        subscription["delivered"].as_u64().unwrap_or(0),
        subscription,
    )
}

pub(crate) async fn events() {
    let nodes = two_nodes_with(SERVICES, 2).await;
    let client = crate::admin_http();
    let echo = troupe_bench(nodes.http[0], "call", 64, 3000).await;
    let started = Instant::now();
    let report: Value = client
        .post(format!("http://127.0.0.1:{}/admin/bench", nodes.http[0]))
        .json(&json!({"target_node": "n1", "mode": "call", "service": "probe", "payload_bytes": 0, "duration_ms": 3000, "in_flight": 64}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let emitted = report["messages"].as_u64().unwrap();
    let emitting = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    let subscription = loop {
        let (done, subscription) = delivered(&client, nodes.http[0]).await;
        if done >= emitted {
            break subscription;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of {emitted} events delivered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let all = started.elapsed();
    println!("events, probes on n1 -> tallies on n2, 64 emits in flight for 3 s:");
    println!(
        "  committed          {:>8.0} events/s (durable emits, p50 {} us, p99 {} us)",
        emitted as f64 / emitting.as_secs_f64(),
        report["latency_us"]["p50"],
        report["latency_us"]["p99"]
    );
    println!(
        "  end to end         {:>8.0} events/s ({emitted} events committed, delivered, applied and acknowledged in {:.2} s)",
        emitted as f64 / all.as_secs_f64(),
        all.as_secs_f64()
    );
    println!(
        "  delivery latency   p50 {} us, p99 {} us (durable in the outbox -> acknowledged once applied durably)",
        subscription["latency_us"]["p50"], subscription["latency_us"]["p99"]
    );
    println!(
        "  baseline: echo calls n1 -> n2, 64 in flight: {:.0} calls/s (p50 {} us)",
        echo["per_second"].as_f64().unwrap_or_default(),
        echo["latency_us"]["p50"]
    );
}

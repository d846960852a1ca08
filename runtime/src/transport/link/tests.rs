use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};

use super::super::handshake::{self, Psk};
use super::super::seal::Sealer;
use super::super::wire::Outgoing;
use super::super::{Core, TransportSettings};
use super::Link;
use crate::cluster::NodeId;
use crate::registry::Registry;
use crate::service::{Endpoint, RemoteDelivery, Target};

fn id(s: &str) -> NodeId {
    NodeId::try_new(s).unwrap()
}

/// The transport core of node n2, whose one peer is n1.
fn core(tune: impl FnOnce(&mut TransportSettings)) -> Arc<Core> {
    let peers = HashMap::from([(id("n1"), "127.0.0.1:9".parse().unwrap())]);
    let mut settings = TransportSettings::new("127.0.0.1:0".parse().unwrap(), peers);
    tune(&mut settings);
    Arc::new(Core::new(
        id("n2"),
        Psk::for_test("cookie"),
        settings,
        Arc::new(Registry::new(id("n2"))),
    ))
}

fn core_of_n2() -> Arc<Core> {
    core(|_| {})
}

/// A link of `core` to n1, where n1 is this test, by hand, over memory: the link, n1's end
/// of the stream and n1's sealer.
async fn linked(core: &Arc<Core>, buffer: usize) -> (Link, DuplexStream, Sealer) {
    let (mut raw, mut node) = tokio::io::duplex(buffer);
    let psk = Psk::for_test("cookie");
    let (n1, n2) = (id("n1"), id("n2"));
    let (dialed, accepted) = tokio::join!(
        handshake::dial(&mut raw, &n1, &n2, &psk),
        handshake::accept(&mut node, &n2, &psk, |c| (c == "n1").then(|| id("n1"))),
    );
    let (peer, keys) = accepted.unwrap();
    let link = core
        .install_halves(peer, tokio::io::split(node), keys)
        .unwrap();
    (link, raw, dialed.unwrap().sealer)
}

/// One frame of one call to service `svc`.
fn call_frame(correlation: u64, payload: &[u8]) -> Vec<u8> {
    let now = super::super::wire::Now::read();
    let mut frame = vec![0u8; 4];
    Outgoing::Request {
        correlation: Some(correlation),
        target: Target::Any,
        service: Arc::from("svc"),
        deadline: Some(now.mono + Duration::from_secs(60)),
        trace: None,
        payload: payload.to_vec(),
    }
    .encode(&mut frame, now);
    let len = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&len.to_le_bytes());
    frame
}

/// A service that records what it gets and, if `answer`, echoes it back at once.
struct Recorder {
    seen: mpsc::UnboundedSender<Bytes>,
    answer: bool,
}

impl Endpoint for Recorder {
    fn deliver_batch(
        &self,
        batch: Vec<RemoteDelivery>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            for d in batch {
                let _ = self.seen.send(d.payload.clone());
                if self.answer
                    && let Some(reply) = d.reply
                {
                    reply.send(Ok(d.payload.to_vec()));
                }
            }
        })
    }
}

fn recorder(core: &Arc<Core>, answer: bool) -> mpsc::UnboundedReceiver<Bytes> {
    let (seen, rx) = mpsc::unbounded_channel();
    core.registry
        .set_endpoint("svc", Arc::new(Recorder { seen, answer }));
    rx
}

async fn wait_closed(link: &Link) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while !link.is_closed() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the link closes");
}

#[tokio::test]
async fn a_dropped_call_gives_back_its_pending_entry_and_in_flight_count() {
    let core = core(|_| {});
    // The peer (this test) never answers.
    let (link, _raw, _) = linked(&core, 64 * 1024).await;
    let call = link.call(
        Arc::from("svc"),
        Target::Any,
        b"hello".to_vec(),
        None,
        Instant::now() + Duration::from_secs(60),
    );
    // The caller gives up long before the call's deadline (an HTTP timeout, a client gone):
    // its future is dropped half way.
    let gave_up = tokio::time::timeout(Duration::from_millis(50), call).await;
    assert!(gave_up.is_err());
    assert_eq!(
        link.waiting(),
        (0, 0),
        "(in flight, pending) after the call was dropped"
    );
}

#[tokio::test]
async fn a_tampered_byte_closes_the_link_and_nothing_is_delivered() {
    let core = core(|_| {});
    let mut seen = recorder(&core, false);
    let (link, mut raw, mut sealer) = linked(&core, 64 * 1024).await;

    // An intact frame is delivered.
    let sealed = sealer.seal(&call_frame(1, b"intact")).unwrap().to_vec();
    raw.write_all(&sealed).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), seen.recv()).await;
    assert_eq!(got.unwrap().unwrap(), Bytes::from_static(b"intact"));

    // One bit of the next one flipped on the way (in its payload): not delivered, and the
    // link is closed.
    let mut sealed = sealer.seal(&call_frame(2, b"forged")).unwrap().to_vec();
    let at = sealed.len() - 16 - 3;
    sealed[at] ^= 0x01;
    raw.write_all(&sealed).await.unwrap();
    wait_closed(&link).await;
    assert!(seen.try_recv().is_err(), "a tampered request was delivered");
    assert_eq!(core.stats.bad_frames.load(Ordering::Relaxed), 1);

    // Bytes injected whole (not sealed with the link's keys) fare no better.
    let core2 = core_of_n2();
    let mut seen = recorder(&core2, false);
    let (link, mut raw, _) = linked(&core2, 64 * 1024).await;
    raw.write_all(&call_frame(3, b"injected")).await.unwrap();
    wait_closed(&link).await;
    assert!(
        seen.try_recv().is_err(),
        "an injected request was delivered"
    );
}

#[tokio::test]
async fn a_peer_that_never_reads_is_stopped_at_the_reply_budget_then_cut_off() {
    let core = core(|s| {
        s.reply_budget_bytes = 256 * 1024;
        s.write_timeout = Duration::from_millis(300);
    });
    let mut seen = recorder(&core, true);
    let (link, mut raw, mut sealer) = linked(&core, 64 * 1024).await;
    let payload = vec![7u8; 16 * 1024];
    let sent = 400;
    // The peer writes calls and never reads its replies.
    let writer = tokio::spawn(async move {
        for c in 0..sent {
            let sealed = sealer.seal(&call_frame(c, &payload)).unwrap().to_vec();
            if raw.write_all(&sealed).await.is_err() {
                return;
            }
        }
        // Keep the stream open, unread, until the link gives up on it.
        std::future::pending::<()>().await;
    });
    wait_closed(&link).await;
    writer.abort();
    let mut delivered = 0;
    while seen.try_recv().is_ok() {
        delivered += 1;
    }
    // 256 KiB of budget holds 15 calls of 17 KiB; the 64 KiB pipe back holds 4 replies.
    assert!(
        delivered < 40,
        "{delivered} of {sent} calls were taken in while the peer read no reply"
    );
}

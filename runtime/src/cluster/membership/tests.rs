//! The membership actor and its gossip, on a paused clock: one node, no server, no peers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use ractor::{Actor, ActorRef};
use tokio::sync::{broadcast, watch};
use tokio::time::{Duration, Instant};

use super::{Membership, MembershipArgs, MembershipMsg, PAYLOAD_DELAY, initial_view};
use crate::cluster::gossip::{Gossip, PayloadChanged};
use crate::cluster::pulse::Beat;
use crate::cluster::{
    ClusterSettings, DetectorSettings, NodeId, NodeSpec, NodeStatus, ReconnectSettings,
};

/// Far longer than any test here runs (on the paused clock): every heartbeat after the first
/// is an early one.
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(60);

/// A gossip that records what the cluster asks of it.
#[derive(Default)]
struct Probe {
    payload: Mutex<Vec<u8>>,
    /// How many heartbeats were built (each asks for the payload once).
    num_payloads: AtomicUsize,
    changed: OnceLock<PayloadChanged>,
}

impl Probe {
    fn set_payload(&self, payload: &[u8]) {
        *self.payload.lock().unwrap() = payload.to_vec();
    }

    fn num_payloads(&self) -> usize {
        self.num_payloads.load(Ordering::SeqCst)
    }

    fn changed(&self) -> PayloadChanged {
        self.changed.get().expect("attached at start").clone()
    }
}

impl Gossip for Probe {
    fn payload(&self) -> Vec<u8> {
        self.num_payloads.fetch_add(1, Ordering::SeqCst);
        self.payload.lock().unwrap().clone()
    }

    fn peer_payload(&self, _node: &NodeId, _incarnation: u64, _payload: &[u8]) {}

    fn peer_status(&self, _node: &NodeId, _status: NodeStatus) {}

    fn attach(&self, changed: PayloadChanged) {
        assert!(self.changed.set(changed).is_ok(), "attached once");
    }
}

async fn start(id: &str, gossip: Arc<Probe>) -> ActorRef<MembershipMsg> {
    let settings = ClusterSettings::with_timings(
        id,
        vec![NodeSpec::new(id, "127.0.0.1:9".parse().unwrap())],
        "a-cookie-for-tests-only".to_string(),
        DetectorSettings {
            heartbeat_interval: HEARTBEAT_INTERVAL,
            suspect_after: HEARTBEAT_INTERVAL * 2,
            down_after: HEARTBEAT_INTERVAL * 3,
        },
        ReconnectSettings::default(),
    )
    .unwrap();
    let (events, _) = broadcast::channel(16);
    let (view, _) = watch::channel(initial_view(&settings));
    let args = MembershipArgs {
        settings,
        gossip,
        store_bytes: None,
        events,
        view,
    };
    Actor::spawn(None, Membership, args).await.unwrap().0
}

/// Waits (on the paused clock) until `done`, for at most a second.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The heartbeat a peer pulling now would get.
async fn pulled(membership: &ActorRef<MembershipMsg>) -> Beat {
    let bytes = ractor::call_t!(membership, MembershipMsg::Pull, 1000).unwrap();
    Beat::decode(&bytes).expect("a heartbeat that decodes")
}

#[tokio::test(start_paused = true)]
async fn a_payload_change_is_sent_early_and_a_burst_of_changes_shares_one_heartbeat() {
    let probe = Arc::new(Probe::default());
    probe.set_payload(b"v0");
    let membership = start("gossip-early", Arc::clone(&probe)).await;
    wait_until("the first heartbeat", || probe.num_payloads() == 1).await;
    let first = pulled(&membership).await;
    assert_eq!(
        (first.from.as_str(), first.payload.as_slice()),
        ("gossip-early", &b"v0"[..])
    );

    // A hundred changes at once (a service starting many members) build one heartbeat, a
    // couple of milliseconds later, long before the next regular one.
    probe.set_payload(b"v1");
    let changed = probe.changed();
    let started = Instant::now();
    for _ in 0..100 {
        changed.notify();
    }
    wait_until("the early heartbeat", || probe.num_payloads() >= 2).await;
    let waited = started.elapsed();
    assert!(waited >= PAYLOAD_DELAY, "sent after {waited:?}");
    assert!(waited < Duration::from_millis(50), "sent after {waited:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(probe.num_payloads(), 2, "one heartbeat for the whole burst");
    let second = pulled(&membership).await;
    assert_eq!(second.payload, b"v1");
    assert!(second.seq > first.seq);

    // A later change gets a heartbeat of its own.
    probe.set_payload(b"v2");
    changed.notify();
    wait_until("the next early heartbeat", || probe.num_payloads() == 3).await;
    assert_eq!(pulled(&membership).await.payload, b"v2");
    membership.stop(None);
}

#[tokio::test(start_paused = true)]
async fn a_payload_too_large_for_a_heartbeat_is_not_sent_and_pulls_go_unanswered() {
    let probe = Arc::new(Probe::default());
    probe.set_payload(&vec![7; crate::cluster::MAX_PAYLOAD_BYTES]);
    let membership = start("gossip-large", Arc::clone(&probe)).await;
    wait_until("the first heartbeat", || probe.num_payloads() == 1).await;
    assert_eq!(
        pulled(&membership).await.payload.len(),
        crate::cluster::MAX_PAYLOAD_BYTES
    );

    probe.set_payload(&vec![7; crate::cluster::MAX_PAYLOAD_BYTES + 1]);
    probe.changed().notify();
    wait_until("the early heartbeat", || probe.num_payloads() >= 2).await;
    // No answer: the pull times out, as a peer's would (it then judges this node silent).
    let unanswered = ractor::call_t!(membership, MembershipMsg::Pull, 100);
    assert!(unanswered.is_err(), "a pull was answered");

    // Once the payload shrinks, heartbeats flow again.
    probe.set_payload(b"small");
    probe.changed().notify();
    wait_until("the next early heartbeat", || probe.num_payloads() == 3).await;
    assert_eq!(pulled(&membership).await.payload, b"small");
    membership.stop(None);
}

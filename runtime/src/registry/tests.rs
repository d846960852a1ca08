use super::*;
use crate::NodeStatus;

fn id(s: &str) -> NodeId {
    NodeId::try_new(s).unwrap()
}

fn directory(version: u64, services: &[(&str, &[(u32, u64)])]) -> Directory {
    Directory {
        version,
        services: services
            .iter()
            .map(|(name, slots)| {
                (
                    name.to_string(),
                    slots
                        .iter()
                        .map(|(index, pid)| MemberSlot {
                            index: *index,
                            pid: *pid,
                        })
                        .collect(),
                )
            })
            .collect(),
    }
}

fn nodes_of(registry: &Registry, service: &str) -> Vec<(String, u32, u64)> {
    registry
        .members(service)
        .members
        .iter()
        .map(|m| (m.node.to_string(), m.slot.index, m.slot.pid))
        .collect()
}

#[test]
fn peers_directories_are_applied_when_newer_and_dropped_when_down() {
    let r = Registry::new(id("n1"));
    let e0 = r.epoch();
    r.apply_peer(&id("n2"), 1, directory(2, &[("echo", &[(0, 10), (1, 11)])]));
    assert!(r.epoch() > e0);
    assert_eq!(
        nodes_of(&r, "echo"),
        vec![("n2".into(), 0, 10), ("n2".into(), 1, 11)]
    );

    // An older or equal version of the same incarnation is ignored.
    let e1 = r.epoch();
    r.apply_peer(&id("n2"), 1, directory(1, &[("echo", &[])]));
    r.apply_peer(&id("n2"), 1, directory(2, &[("echo", &[])]));
    assert_eq!(r.epoch(), e1);
    assert_eq!(nodes_of(&r, "echo").len(), 2);

    // A restarted peer (new incarnation) replaces its directory whatever its version.
    r.apply_peer(&id("n2"), 2, directory(1, &[("echo", &[(0, 20)])]));
    assert_eq!(nodes_of(&r, "echo"), vec![("n2".into(), 0, 20)]);

    // Suspect: kept but not routed to; up again: routed; down: forgotten.
    r.peer_status(&id("n2"), NodeStatus::Suspect);
    assert!(nodes_of(&r, "echo").is_empty());
    r.peer_status(&id("n2"), NodeStatus::Up);
    assert_eq!(nodes_of(&r, "echo").len(), 1);
    r.peer_status(&id("n2"), NodeStatus::Down);
    assert!(nodes_of(&r, "echo").is_empty());
    // Its next heartbeat brings it back even with the same version.
    r.apply_peer(&id("n2"), 2, directory(1, &[("echo", &[(0, 20)])]));
    assert_eq!(nodes_of(&r, "echo").len(), 1);
}

#[test]
fn the_summary_counts_members_per_node() {
    let r = Registry::new(id("n1"));
    r.declare("kv", ServiceSpec::default());
    r.apply_peer(&id("n3"), 9, directory(1, &[("echo", &[(0, 1), (1, 2)])]));
    let summary = r.summary(&[id("n1"), id("n2"), id("n3")]);
    let names: Vec<_> = summary.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["echo", "kv"]);
    let counts: Vec<_> = summary[0]
        .members
        .iter()
        .map(|c| (c.node.as_str(), c.count))
        .collect();
    assert_eq!(counts, [("n1", 0), ("n2", 0), ("n3", 2)]);
}

#[test]
fn local_changes_bump_the_version_and_notify() {
    let r = Registry::new(id("n1"));
    let notified = Arc::new(AtomicU64::new(0));
    let seen = Arc::clone(&notified);
    r.set_on_local_change(move || {
        seen.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(r.local_directory().version, 0);
    // Removing an unknown member changes nothing.
    r.remove_local("echo", 5);
    assert_eq!(notified.load(Ordering::Relaxed), 0);
    assert_eq!(r.local_directory(), Directory::default());
}

/// What the cluster hands the registry as a peer's heartbeat payload.
mod gossip {
    use proptest::prelude::*;
    use ractor::Actor;
    use ractor_cluster::RactorMessage;

    use super::*;
    use crate::cluster::{Gossip, MAX_PAYLOAD_BYTES, PayloadChanged};

    #[test]
    fn a_peer_payload_that_does_not_decode_is_dropped_and_counted() {
        let r = Registry::new(id("n1"));
        let good = directory(3, &[("echo", &[(0, 10), (1, 11)])]).encode();
        let e0 = r.epoch();
        let mut trailing = good.clone();
        trailing.push(0);
        // Garbage, nothing, a directory cut short or followed by more bytes, and a length
        // claiming billions of members: dropped, counted, nothing routed, nothing changed.
        let bad: [&[u8]; 5] = [
            &[0xff; 12],
            &[],
            &good[..good.len() - 1],
            &trailing,
            &[
                3, 1, 4, b'e', b'c', b'h', b'o', 0xfc, 0xff, 0xff, 0xff, 0x7f,
            ],
        ];
        for (i, payload) in bad.iter().enumerate() {
            Gossip::peer_payload(&r, &id("n2"), 1, payload);
            assert_eq!(r.num_bad_payloads(), i as u64 + 1);
        }
        assert_eq!(r.epoch(), e0);
        assert!(nodes_of(&r, "echo").is_empty());
        assert!(!r.is_routable(&id("n2")));

        // The next good one is applied as ever.
        Gossip::peer_payload(&r, &id("n2"), 1, &good);
        assert_eq!(r.num_bad_payloads(), 5);
        assert_eq!(
            nodes_of(&r, "echo"),
            vec![("n2".into(), 0, 10), ("n2".into(), 1, 11)]
        );
        // And the failure detector's verdicts reach it through the same door.
        Gossip::peer_status(&r, &id("n2"), NodeStatus::Down);
        assert!(nodes_of(&r, "echo").is_empty());
    }

    /// The largest directory one service can have under the configuration's bounds (4,096
    /// members on one node, a 64-character name, pids and slot indexes at their largest) fits
    /// in a payload at least 17 times over.
    #[test]
    fn largest_service_directory() {
        let mut d = Directory {
            version: u64::MAX,
            ..Directory::default()
        };
        let members = (0..4096)
            .map(|i| MemberSlot {
                index: u32::MAX - i,
                pid: u64::MAX - u64::from(i),
            })
            .collect();
        d.services.insert("s".repeat(64), members);
        let len = d.encode().len();
        assert!(len <= 58 * 1024, "{len} bytes");
        assert!(MAX_PAYLOAD_BYTES / len >= 17, "{len} bytes");
        assert_eq!(Directory::decode(&d.encode()), Some(d));
    }

    #[derive(RactorMessage)]
    struct Nothing;

    struct Idle;

    impl Actor for Idle {
        type Msg = Nothing;
        type State = ();
        type Arguments = ();

        async fn pre_start(
            &self,
            _myself: ractor::ActorRef<Nothing>,
            _args: (),
        ) -> Result<(), ractor::ActorProcessingErr> {
            Ok(())
        }
    }

    /// A member starting or stopping here asks the cluster for an early heartbeat, whose
    /// payload then carries the new directory.
    #[tokio::test]
    async fn a_local_change_asks_for_an_early_heartbeat_with_the_new_directory() {
        let r = Registry::new(id("n1"));
        let notified = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&notified);
        r.attach(PayloadChanged::new(move || {
            seen.fetch_add(1, Ordering::SeqCst);
        }));
        assert_eq!(Directory::decode(&r.payload()), Some(Directory::default()));

        let (actor, handle) = Actor::spawn(None, Idle, ()).await.unwrap();
        let slot = MemberSlot { index: 0, pid: 42 };
        r.add_local("echo", slot, actor.get_cell(), Arc::new(()));
        assert_eq!(notified.load(Ordering::SeqCst), 1);
        let sent = Directory::decode(&r.payload()).unwrap();
        assert_eq!(sent.version, 1);
        assert_eq!(sent.services["echo"], vec![slot]);

        r.remove_local("echo", 42);
        assert_eq!(notified.load(Ordering::SeqCst), 2);
        let sent = Directory::decode(&r.payload()).unwrap();
        assert_eq!((sent.version, sent.services["echo"].len()), (2, 0));
        actor.stop(None);
        handle.await.unwrap();
    }

    fn any_directory() -> impl Strategy<Value = Directory> {
        let slots = prop::collection::vec(
            any::<(u32, u64)>().prop_map(|(index, pid)| MemberSlot { index, pid }),
            0..20,
        );
        (
            any::<u64>(),
            prop::collection::btree_map(".{0,20}", slots, 0..6),
        )
            .prop_map(|(version, services)| Directory { version, services })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn directories_come_back_as_sent(d in any_directory()) {
            prop_assert_eq!(Directory::decode(&d.encode()), Some(d));
        }

        /// Arbitrary bytes, or a real directory cut or with bytes changed, as a peer's
        /// payload: applied whole or dropped and counted, never a panic.
        #[test]
        fn any_payload_is_applied_or_dropped_without_panicking(
            bytes in prop::collection::vec(any::<u8>(), 0..256),
            d in any_directory(),
            cut in any::<prop::sample::Index>(),
            changes in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let r = Registry::new(id("n1"));
            let mut bad = 0;
            for payload in [bytes, d.encode()[..cut.index(d.encode().len())].to_vec()] {
                Gossip::peer_payload(&r, &id("n2"), 1, &payload);
                bad += u64::from(Directory::decode(&payload).is_none());
                prop_assert_eq!(r.num_bad_payloads(), bad);
            }
            let mut changed = d.encode();
            for (at, value) in changes {
                let at = at.index(changed.len());
                changed[at] = value;
            }
            Gossip::peer_payload(&r, &id("n2"), 2, &changed);
        }
    }
}

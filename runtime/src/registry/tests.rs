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

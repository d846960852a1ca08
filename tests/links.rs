//! Links between real node processes: a cut link heals while both nodes stay up, a peer that
//! never reads cannot grow a node's memory, and a wrong cookie is refused on the link port.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::{COOKIE, TestCluster, metric, wait_until};
use tokio::time::Instant;
use troupe_runtime::echo::EchoRequest;
use troupe_runtime::transport::probe::RawLink;

/// The local ports of established TCP connections to `127.0.0.1:port`.
fn connections_to(port: u16) -> Vec<u16> {
    let out = Command::new("ss")
        .args(["-tnH", "state", "established", "dst", "127.0.0.1"])
        .args(["dport", "=", &port.to_string()])
        .output()
        .expect("run ss");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .nth(2)?
                .rsplit(':')
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// Resets every TCP connection to `127.0.0.1:port` with `ss -K` (SOCK_DESTROY: needs root and
/// a kernel with `CONFIG_INET_DIAG_DESTROY`). The local ports it reset, or why it could not.
fn cut_connections_to(port: u16) -> Result<Vec<u16>, String> {
    let before = connections_to(port);
    if before.is_empty() {
        return Err(format!("no connection to port {port} to cut"));
    }
    let out = Command::new("ss")
        .args(["-K", "dst", "127.0.0.1", "dport", "=", &port.to_string()])
        .output()
        .map_err(|e| format!("cannot run ss: {e}"))?;
    let after = connections_to(port);
    if before.iter().any(|p| after.contains(p)) {
        return Err(format!(
            "ss -K did not reset the connection (not root, or a kernel without \
             CONFIG_INET_DIAG_DESTROY?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(before)
}

/// A key of `kv` whose shard lives on `node`, as `observer` sees the shard map.
async fn kv_key_on(cluster: &TestCluster, observer: &str, node: &str) -> String {
    let map = cluster.shard_map(observer, "kv").await;
    assert!(!map.is_empty(), "kv has shards");
    (0..)
        .map(|i| format!("links-{i}"))
        .find(|k| {
            map[troupe_runtime::shard::shard_of(k.as_bytes(), map.len() as u32) as usize] == node
        })
        .unwrap()
}

async fn echo_on(cluster: &TestCluster, from: &str, to: &str) -> bool {
    matches!(
        cluster
            .post(from, "/admin/echo", &json!({"node": to, "timeout_ms": 200}))
            .await,
        Some((200, body)) if body["node"] == to
    )
}

async fn kv_put_ok(cluster: &TestCluster, from: &str, key: &str, i: u64) -> bool {
    matches!(
        cluster.kv_put(from, key, &json!({"i": i})).await,
        Some((200 | 201, _))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_cut_while_both_nodes_stay_up_is_redialled_and_traffic_flows_within_a_second() {
    let mut cluster = TestCluster::new(2);
    cluster.start_formed().await;
    let key = kv_key_on(&cluster, "n1", "n2").await;
    wait_until("echo n1 -> n2", Duration::from_secs(10), || {
        echo_on(&cluster, "n1", "n2")
    })
    .await;
    assert!(kv_put_ok(&cluster, "n1", &key, 0).await);

    // n1 dials n2 (its id sorts first): cut that connection, and only it.
    let link_port = cluster.node("n2").link_port;
    let cut = match cut_connections_to(link_port) {
        Ok(cut) => cut,
        Err(why) => {
            eprintln!("SKIPPED: cannot reset a TCP connection here: {why}");
            return;
        }
    };
    let cut_at = Instant::now();
    let echo_back = wait_until(
        "echo n1 -> n2 after the cut",
        Duration::from_secs(10),
        || echo_on(&cluster, "n1", "n2"),
    )
    .await;
    let mut i = 0;
    wait_until("kv n1 -> n2 after the cut", Duration::from_secs(10), || {
        i += 1;
        kv_put_ok(&cluster, "n1", &key, i)
    })
    .await;
    let kv_back = cut_at.elapsed();
    let relinked: Vec<u16> = connections_to(link_port);
    eprintln!(
        "cut link(s) from local port(s) {cut:?}; echo back after {echo_back:?}, kv after {kv_back:?}; \
         new link from {relinked:?}"
    );
    assert!(
        relinked.iter().all(|p| !cut.contains(p)),
        "a new connection carries the traffic"
    );
    // The target is 1 s; the bound leaves room for two busy cores.
    assert!(
        echo_back < Duration::from_secs(3),
        "echo back after {echo_back:?}"
    );
    assert!(
        kv_back < Duration::from_secs(3),
        "kv back after {kv_back:?}"
    );
    assert!(cluster.all_up(&["n1", "n2"]).await, "both nodes stayed up");
    cluster.wait_ready("n1", Duration::from_secs(5)).await;
    cluster.wait_ready("n2", Duration::from_secs(5)).await;
}

/// The node's resident memory may not pass this while a peer floods it. A debug node idles at
/// a few tens of MB; a link holds at most its reply budget (16 MiB) of requests and as much
/// again of replies, plus its read buffers; the rest is headroom. Before the fix the node grew
/// by gigabytes within seconds.
const RSS_BOUND: u64 = 300 * 1024 * 1024;

/// Floods node `n1` with 64 KiB echo calls over an authenticated link that never reads a
/// reply, as node `n2`, until the node closes the link or a minute passes; fails at once if
/// the node's memory passes [`RSS_BOUND`]. Returns the peak resident memory, how long the
/// node took to cut the link off, and whether meanwhile n2 said it was not ready for want of
/// a link to n1 (the flooding peer took n2's place at n1, so n2 had no link while n1 was up).
async fn flood_without_reading(cluster: &mut TestCluster) -> (u64, Duration, bool) {
    let addr: SocketAddr = format!("127.0.0.1:{}", cluster.node("n1").link_port)
        .parse()
        .unwrap();
    let mut raw = RawLink::connect(addr, "n2", "n1", COOKIE).await.unwrap();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        let request = EchoRequest::new(vec![0x5a; 64 * 1024]);
        // 40,000 calls: 2.5 GiB, far more than the bound.
        for _ in 0..10_000 {
            if let Err(e) = raw.send_calls("echo", &request, 4).await {
                return Some(e);
            }
        }
        None
    });
    let pid = cluster.proc("n1").child.id();
    let mut peak = 0;
    let mut n2_not_ready = false;
    loop {
        let rss = support::rss_bytes(pid);
        peak = peak.max(rss);
        if rss > RSS_BOUND {
            writer.abort();
            panic!(
                "n1 grew to {} MB after {:?} of a peer that never reads",
                rss >> 20,
                started.elapsed()
            );
        }
        if writer.is_finished() {
            break;
        }
        if !n2_not_ready && let Some((503, body)) = cluster.get("n2", "/health/ready").await {
            n2_not_ready = body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("no link to node n1"));
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the node did not cut off a peer that never reads (peak {} MB)",
            peak >> 20
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ended = writer.await.unwrap();
    assert!(
        ended.is_some(),
        "the peer wrote 2.5 GiB that the node took in without a reply being read"
    );
    (peak, started.elapsed(), n2_not_ready)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_cannot_grow_a_nodes_memory_and_is_cut_off() {
    let mut cluster = TestCluster::new(2);
    cluster.start_formed().await;
    let pid = cluster.proc("n1").child.id();
    let idle = support::rss_bytes(pid);

    // The flooding peer takes n2's place at n1 (a link for a peer replaces the old one), so
    // n2 is up with no link from n1's point of view until n1 cuts the flood off and redials.
    let (peak1, cut1, n2_not_ready) = flood_without_reading(&mut cluster).await;
    assert!(
        n2_not_ready,
        "n2, up without a link to n1 for seconds, said it was ready"
    );
    let after1 = support::rss_bytes(pid);
    // Once more: what the first flood held was given back, so the peak does not climb.
    let (peak2, cut2, _) = flood_without_reading(&mut cluster).await;
    let after2 = support::rss_bytes(pid);
    eprintln!(
        "n1 resident: idle {} MB; flood 1 peak {} MB, cut off after {cut1:?}, then {} MB; \
         flood 2 peak {} MB, cut off after {cut2:?}, then {} MB",
        idle >> 20,
        peak1 >> 20,
        after1 >> 20,
        peak2 >> 20,
        after2 >> 20
    );
    assert!(
        peak2 <= peak1 + 32 * 1024 * 1024,
        "the second flood climbed higher: {} MB then {} MB",
        peak1 >> 20,
        peak2 >> 20
    );

    // The node serves as before, and its link to n2 came back.
    wait_until("echo n1 -> n2 again", Duration::from_secs(10), || {
        echo_on(&cluster, "n1", "n2")
    })
    .await;
    cluster.wait_ready("n1", Duration::from_secs(10)).await;
    cluster.wait_ready("n2", Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cookie_is_refused_on_the_link_port_and_counted() {
    let mut cluster = TestCluster::new(2);
    cluster.start_formed().await;
    let addr: SocketAddr = format!("127.0.0.1:{}", cluster.node("n2").link_port)
        .parse()
        .unwrap();
    let refused = || async {
        metric(
            &cluster.metrics("n2").await,
            "troupe_link_refused_handshakes_total",
        )
        .unwrap_or_default()
    };
    let before = refused().await;
    let attempt = RawLink::connect(addr, "n1", "n2", "not-the-cluster-cookie-at-all").await;
    assert!(attempt.is_err(), "a wrong cookie made a link");
    wait_until(
        "the refusal to be counted",
        Duration::from_secs(5),
        || async { refused().await > before },
    )
    .await;
    // The cluster's own link is untouched.
    assert!(echo_on(&cluster, "n1", "n2").await);
}

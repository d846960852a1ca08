//! The cluster (membership) port under attack, from the outside: a stranger that opens many
//! connections and never authenticates must neither grow the node's memory without bound nor
//! keep its connections, and the cluster must stay formed meanwhile.
//!
//! The bounds asserted come from the runtime's documented limits: a frame on the cluster port
//! is at most 1 MiB (a heartbeat's largest size plus framing), at most 16 connections may be
//! unauthenticated at once (the oldest is dropped when more arrive) and a connection that has
//! not authenticated within 2 s is dropped.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use std::time::Duration;

use support::{TestCluster, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Connections the attacker opens (the number the fault was seen with).
const NUM_ATTACKERS: usize = 20;
/// The length prefix attackers send first: the old frame limit.
const OLD_LIMIT: u64 = 16 * 1024 * 1024;
/// The length prefix attackers send next: the new frame limit, which the node must accept.
const NEW_LIMIT: u64 = 1024 * 1024;
/// How long after an attacker stops sending the node must have closed its connection: the
/// authentication deadline (2 s) with room for a busy machine. Before the fix the connections
/// stayed open for 40 s and more.
const CLOSED_WITHIN: Duration = Duration::from_secs(8);
/// How much the node's resident memory may grow under the attack. At most 16 unauthenticated
/// connections each buffer at most one frame of 1 MiB: 16 MiB, doubled for the allocator's
/// slack and the sessions' own state. Before the fix it grew by about 330 MB (20 frames of
/// 16 MiB).
const MAX_GROWTH_KIB: u64 = 48 * 1024;

/// The resident memory of process `pid` in KiB (VmRSS in /proc).
fn vm_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS line");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// One attacker: connects, sends a length prefix of `claimed` and then all but one byte of the
/// frame (as far as the node takes them), then stalls and reads. Returns how long after it
/// stopped sending the node closed the connection, or None if it did not within `give_up`.
async fn attack(port: u16, claimed: u64, give_up: Duration) -> Option<Duration> {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let (mut read, mut write) = stream.into_split();
    let sender = async move {
        let _ = write.write_all(&claimed.to_be_bytes()).await;
        let chunk = vec![0x5a_u8; 64 * 1024];
        let mut left = usize::try_from(claimed).unwrap() - 1;
        while left > 0 {
            let n = left.min(chunk.len());
            if write.write_all(&chunk[..n]).await.is_err() {
                break;
            }
            left -= n;
        }
        // Keep the write half open: a half-close would let the node see EOF.
        write
    };
    // Send while watching for the close: a node that closes early also ends the sending.
    let mut buf = [0_u8; 1024];
    let closed_early = tokio::select! {
        write = sender => { drop_later(write); false }
        _ = read_until_closed(&mut read, &mut buf) => true,
    };
    let stalled_at = Instant::now();
    if closed_early {
        return Some(Duration::ZERO);
    }
    tokio::time::timeout(give_up, read_until_closed(&mut read, &mut buf))
        .await
        .ok()
        .map(|()| stalled_at.elapsed())
}

/// Keeps a write half alive (and its connection half-open) for as long as the test runs.
fn drop_later(write: tokio::net::tcp::OwnedWriteHalf) {
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(120)).await;
        drop(write);
    });
}

async fn read_until_closed(read: &mut tokio::net::tcp::OwnedReadHalf, buf: &mut [u8]) {
    loop {
        match read.read(buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// 20 connections that each send a frame's length prefix and all but one byte of it, then
/// stall: first with the old limit's 16 MiB (refused at once now), then with the new limit's
/// 1 MiB (buffered until the deadline or the cap drops them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_on_the_cluster_port_cannot_exhaust_memory_and_are_dropped() {
    let mut cluster = TestCluster::new(2);
    cluster.start_formed().await;
    let pid = cluster.proc("n2").pid().as_raw();
    let port = cluster.node("n2").cluster_port;
    let before = vm_rss_kib(pid);

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = tokio::spawn({
        let done = done.clone();
        async move {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                peak = peak.max(vm_rss_kib(pid));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        }
    });
    let mut closed_after = Vec::new();
    for claimed in [OLD_LIMIT, NEW_LIMIT] {
        let attackers: Vec<_> = (0..NUM_ATTACKERS)
            .map(|_| tokio::spawn(attack(port, claimed, Duration::from_secs(60))))
            .collect();
        let mut closed = Vec::new();
        for a in attackers {
            closed.push(a.await.unwrap());
        }
        closed_after.push((claimed, closed));
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let peak = sampler.await.unwrap();
    eprintln!(
        "n2 VmRSS before {before} KiB, peak during the attack {peak} KiB (+{} KiB); \
         connections closed after stalling: {closed_after:?}",
        peak.saturating_sub(before)
    );

    // The cluster stayed formed and serving meanwhile.
    wait_until(
        "both nodes to see each other up after the attack",
        Duration::from_secs(10),
        || cluster.all_up(&["n1", "n2"]),
    )
    .await;

    assert!(
        peak.saturating_sub(before) < MAX_GROWTH_KIB,
        "n2 grew from {before} KiB to {peak} KiB under {NUM_ATTACKERS} unauthenticated connections"
    );
    for (claimed, closed) in &closed_after {
        for (i, closed) in closed.iter().enumerate() {
            assert!(
                closed.is_some_and(|c| c < CLOSED_WITHIN),
                "attacker {i} ({claimed}-byte frame): n2 kept the unauthenticated connection \
                 open after it stalled ({closed:?}; None: still open after 60 s)"
            );
        }
    }
}

/// Connections that send nothing at all, or a small frame's first bytes and then stall, are
/// dropped by the authentication deadline too; more of them than the cap are dropped at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_stalled_connections_are_dropped_by_the_deadline() {
    let mut cluster = TestCluster::new(2);
    cluster.start_formed().await;
    let port = cluster.node("n2").cluster_port;
    let mut conns = Vec::new();
    for i in 0..NUM_ATTACKERS {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        if i % 2 == 1 {
            // A 100-byte frame of which 10 bytes come.
            stream.write_all(&100_u64.to_be_bytes()).await.unwrap();
            stream.write_all(&[0_u8; 10]).await.unwrap();
        }
        conns.push(stream);
    }
    let start = Instant::now();
    let waits: Vec<_> = conns
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let mut buf = [0_u8; 64];
                let wait = async {
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                };
                let closed = tokio::time::timeout(Duration::from_secs(30), wait).await;
                closed.ok().map(|()| start.elapsed())
            })
        })
        .collect();
    let mut closed_after = Vec::new();
    for w in waits {
        closed_after.push(w.await.unwrap());
    }
    eprintln!("connections closed after: {closed_after:?}");
    for (i, closed) in closed_after.iter().enumerate() {
        assert!(
            closed.is_some_and(|c| c < CLOSED_WITHIN),
            "connection {i}: n2 kept a silent unauthenticated connection open \
             ({closed:?}; None: still open after 30 s)"
        );
    }
    wait_until(
        "both nodes to see each other up",
        Duration::from_secs(10),
        || cluster.all_up(&["n1", "n2"]),
    )
    .await;
}

/// Three nodes, each in its own network namespace, joined by a bridge in the test's namespace.
/// Needs root and `ip`; [`Netns::try_new`] says why not otherwise.
struct Netns {
    tag: String,
    subnet: String,
    n: usize,
}

/// Runs `ip` with `args`; whether it succeeded.
fn ip(args: &[&str]) -> bool {
    std::process::Command::new("ip")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Netns {
    fn try_new(n: usize) -> Result<Self, String> {
        let pid = std::process::id();
        let net = Self {
            tag: format!("tp{pid}"),
            subnet: format!("10.213.{}", pid % 250),
            n,
        };
        if !ip(&["netns", "add", &net.ns(1)]) {
            return Err("cannot create a network namespace (needs root and iproute2)".into());
        }
        let br = net.bridge();
        let ok = ip(&["link", "add", &br, "type", "bridge"])
            && ip(&["addr", "add", &format!("{}.254/24", net.subnet), "dev", &br])
            && ip(&["link", "set", &br, "up"])
            && (1..=n).all(|i| {
                let (ns, port, peer) = (net.ns(i), net.port(i), format!("{}p{i}", net.tag));
                (i == 1 || ip(&["netns", "add", &ns]))
                    && ip(&["link", "add", &port, "type", "veth", "peer", "name", &peer])
                    && ip(&["link", "set", &peer, "netns", &ns])
                    && ip(&["link", "set", &port, "master", &br, "up"])
                    && ip(&[
                        "-n",
                        &ns,
                        "addr",
                        "add",
                        &format!("{}/24", net.addr(i)),
                        "dev",
                        &peer,
                    ])
                    && ip(&["-n", &ns, "link", "set", &peer, "up"])
                    && ip(&["-n", &ns, "link", "set", "lo", "up"])
            });
        if ok {
            Ok(net)
        } else {
            Err("cannot build the bridge and veth pairs".into())
        }
    }

    fn ns(&self, i: usize) -> String {
        format!("{}n{i}", self.tag)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    /// The bridge's port of node `i`.
    fn port(&self, i: usize) -> String {
        format!("{}v{i}", self.tag)
    }

    fn addr(&self, i: usize) -> String {
        format!("{}.{i}", self.subnet)
    }

    fn set_port(&self, i: usize, up: bool) {
        assert!(ip(&[
            "link",
            "set",
            &self.port(i),
            if up { "up" } else { "down" }
        ]));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for i in 1..=self.n {
            ip(&["link", "del", &self.port(i)]);
            ip(&["netns", "del", &self.ns(i)]);
        }
        ip(&["link", "del", &self.bridge()]);
    }
}

/// A node process in a namespace, killed on drop.
struct NsNode {
    child: std::process::Child,
    _stdin: Option<std::process::ChildStdin>,
}

impl Drop for NsNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Statuses of every node as node `i` sees them, or None.
async fn ns_statuses(
    client: &reqwest::Client,
    net: &Netns,
    i: usize,
) -> Option<Vec<(String, String)>> {
    let url = format!("http://{}:7180/admin/cluster", net.addr(i));
    let body: serde_json::Value = client.get(url).send().await.ok()?.json().await.ok()?;
    Some(
        body["nodes"]
            .as_array()?
            .iter()
            .map(|n| {
                (
                    n["id"].as_str().unwrap_or_default().to_string(),
                    n["status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
    )
}

async fn ns_all_up(client: &reqwest::Client, net: &Netns) -> bool {
    for i in 1..=net.n {
        match ns_statuses(client, net, i).await {
            Some(s) if s.len() == net.n && s.iter().all(|(_, st)| st == "up") => {}
            _ => return false,
        }
    }
    true
}

/// After a real network partition heals, the cluster is whole again within 2 s: the bridge
/// port of n1 (the node that dials both others) goes down and comes back.
///
/// The cut lasts 8 s rather than the 6 s the fault was reported with: a session that outlives
/// the cut is revived by TCP's retransmissions, which fall about 0.2, 0.6, 1.4, 3.0, 6.2 and
/// 12.6 s after the cut, so a 6 s cut heals quickly by luck when nothing else is done, while an
/// 8 s one waits until 12.6 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healed_partition_is_whole_again_within_two_seconds() {
    const N: usize = 3;
    const CUT: Duration = Duration::from_secs(8);
    const HEALED_WITHIN: Duration = Duration::from_secs(2);
    let net = match Netns::try_new(N) {
        Ok(net) => net,
        Err(why) => {
            eprintln!("SKIPPED a_healed_partition_is_whole_again_within_two_seconds: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        String::from("[cluster]\ndata_dir = \"data\"\n\n[http]\nshutdown_grace_ms = 5000\n");
    for i in 1..=N {
        let a = net.addr(i);
        config.push_str(&format!(
            "\n[[node]]\nid = \"n{i}\"\ncluster_addr = \"{a}:7170\"\nhttp_addr = \"{a}:7180\"\nlink_addr = \"{a}:7190\"\n"
        ));
    }
    let config_path = dir.path().join("cluster.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut nodes = Vec::new();
    for i in 1..=N {
        let log = std::fs::File::create(dir.path().join(format!("n{i}.log"))).unwrap();
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", &net.ns(i)])
            .arg(support::troupe_bin())
            .args([
                "node",
                "--id",
                &format!("n{i}"),
                "--exit-with-stdin",
                "--config",
            ])
            .arg(&config_path)
            .env("TROUPE_COOKIE", support::COOKIE)
            .env("TROUPE_JWT_SECRET", support::TOKEN_KEY)
            .env("TROUPE_LOG_FORMAT", "json")
            .env("RUST_LOG", "info,troupe_runtime=debug")
            .env_remove("TROUPE_CONFIG")
            .stdin(std::process::Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        nodes.push(NsNode {
            child,
            _stdin: stdin,
        });
    }
    let client = support::http()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    wait_until("the cluster to form", Duration::from_secs(30), || {
        ns_all_up(&client, &net)
    })
    .await;

    net.set_port(1, false);
    let cut = Instant::now();
    wait_until("n2 to see n1 down", Duration::from_secs(6), || async {
        ns_statuses(&client, &net, 2)
            .await
            .is_some_and(|s| s.iter().any(|(id, st)| id == "n1" && st == "down"))
    })
    .await;
    tokio::time::sleep_until(cut + CUT).await;
    net.set_port(1, true);
    let healed = wait_until(
        "every node to see every node up after the heal",
        Duration::from_secs(20),
        || ns_all_up(&client, &net),
    )
    .await;
    eprintln!("whole again {healed:?} after a {CUT:?} partition healed");
    assert!(
        healed < HEALED_WITHIN,
        "whole again only {healed:?} after the partition healed"
    );
    drop(nodes);
}

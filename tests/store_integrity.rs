//! The store keeps what it acknowledged, or says why it cannot: a changed cluster (a node
//! added, a shard count changed) never serves a shard from an empty keyspace, and every
//! acknowledged key answers its value or a 503 that names the cause, never a 404.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use support::{NodeAddr, TestCluster, config_text_with, node_addrs, troupe_bin, wait_until};

/// Writes `n` keys through the nodes in turn; every write must be acknowledged.
async fn write_keys(cluster: &TestCluster, prefix: &str, n: usize) -> Vec<(String, Value)> {
    write_padded(cluster, prefix, n, 0).await
}

/// [`write_keys`] with `pad` bytes of filler in each value.
async fn write_padded(
    cluster: &TestCluster,
    prefix: &str,
    n: usize,
    pad: usize,
) -> Vec<(String, Value)> {
    let ids = cluster.ids();
    let mut written = Vec::new();
    for i in 0..n {
        let key = format!("{prefix}-{i}");
        let value = json!({"i": i, "prefix": prefix, "pad": "p".repeat(pad)});
        let via = &ids[i % ids.len()];
        wait_until(
            &format!("PUT {key} to be acknowledged"),
            Duration::from_secs(20),
            || async { matches!(cluster.kv_put(via, &key, &value).await, Some((200, _))) },
        )
        .await;
        written.push((key, value));
    }
    written
}

/// Stops every node with SIGTERM (a clean stop) and waits for each to exit.
async fn stop_all(cluster: &mut TestCluster) {
    for id in cluster.ids() {
        cluster.proc(&id).signal(Signal::SIGTERM);
    }
    for id in cluster.ids() {
        let mut p = cluster.take(&id);
        let status = p.wait_exit(Duration::from_secs(30)).await;
        assert!(status.is_some(), "{id} did not stop within 30 s");
    }
}

/// Rewrites the cluster's configuration for `nodes` with `extra` service sections.
fn configure(cluster: &mut TestCluster, nodes: Vec<NodeAddr>, extra: &str) {
    std::fs::write(&cluster.config, config_text_with(&nodes, extra)).unwrap();
    cluster.nodes = nodes;
}

/// Starts every configured node and waits until each sees all of them up.
async fn start_and_form(cluster: &mut TestCluster) {
    cluster.start_all();
    let ids = cluster.ids();
    let names: Vec<&str> = ids.iter().map(String::as_str).collect();
    wait_until("the cluster to form", Duration::from_secs(60), || {
        cluster.all_up(&names)
    })
    .await;
    for id in &ids {
        cluster.wait_ready(id, Duration::from_secs(30)).await;
    }
}

/// What reading every written key through every node gave: (values, 503s with a named cause).
/// Panics on anything else: a 404, a wrong value, a 503 that does not say why.
async fn read_back(
    cluster: &TestCluster,
    written: &[(String, Value)],
    cause: &[&str],
) -> (usize, usize) {
    let (mut found, mut refused) = (0, 0);
    for id in cluster.ids() {
        for (key, value) in written {
            let path = format!("/admin/kv/{key}");
            let (status, body) = answered(cluster, &id, &path).await;
            match status {
                200 => {
                    assert_eq!(&body["value"], value, "{key} via {id}");
                    found += 1;
                }
                503 => {
                    let message = body["error"]["message"].as_str().unwrap_or_default();
                    assert!(
                        cause.iter().all(|c| message.contains(c)),
                        "{key} via {id}: a 503 must name the cause ({cause:?}): {body}"
                    );
                    refused += 1;
                }
                other => panic!("{key} via {id}: acknowledged data answered {other}: {body}"),
            }
        }
    }
    (found, refused)
}

/// GET `path` on node `id`, retried while the node does not answer at all.
async fn answered(cluster: &TestCluster, id: &str, path: &str) -> (u16, Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(answer) = cluster.get(id, path).await {
            return answer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id} did not answer GET {path}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The placement of `service` in `/admin/cluster` of node `id`.
async fn placement(cluster: &TestCluster, id: &str, service: &str) -> Value {
    let (_, body) = cluster.get(id, "/admin/cluster").await.unwrap();
    body["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == service))
        .map(|s| s["placement"].clone())
        .unwrap_or(Value::Null)
}

/// `troupe status` against node `id`: its standard output.
fn status_text(cluster: &TestCluster, id: &str) -> String {
    let output = Command::new(troupe_bin())
        .args(["status", "--node", id, "--config"])
        .arg(&cluster.config)
        .env("TROUPE_COOKIE", support::COOKIE)
        .env("TROUPE_JWT_SECRET", support::TOKEN_KEY)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "troupe status failed: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Fault 11: a fourth node added to the configuration of a cluster with data, every node
/// restarted. Before: 25 of 200 keys answered 404 (their shards now placed on the new node,
/// with an empty keyspace). Now every key answers its value (its shard is served where its
/// data is) and the moves the configuration asks for are shown as pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_node_never_hides_acknowledged_keys() {
    let mut cluster = TestCluster::new(3);
    cluster.start_formed().await;
    let written = write_keys(&cluster, "grow", 200).await;
    stop_all(&mut cluster).await;

    let mut nodes = cluster.nodes.clone();
    let mut n4 = node_addrs(4).pop().unwrap();
    n4.id = "n4".into();
    nodes.push(n4);
    configure(&mut cluster, nodes, "");
    start_and_form(&mut cluster).await;

    let (found, refused) = read_back(&cluster, &written, &["kv"]).await;
    assert_eq!(
        (found, refused),
        (4 * 200, 0),
        "every key is served where its data is"
    );
    for id in cluster.ids() {
        let p = placement(&cluster, &id, "kv").await;
        let moves = p["pending_moves"].as_array().cloned().unwrap_or_default();
        assert!(!moves.is_empty(), "{id} shows no pending move: {p}");
        assert!(moves.iter().all(|m| m["to"] == "n4"), "{p}");
    }
    let text = status_text(&cluster, "n4");
    assert!(text.contains("pending moves"), "{text}");
    // New writes still go where the data is, and read back through the new node.
    let more = write_keys(&cluster, "after", 40).await;
    let (found, _) = read_back(&cluster, &more, &["kv"]).await;
    assert_eq!(found, 4 * 40);
    // Whatever is served, every node is ready: the moves wait for the operator.
    for id in cluster.ids() {
        cluster.wait_ready(&id, Duration::from_secs(20)).await;
    }
}

/// Fault 11: kv's shard count changed from 16 to 32 with data, every node restarted. Before:
/// 46 of 100 keys answered 404 (keys hash to other shards). Now every key answers 503 naming
/// the cause, writes too, and going back to 16 shards serves every key again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_shard_count_is_refused_not_rehashed() {
    let mut cluster = TestCluster::new(3);
    let nodes = cluster.nodes.clone();
    configure(&mut cluster, nodes.clone(), "[services.kv]\nshards = 16\n");
    cluster.start_formed().await;
    let written = write_keys(&cluster, "reshard", 100).await;
    stop_all(&mut cluster).await;

    configure(&mut cluster, nodes.clone(), "[services.kv]\nshards = 32\n");
    start_and_form(&mut cluster).await;
    let (found, refused) = read_back(&cluster, &written, &["16 shards", "32"]).await;
    assert_eq!((found, refused), (0, 3 * 100));
    let (status, body) = cluster
        .kv_put("n2", "reshard-new", &json!(1))
        .await
        .unwrap();
    assert_eq!(status, 503, "{body}");
    let text = status_text(&cluster, "n1");
    assert!(text.contains("kv: refused"), "{text}");
    stop_all(&mut cluster).await;

    configure(&mut cluster, nodes, "[services.kv]\nshards = 16\n");
    start_and_form(&mut cluster).await;
    let (found, refused) = read_back(&cluster, &written, &[]).await;
    assert_eq!((found, refused), (3 * 100, 0));
}

/// Overwrites 4 KiB in the middle of the sled `db` file of node `id` (stopped).
fn damage_store(cluster: &TestCluster, id: &str) {
    use std::io::{Seek, SeekFrom, Write};
    let db = cluster
        .dir
        .path()
        .join("data")
        .join(id)
        .join("store")
        .join("db");
    let len = std::fs::metadata(&db).unwrap().len();
    assert!(len > 16 * 1024, "{} is only {len} bytes", db.display());
    let mut file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.seek(SeekFrom::Start(len / 2)).unwrap();
    file.write_all(&[0x5a; 4096]).unwrap();
    file.sync_all().unwrap();
}

/// Fault 12: 100 keys written, a clean stop, 4 KiB in the middle of one node's store file
/// overwritten, a restart. Before: 31 of 100 keys answered 404 and nothing was logged. Now
/// every key answers its value or a 503 that names the damage, the damaged node logs an error
/// and is not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_file_is_reported_never_served_as_missing() {
    let mut cluster = TestCluster::new(3);
    cluster.start_formed().await;
    let written = write_padded(&cluster, "rot", 100, 2000).await;
    stop_all(&mut cluster).await;
    damage_store(&cluster, "n2");

    cluster.start_all();
    wait_until("the cluster to form", Duration::from_secs(60), || {
        cluster.all_up(&["n1", "n2", "n3"])
    })
    .await;
    for id in ["n1", "n3"] {
        cluster.wait_ready(id, Duration::from_secs(30)).await;
    }
    let (found, refused) = read_back(&cluster, &written, &["damaged"]).await;
    eprintln!("after the damage: {found} reads answered the value, {refused} a 503 naming it");
    assert!(
        refused > 0,
        "the damage went unnoticed: every key was still there"
    );
    let (status, body) = answered(&cluster, "n2", "/health/ready").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("damaged"),
        "{body}"
    );
    let log = cluster.log("n2");
    assert!(
        log.lines()
            .any(|l| l.contains("\"ERROR\"") && l.contains("damaged")),
        "no error log line names the damage"
    );
}

/// A tmpfs of `size` mounted for a test, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts one, or says why not (not root, no mount in this sandbox).
    fn mount(size: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        Ok(Self { dir })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Fills the disk with a file; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.path().join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![7u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fault 13: the data directories on a 24 MiB filesystem that fills up. Before: every node
/// stayed ready, reads of data on disk failed, and after space came back writes hung until
/// their deadline until a restart. Now a full disk makes the node not ready and refuses writes
/// at once naming the cause, durable data stays readable, and once space returns the store
/// resumes by itself with every acknowledged write there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_reads_and_recovers_by_itself() {
    let disk = match SmallDisk::mount("24m") {
        Ok(d) => d,
        Err(why) => {
            eprintln!("skipped: cannot mount a small filesystem here: {why}");
            return;
        }
    };
    let mut cluster = TestCluster::new(3);
    let nodes = cluster.nodes.clone();
    let text = config_text_with(&nodes, "").replace(
        "data_dir = \"data\"",
        &format!("data_dir = {:?}", disk.path().display().to_string()),
    );
    std::fs::write(&cluster.config, text).unwrap();
    cluster.start_formed().await;
    let mut acknowledged = write_keys(&cluster, "before", 60).await;

    let filler = disk.fill();
    // Writes now fail, each at once and naming the cause; acknowledged ones are kept. A write
    // already applied when the flush failed may or may not survive: its outcome is unknown
    // (504); every later one is refused before it is applied (503).
    let http = support::http()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut refused = 0;
    for i in 0..300 {
        let key = format!("during-{i}");
        let value = json!({"during": i, "pad": "d".repeat(4000)});
        let via = &nodes[i % 3];
        let started = tokio::time::Instant::now();
        let answer =
            support::send_json(http.put(via.url(&format!("/admin/kv/{key}"))).json(&value)).await;
        let took = started.elapsed();
        let (status, body) = answer.unwrap();
        match status {
            200 => acknowledged.push((key, value)),
            503 | 504 | 507 => {
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains("full") || message.contains("space"),
                    "a refused write names the cause: {body}"
                );
                if refused > 0 {
                    assert!(
                        took < Duration::from_secs(2),
                        "a refused write took {took:?}"
                    );
                }
                refused += 1;
            }
            other => panic!("PUT {key} answered {other}: {body}"),
        }
        if refused >= 10 {
            break;
        }
    }
    assert!(refused >= 10, "the disk never filled");
    wait_until(
        "a node to say its disk is full",
        Duration::from_secs(10),
        || async {
            for n in &nodes {
                if let Some((503, body)) = cluster.get(&n.id, "/health/ready").await
                    && body.to_string().contains("full")
                {
                    return true;
                }
            }
            false
        },
    )
    .await;
    let (found, _) = read_back(&cluster, &acknowledged, &["never"]).await;
    assert_eq!(found, 3 * acknowledged.len(), "durable data stays readable");

    std::fs::remove_file(filler).unwrap();
    let after = write_keys(&cluster, "after", 30).await;
    acknowledged.extend(after);
    for n in &nodes {
        cluster.wait_ready(&n.id, Duration::from_secs(20)).await;
    }
    let (found, _) = read_back(&cluster, &acknowledged, &["never"]).await;
    assert_eq!(
        found,
        3 * acknowledged.len(),
        "nothing acknowledged was lost"
    );
}

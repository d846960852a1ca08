//! Black-box test support: real `troupe` processes on real sockets, in a temporary directory.
//!
//! Every process a test starts is killed when its handle drops, also when the test panics; and
//! every node is started with `--exit-with-stdin`, so it stops by itself if the test process dies
//! without unwinding. When a test fails, the tail of each node's log is printed.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::time::Instant;

/// The binary under test.
pub fn troupe_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_troupe"))
}

/// A cookie for test clusters.
pub const COOKIE: &str = "test-cookie-0123456789abcdef";

/// The key test clusters sign access tokens with (`TROUPE_JWT_SECRET` of every node).
pub const TOKEN_KEY: &str = "test-token-key-0123456789abcdef-0123";

/// A token of `role` for the test clusters.
pub fn token(role: troupe_node::auth::Role) -> String {
    token_for("tester", role)
}

/// A token of `role` for user id `sub`, for the test clusters.
pub fn token_for(sub: &str, role: troupe_node::auth::Role) -> String {
    troupe_node::auth::Tokens::new(
        TOKEN_KEY.as_bytes(),
        troupe_node::auth::ISSUER,
        troupe_node::auth::AUDIENCE,
        troupe_node::auth::TOKEN_TTL,
    )
    .issue(sub, role)
    .expect("a token")
}

/// A plain HTTP client for the test clusters' edges: every request gives up after 15 s.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("an HTTP client")
}

/// A user's token for user id `sub`.
pub fn user_token(sub: &str) -> String {
    token_for(sub, troupe_node::auth::Role::User)
}

/// An HTTP client builder whose requests carry an admin's token (every `/admin` route needs
/// one).
pub fn http() -> reqwest::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = format!("Bearer {}", token(troupe_node::auth::Role::Admin));
    headers.insert(
        reqwest::header::AUTHORIZATION,
        value.parse().expect("a header value"),
    );
    reqwest::Client::builder().default_headers(headers)
}

/// `n` distinct free ports on 127.0.0.1.
///
/// Ports come from a range below the kernel's ephemeral range, handed out once per test
/// process: a node that a test kills and restarts keeps its ports, and no other test of the
/// same process (nor the kernel, for outgoing connections) can take them in between.
pub fn free_ports(n: usize) -> Vec<u16> {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 40) as u16 * 250,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let mut ports = Vec::with_capacity(n);
    while ports.len() < n {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_000, "test ports exhausted");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    ports
}

/// One configured node of a test cluster.
#[derive(Debug, Clone)]
pub struct NodeAddr {
    pub id: String,
    pub cluster_port: u16,
    pub http_port: u16,
    pub link_port: u16,
}

impl NodeAddr {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }
}

/// A running `troupe` process, killed on drop.
pub struct Proc {
    pub child: Child,
    stdin: Option<ChildStdin>,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"))
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).expect("signal the process");
    }

    /// SIGSTOPs the process and waits (up to 5 s) until every one of its threads is stopped:
    /// the signal is delivered asynchronously, and a thread still running may answer a
    /// request sent right after `kill` returned.
    pub async fn freeze(&self) {
        self.signal(Signal::SIGSTOP);
        let tasks = format!("/proc/{}/task", self.pid());
        let stopped = || {
            let Ok(entries) = std::fs::read_dir(&tasks) else {
                return false;
            };
            entries.flatten().all(|task| {
                std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
                    // The state follows the command name's closing parenthesis.
                    stat.rsplit_once(") ")
                        .and_then(|(_, rest)| rest.chars().next())
                        .is_some_and(|state| state == 'T' || state == 't')
                })
            })
        };
        let start = Instant::now();
        while !stopped() {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "process {} did not stop within 5 s",
                self.pid()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit, up to `deadline`.
    pub async fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if start.elapsed() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = kill(self.pid(), Signal::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cluster of real node processes configured in a temporary directory.
pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub nodes: Vec<NodeAddr>,
    procs: HashMap<String, Proc>,
    client: reqwest::Client,
    starts: usize,
}

impl TestCluster {
    /// A cluster of `n` nodes `n1..=nN` on free ports, none started.
    pub fn new(n: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let nodes = node_addrs(n);
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, config_text(&nodes)).expect("write config");
        Self {
            dir,
            config,
            nodes,
            procs: HashMap::new(),
            client: http()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("http client"),
            starts: 0,
        }
    }

    pub fn node(&self, id: &str) -> &NodeAddr {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .expect("configured node")
    }

    pub fn ids(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.id.clone()).collect()
    }

    /// Starts node `id` with the test cookie.
    pub fn start(&mut self, id: &str) {
        self.start_with_cookie(id, COOKIE);
    }

    /// Starts node `id` with `cookie`.
    pub fn start_with_cookie(&mut self, id: &str, cookie: &str) {
        self.start_with(id, cookie, &[]);
    }

    /// Starts node `id` with `cookie` and the extra environment `env`.
    pub fn start_with(&mut self, id: &str, cookie: &str, env: &[(&str, &str)]) {
        assert!(!self.procs.contains_key(id), "node {id} is already running");
        self.starts += 1;
        let log = self.dir.path().join(format!("{id}.{}.log", self.starts));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut child = Command::new(troupe_bin())
            .args(["node", "--id", id, "--exit-with-stdin", "--config"])
            .arg(&self.config)
            .env("TROUPE_COOKIE", cookie)
            .env("TROUPE_JWT_SECRET", TOKEN_KEY)
            .env("TROUPE_LOG_FORMAT", "json")
            .env("RUST_LOG", "info,troupe_runtime=debug")
            .env_remove("TROUPE_CONFIG")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn troupe node");
        let stdin = child.stdin.take();
        self.procs
            .insert(id.to_string(), Proc { child, stdin, log });
    }

    pub fn start_all(&mut self) {
        for id in self.ids() {
            self.start(&id);
        }
    }

    pub fn proc(&mut self, id: &str) -> &mut Proc {
        self.procs.get_mut(id).expect("running node")
    }

    /// SIGKILLs node `id` and reaps it.
    pub fn kill(&mut self, id: &str) {
        let mut p = self.procs.remove(id).expect("running node");
        p.child.kill().expect("kill");
        p.child.wait().expect("reap");
    }

    /// Removes node `id` from the running set without touching it (it has exited).
    pub fn take(&mut self, id: &str) -> Proc {
        self.procs.remove(id).expect("running node")
    }

    /// The log of running node `id` so far.
    pub fn log(&self, id: &str) -> String {
        self.procs.get(id).map(Proc::log_text).unwrap_or_default()
    }

    /// Whether every node but `absent` sees every other node but `absent` up.
    pub async fn all_up_except(&self, absent: &str) -> bool {
        for n in self.nodes.iter().filter(|n| n.id != absent) {
            let Some(s) = self.statuses(&n.id).await else {
                return false;
            };
            if !s.iter().all(|(id, status)| id == absent || status == "up") {
                return false;
            }
        }
        true
    }

    /// GET `path` on node `id`: status and JSON body.
    pub async fn get(&self, id: &str, path: &str) -> Option<(u16, Value)> {
        send_json(self.client.get(self.node(id).url(path))).await
    }

    /// Node statuses as `observer` sees them, or None if it does not answer.
    pub async fn statuses(&self, observer: &str) -> Option<HashMap<String, String>> {
        let (status, body) = self.get(observer, "/admin/cluster").await?;
        if status != 200 {
            return None;
        }
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

    /// Whether `observer` sees `node` with `status`.
    pub async fn sees(&self, observer: &str, node: &str, status: &str) -> bool {
        self.statuses(observer)
            .await
            .is_some_and(|s| s.get(node).map(String::as_str) == Some(status))
    }

    /// Whether every one of `observers` sees every configured node up.
    pub async fn all_up(&self, observers: &[&str]) -> bool {
        for o in observers {
            match self.statuses(o).await {
                Some(s) if s.len() == self.nodes.len() && s.values().all(|v| v == "up") => {}
                _ => return false,
            }
        }
        true
    }

    /// The incarnation of `node` as `observer` sees it.
    pub async fn incarnation(&self, observer: &str, node: &str) -> Option<String> {
        let (_, body) = self.get(observer, "/admin/cluster").await?;
        body["nodes"].as_array()?.iter().find(|n| n["id"] == node)?["incarnation"]
            .as_str()
            .map(str::to_string)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut procs: Vec<_> = self.procs.values().collect();
            procs.sort_by_key(|p| p.log.clone());
            for p in procs {
                print_tail(&p.log);
            }
        }
        self.procs.clear();
    }
}

/// Prints the end of a node's log, without the access-log lines of the test's own polling (a
/// test waiting on `/admin/cluster` would otherwise fill the tail with them).
fn print_tail(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let (served, lines): (Vec<_>, Vec<_>) = text
        .lines()
        .partition(|l| l.contains("\"message\":\"served\""));
    eprintln!(
        "---- last lines of {} ({} access-log lines left out) ----",
        log.display(),
        served.len()
    );
    for line in &lines[lines.len().saturating_sub(60)..] {
        eprintln!("{line}");
    }
}

/// `n` nodes `n1..=nN` on free ports.
pub fn node_addrs(n: usize) -> Vec<NodeAddr> {
    let ports = free_ports(3 * n);
    (0..n)
        .map(|i| NodeAddr {
            id: format!("n{}", i + 1),
            cluster_port: ports[3 * i],
            http_port: ports[3 * i + 1],
            link_port: ports[3 * i + 2],
        })
        .collect()
}

/// A config for `nodes` with the default timings, data under the config's directory, and
/// `extra` appended (service sections).
pub fn config_text_with(nodes: &[NodeAddr], extra: &str) -> String {
    let mut text =
        String::from("[cluster]\ndata_dir = \"data\"\n\n[http]\nshutdown_grace_ms = 5000\n");
    for n in nodes {
        text.push_str(&format!(
            "\n[[node]]\nid = \"{}\"\ncluster_addr = \"127.0.0.1:{}\"\nhttp_addr = \"127.0.0.1:{}\"\nlink_addr = \"127.0.0.1:{}\"\n",
            n.id, n.cluster_port, n.http_port, n.link_port
        ));
    }
    text.push('\n');
    text.push_str(extra);
    text
}

/// A config for `nodes` with the defaults.
pub fn config_text(nodes: &[NodeAddr]) -> String {
    config_text_with(nodes, "")
}

/// Polls `condition` until it holds or `deadline` passes; returns the time it took, or panics
/// naming `what`.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut condition: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if condition().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

impl TestCluster {
    /// POST a JSON body to node `id`: status and JSON body (None if the node did not answer
    /// within the client timeout).
    pub async fn post(&self, id: &str, path: &str, body: &Value) -> Option<(u16, Value)> {
        send_json(self.client.post(self.node(id).url(path)).json(body)).await
    }

    /// Live members of `service` per node, as `observer` sees them.
    pub async fn members(&self, observer: &str, service: &str) -> Option<HashMap<String, u64>> {
        let (_, body) = self.get(observer, "/admin/cluster").await?;
        let service = body["services"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == service)?
            .clone();
        Some(
            service["members"]
                .as_array()?
                .iter()
                .map(|m| {
                    (
                        m["node"].as_str().unwrap_or_default().to_string(),
                        m["count"].as_u64().unwrap_or_default(),
                    )
                })
                .collect(),
        )
    }

    /// Whether every one of `observers` sees `per_node` members of `service` on each of
    /// `nodes`.
    pub async fn service_whole(
        &self,
        observers: &[&str],
        service: &str,
        nodes: &[&str],
        per_node: u64,
    ) -> bool {
        for o in observers {
            let Some(members) = self.members(o, service).await else {
                return false;
            };
            if !nodes.iter().all(|n| members.get(*n) == Some(&per_node)) {
                return false;
            }
        }
        true
    }

    /// GET `/metrics` of node `id` as text.
    pub async fn metrics(&self, id: &str) -> String {
        match self.client.get(self.node(id).url("/metrics")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Starts every node and waits until each sees every node up and `echo` whole.
    pub async fn start_formed(&mut self) {
        self.start_all();
        let ids = self.ids();
        let names: Vec<&str> = ids.iter().map(String::as_str).collect();
        wait_until("the cluster to form", Duration::from_secs(30), || {
            self.all_up(&names)
        })
        .await;
        wait_until(
            "echo to be whole everywhere",
            Duration::from_secs(30),
            || self.service_whole(&names, "echo", &names, 2),
        )
        .await;
    }
}

/// The value of a metric line `name{labels} value` in Prometheus text.
pub fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}

impl TestCluster {
    /// PUT a JSON value to `/admin/kv/{key}` on node `id`: status and body.
    pub async fn kv_put(&self, id: &str, key: &str, value: &Value) -> Option<(u16, Value)> {
        let url = self.node(id).url(&format!("/admin/kv/{key}"));
        send_json(self.client.put(url).json(value)).await
    }

    /// Waits until node `id` answers ready.
    pub async fn wait_ready(&self, id: &str, deadline: Duration) {
        wait_until(&format!("{id} to be ready"), deadline, || async {
            matches!(self.get(id, "/health/ready").await, Some((200, _)))
        })
        .await;
    }

    /// The node of each shard of `service`, as `observer` sees it.
    pub async fn shard_map(&self, observer: &str, service: &str) -> Vec<String> {
        let Some((_, body)) = self.get(observer, "/admin/cluster").await else {
            return Vec::new();
        };
        body["services"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == service))
            .and_then(|s| s["shards"].as_array())
            .map(|shards| {
                shards
                    .iter()
                    .map(|s| s["node"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Sends a request: status and JSON body (`Null` if the body is not JSON), or None if the node
/// did not answer.
pub async fn send_json(request: reqwest::RequestBuilder) -> Option<(u16, Value)> {
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Some((status, body))
}

/// A small deterministic generator for test choices (seeded by the caller).
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The resident memory of process `pid`, in bytes (Linux: VmRSS of /proc/<pid>/status; 0 if
/// the process is gone).
pub fn rss_bytes(pid: impl std::fmt::Display) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

//! The processes under test: three `troupe node`s and the bare server, on free ports, killed
//! on drop.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::time::{Duration, Instant};

use super::TOKEN_KEY;

const COOKIE: &str = "bench-cookie-0123456789abcdef";
const NODES: [&str; 3] = ["n1", "n2", "n3"];
/// The services these routes use, as the default `cluster.toml` has them.
const SERVICES: [&str; 5] = [
    "users",
    "user-emails",
    "wallets",
    "products",
    "product-skus",
];
/// How long the cluster may take to form and serve.
const READY_WITHIN: Duration = Duration::from_secs(120);

/// An HTTP client whose requests carry an admin's token.
pub(crate) fn admin_http() -> reqwest::Client {
    let token = troupe_node::auth::Tokens::new(
        TOKEN_KEY.as_bytes(),
        troupe_node::auth::ISSUER,
        troupe_node::auth::AUDIENCE,
        troupe_node::auth::TOKEN_TTL,
    )
    .issue("bench", troupe_node::auth::Role::Admin)
    .unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A process whose CPU time can be read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Process(u32);

impl Process {
    /// This process.
    pub(crate) fn me() -> Self {
        Self(std::process::id())
    }

    /// Field `n` (counted from 1, as in proc(5)) of `/proc/<pid>/stat`, from field 3 on.
    fn stat(self, n: usize) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0)).ok()?;
        // After the command name (which may hold spaces), field 3 comes first.
        let rest = stat.rsplit_once(')')?.1;
        rest.split_whitespace().nth(n.checked_sub(3)?)?.parse().ok()
    }

    /// User plus system CPU time so far, in microseconds (utime and stime, 100 ticks/s).
    pub(crate) fn cpu_us(self) -> f64 {
        match (self.stat(14), self.stat(15)) {
            (Some(user), Some(system)) => (user + system) * 10_000.0,
            _ => f64::NAN,
        }
    }

    /// Minor page faults so far (minflt).
    pub(crate) fn minor_faults(self) -> f64 {
        self.stat(10).unwrap_or(f64::NAN)
    }
}

/// Three nodes of one cluster.
pub(crate) struct Cluster {
    children: Vec<Child>,
    http: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Cluster {
    /// Starts the nodes and waits until every shard of every service is up.
    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("[cluster]\ndata_dir = \"data\"\n[log]\nlevel = \"warn\"\n");
        for service in SERVICES {
            text.push_str(&format!("[services.{service}]\nshards = 16\n"));
        }
        let held: Vec<_> = (0..3 * NODES.len())
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        drop(held);
        let mut http = Vec::new();
        for (i, id) in NODES.iter().enumerate() {
            http.push(ports[3 * i + 1]);
            text.push_str(&format!(
                "[[node]]\nid = \"{id}\"\ncluster_addr = \"127.0.0.1:{}\"\nhttp_addr = \"127.0.0.1:{}\"\nlink_addr = \"127.0.0.1:{}\"\n",
                ports[3 * i],
                ports[3 * i + 1],
                ports[3 * i + 2]
            ));
        }
        let config = dir.path().join("cluster.toml");
        std::fs::write(&config, text).unwrap();
        let children = NODES
            .iter()
            .map(|id| {
                Command::new(env!("CARGO_BIN_EXE_troupe"))
                    .args(["node", "--id", id, "--exit-with-stdin", "--config"])
                    .arg(&config)
                    .env("TROUPE_COOKIE", COOKIE)
                    .env("TROUPE_JWT_SECRET", TOKEN_KEY)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let cluster = Self {
            children,
            http,
            _dir: dir,
        };
        cluster.wait_ready().await;
        cluster
    }

    async fn wait_ready(&self) {
        let client = admin_http();
        let started = Instant::now();
        'wait: loop {
            assert!(started.elapsed() < READY_WITHIN, "the cluster did not form");
            tokio::time::sleep(Duration::from_millis(200)).await;
            for port in &self.http {
                let Ok(response) = client
                    .get(format!("http://127.0.0.1:{port}/admin/cluster"))
                    .send()
                    .await
                else {
                    continue 'wait;
                };
                let body: Value = response.json().await.unwrap_or(Value::Null);
                let serving = SERVICES.iter().all(|name| {
                    body["services"]
                        .as_array()
                        .and_then(|s| s.iter().find(|s| s["name"] == *name))
                        .and_then(|s| s["shards"].as_array())
                        .is_some_and(|shards| {
                            shards.len() == 16 && shards.iter().all(|s| s["status"] == "up")
                        })
                });
                if body["formed"] != true || !serving {
                    continue 'wait;
                }
            }
            return;
        }
    }

    /// How many nodes.
    pub(crate) fn len(&self) -> usize {
        NODES.len()
    }

    /// The id of node `i`.
    pub(crate) fn id(&self, i: usize) -> &'static str {
        NODES[i]
    }

    /// The index of node `id`.
    pub(crate) fn index_of(&self, id: &str) -> usize {
        NODES.iter().position(|n| *n == id).unwrap()
    }

    /// The HTTP port of node `i`.
    pub(crate) fn port(&self, i: usize) -> u16 {
        self.http[i]
    }

    /// The process of node `i`.
    pub(crate) fn process(&self, i: usize) -> Process {
        Process(self.children[i].id())
    }

    /// The JSON answer of the first success of `request` (sent again while it fails, as the
    /// cluster may still be settling).
    pub(crate) async fn until_ok(&self, request: impl Fn() -> reqwest::RequestBuilder) -> Value {
        let started = Instant::now();
        loop {
            let last = match request().send().await {
                Ok(r) if r.status().is_success() => return r.json().await.unwrap(),
                Ok(r) => format!("{}: {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => e.to_string(),
            };
            assert!(started.elapsed() < READY_WITHIN, "never succeeded: {last}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Registers a user with `email` through node 0 and returns a token from its login.
    pub(crate) async fn user_token(&self, email: &str) -> String {
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{}", self.port(0));
        let password = "bench-reader-password";
        self.until_ok(|| {
            client
                .post(format!("{base}/api/v1/users"))
                .json(&json!({"email": email, "name": "Bench reader", "password": password}))
        })
        .await;
        let login = self
            .until_ok(|| {
                client
                    .post(format!("{base}/api/v1/auth/login"))
                    .json(&json!({"email": email, "password": password}))
            })
            .await;
        login["access_token"].as_str().unwrap().to_string()
    }
}

/// The bare server (this binary with `--bare`), killed on drop.
pub(crate) struct Bare {
    child: tokio::process::Child,
    /// Where it listens.
    pub(crate) port: u16,
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Bare {
    /// Starts it, answering with `body`.
    pub(crate) async fn start(body: &str) -> Self {
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .arg("--bare")
            .arg(body)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        tokio::io::BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .unwrap();
        let port = line.trim().parse().unwrap();
        Self { child, port }
    }

    /// Its process.
    pub(crate) fn process(&self) -> Process {
        Process(self.child.id().unwrap())
    }
}

//! `--up`: the local cluster of the configuration, started by the load generator itself as
//! `troupe up` starts it ([`crate::up::node_command`]), so that it owns the node processes.
//! Their output goes to `<data_dir>/load-<id>.log`. With `--chaos` it then also SIGKILLs or
//! SIGSTOPs one random node at a time and brings it back (restart, or SIGCONT) after a while,
//! so that a majority keeps serving. Before the run's end every node is running again.

use std::fs::File;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;
use tokio::process::{Child, ChildStdin};
use tokio::sync::watch;
use tokio::time::Instant;

use super::stats::Tally;
use crate::config::{ConfigArgs, NodeConfig};
use crate::secrets;

/// How long the whole cluster may take to answer ready.
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// How long a node stays killed or stopped before it is brought back.
const DOWN_FOR: Duration = Duration::from_secs(2);

struct Owned {
    id: String,
    child: Child,
    /// Held open: the node stops when its standard input closes.
    stdin: Option<ChildStdin>,
}

impl Owned {
    fn pid(&self) -> Option<Pid> {
        self.child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .map(Pid::from_raw)
    }
}

/// The nodes this process started.
pub(crate) struct LocalCluster {
    args: ConfigArgs,
    config: NodeConfig,
    cookie: String,
    exe: std::path::PathBuf,
    nodes: Vec<Owned>,
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster")
            .field(
                "nodes",
                &self.nodes.iter().map(|n| &n.id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// What the node chaos did.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct NodeChaos {
    /// `sigkill`, `sigstop` per node (`n1:sigkill`).
    pub(crate) done: Tally,
    /// Restarts that failed.
    pub(crate) failed: Tally,
}

impl LocalCluster {
    /// Starts every node of `config`; waits until each answers ready.
    pub(crate) async fn start(args: &ConfigArgs, config: &NodeConfig) -> anyhow::Result<Self> {
        let (cookie, _) = secrets::cluster_cookie(config)?;
        let exe = std::env::current_exe()?;
        let mut cluster = Self {
            args: args.clone(),
            config: config.clone(),
            cookie,
            exe,
            nodes: Vec::new(),
        };
        for n in 0..config.nodes.len() {
            let owned = cluster.spawn(n)?;
            cluster.nodes.push(owned);
        }
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    fn spawn(&self, n: usize) -> anyhow::Result<Owned> {
        let id = self.config.nodes[n].id.to_string();
        std::fs::create_dir_all(&self.config.data_dir)?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.config.data_dir.join(format!("load-{id}.log")))?;
        let mut command = crate::up::node_command(&self.exe, &self.args, &self.cookie, &id);
        command
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        let mut child = command.spawn()?;
        let stdin = child.stdin.take();
        Ok(Owned { id, child, stdin })
    }

    /// Waits until every node answers `/health/ready`.
    pub(crate) async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()?;
        let started = Instant::now();
        loop {
            let mut waiting = Vec::new();
            for n in &self.config.nodes {
                let url = format!("http://{}/health/ready", n.http_addr);
                if !matches!(client.get(&url).send().await, Ok(r) if r.status().is_success()) {
                    waiting.push(n.id.to_string());
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < READY_DEADLINE,
                "not ready after {READY_DEADLINE:?}: {}",
                waiting.join(", ")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every `every` until `stop`: one random node SIGKILLed (then restarted) or SIGSTOPped
    /// (then continued) for [`DOWN_FOR`]. Leaves every node running.
    pub(crate) async fn disrupt(
        &mut self,
        every: Duration,
        mut stop: watch::Receiver<bool>,
    ) -> NodeChaos {
        let mut report = NodeChaos::default();
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                _ = stop.changed() => return report,
            }
            if *stop.borrow() {
                return report;
            }
            let n = rand::random_range(0..self.nodes.len());
            let Some(pid) = self.nodes[n].pid() else {
                continue;
            };
            let id = self.nodes[n].id.clone();
            if rand::random::<bool>() {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = self.nodes[n].child.wait().await;
                report.done.add(format!("{id}:sigkill"));
                tokio::time::sleep(DOWN_FOR).await;
                match self.spawn(n) {
                    Ok(owned) => self.nodes[n] = owned,
                    Err(e) => report.failed.add(format!("{id}:{e}")),
                }
            } else {
                let _ = kill(pid, Signal::SIGSTOP);
                report.done.add(format!("{id}:sigstop"));
                tokio::time::sleep(DOWN_FOR).await;
                let _ = kill(pid, Signal::SIGCONT);
            }
        }
    }

    /// Stops every node: standard input closed and SIGTERM, then SIGKILL after the shutdown
    /// grace and a margin.
    pub(crate) async fn stop(mut self) {
        let deadline = self.config.http.shutdown_grace + Duration::from_secs(5);
        for n in &mut self.nodes {
            drop(n.stdin.take());
            if let Some(pid) = n.pid() {
                let _ = kill(pid, Signal::SIGCONT);
                let _ = kill(pid, Signal::SIGTERM);
            }
        }
        for n in &mut self.nodes {
            if tokio::time::timeout(deadline, n.child.wait())
                .await
                .is_err()
            {
                let _ = n.child.kill().await;
            }
        }
    }
}

//! `troupe up`: the local cluster of the configuration, as child processes of this one.
//!
//! Each node runs as `troupe node --id <id>` with this process's environment, the configuration
//! overrides it was given, and the cluster cookie. Their output is streamed here, each line
//! prefixed with the node's id. Nothing is restarted: a node that exits is reported, and when
//! every node has exited `up` exits with a failure. On Ctrl-C or SIGTERM, every node gets
//! SIGTERM and the shutdown grace period plus a margin to stop, then SIGKILL. Nodes watch their
//! standard input, so they also stop if this process dies without cleaning up.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::{ConfigArgs, LogFormat, NodeConfig};
use crate::exit;
use crate::secrets::{self, COOKIE_ENV, SecretSource};

/// Time given to nodes beyond their own shutdown grace before they are killed.
const KILL_MARGIN: Duration = Duration::from_secs(5);
/// How long `up` waits for the cluster to report ready before it says so.
const READY_DEADLINE: Duration = Duration::from_secs(60);

struct Running {
    id: String,
    pid: Pid,
}

/// Runs the local cluster until Ctrl-C or SIGTERM, or until every node has exited.
pub async fn run(args: &ConfigArgs, config: NodeConfig) -> ExitCode {
    let (cookie, source) = match secrets::cluster_cookie(&config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("troupe: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("troupe: cannot find this executable to start the nodes: {e}");
            return ExitCode::FAILURE;
        }
    };
    let terminal = std::io::stdout().is_terminal();
    let (exits_tx, mut exits) = mpsc::unbounded_channel::<(String, String)>();
    let mut running = Vec::new();
    for (i, node) in config.nodes.iter().enumerate() {
        let mut command = node_command(&exe, args, &cookie, node.id.as_str());
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        if terminal && config.log.format == LogFormat::Auto {
            command.env("TROUPE_LOG_FORMAT", "pretty");
        }
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                eprintln!("troupe: cannot start node {}: {e}", node.id);
                terminate_all(&running);
                return ExitCode::FAILURE;
            }
        };
        let prefix = prefix(node.id.as_str(), i, terminal);
        if let Some(out) = child.stdout.take() {
            tokio::spawn(pump(prefix.clone(), out));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(pump(prefix, err));
        }
        let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
            eprintln!("troupe: node {} exited at once", node.id);
            continue;
        };
        running.push(Running {
            id: node.id.to_string(),
            pid: Pid::from_raw(pid),
        });
        let id = node.id.to_string();
        let tx = exits_tx.clone();
        // `wait` closes the child's stdin, which the node takes as "stop": keep it open here.
        let stdin = child.stdin.take();
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => format!("unknown status ({e})"),
            };
            drop(stdin);
            let _ = tx.send((id, status));
        });
    }
    drop(exits_tx);
    print_banner(&config, &source);
    let ready = tokio::spawn(report_ready(config.clone()));

    let mut alive = running.len();
    let stop = crate::serve::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            exit = exits.recv() => match exit {
                Some((id, status)) => {
                    alive -= 1;
                    running.retain(|r| r.id != id);
                    eprintln!("troupe: node {id} exited ({status}); it is not restarted ({alive} still running)");
                    if alive == 0 {
                        ready.abort();
                        eprintln!("troupe: every node has exited");
                        return ExitCode::FAILURE;
                    }
                }
                None => return ExitCode::FAILURE,
            },
        }
    }
    ready.abort();
    eprintln!("troupe: stopping {} nodes", running.len());
    let deadline = config.http.shutdown_grace + KILL_MARGIN;
    let started = Instant::now();
    terminate_all(&running);
    while !running.is_empty() {
        let left = deadline.saturating_sub(started.elapsed());
        tokio::select! {
            exit = exits.recv() => match exit {
                Some((id, status)) => {
                    running.retain(|r| r.id != id);
                    eprintln!("troupe: node {id} stopped ({status})");
                }
                None => break,
            },
            () = tokio::time::sleep(left) => {
                for r in &running {
                    eprintln!("troupe: node {} did not stop within {deadline:?}; killing it", r.id);
                    let _ = kill(r.pid, Signal::SIGKILL);
                }
                // Reap what was killed.
                while let Ok(Some((id, _))) = tokio::time::timeout(Duration::from_secs(2), exits.recv()).await {
                    running.retain(|r| r.id != id);
                }
                break;
            }
            () = crate::serve::shutdown_signal() => {
                eprintln!("troupe: asked again: killing every node now");
                for r in &running {
                    let _ = kill(r.pid, Signal::SIGKILL);
                }
            }
        }
    }
    eprintln!("troupe: all nodes stopped");
    ExitCode::SUCCESS
}

/// The command that runs node `id` as a child of this process: `troupe node --id <id>
/// --exit-with-stdin` with the configuration overrides `args` and the cluster `cookie`, its
/// standard input piped (the node stops when it closes), killed if dropped, in its own process
/// group (a Ctrl-C in the terminal reaches the parent only, which then stops the nodes in
/// order). Its output is the caller's to direct.
pub fn node_command(exe: &std::path::Path, args: &ConfigArgs, cookie: &str, id: &str) -> Command {
    let mut command = Command::new(exe);
    command
        .args(["node", "--id", id, "--exit-with-stdin"])
        .envs(args.to_env())
        .env(COOKIE_ENV, cookie)
        .stdin(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    command
}

/// Sends SIGTERM to every running node.
fn terminate_all(running: &[Running]) {
    for r in running {
        if let Err(e) = kill(r.pid, Signal::SIGTERM) {
            eprintln!("troupe: cannot signal node {}: {e}", r.id);
        }
    }
}

fn prefix(id: &str, index: usize, color: bool) -> String {
    const COLORS: [u8; 6] = [36, 35, 33, 32, 34, 31];
    if color {
        format!("\x1b[{}m[{id}]\x1b[0m ", COLORS[index % COLORS.len()])
    } else {
        format!("[{id}] ")
    }
}

/// Copies a child's output to ours, a whole line at a time, each line prefixed.
async fn pump(prefix: String, output: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(output).split(b'\n');
    while let Ok(Some(line)) = lines.next_segment().await {
        let line = String::from_utf8_lossy(&line);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{prefix}{}", line.trim_end_matches('\r'));
    }
}

fn print_banner(config: &NodeConfig, cookie: &SecretSource) {
    let mut text = format!(
        "troupe: starting {} nodes from {}\n",
        config.nodes.len(),
        config.source
    );
    for n in &config.nodes {
        text.push_str(&format!(
            "  {:<8} http://{:<21} cluster {:<21} data {}\n",
            n.id,
            n.http_addr,
            n.cluster_addr,
            n.data_dir.display()
        ));
    }
    if let SecretSource::File { path, generated } = cookie {
        let verb = if *generated { "generated" } else { "read" };
        text.push_str(&format!(
            "  cluster cookie {verb} at {}\n",
            display_path(path)
        ));
    }
    if config.services.contains_key("users") {
        // The nodes create the administrator's account with this password at first start.
        match crate::bootstrap::admin_credentials(config) {
            Ok((email, _, SecretSource::File { path, .. })) => text.push_str(&format!(
                "  administrator {email}: password in {}\n",
                display_path(&path)
            )),
            Ok((email, _, _)) => text.push_str(&format!(
                "  administrator {email}: password from {}\n",
                crate::bootstrap::ADMIN_PASSWORD_ENV
            )),
            Err(e) => text.push_str(&format!("  administrator: {e}\n")),
        }
    }
    // The admin routes need an admin's token: `troupe status` and `troupe bench` make their
    // own from the token key the nodes share (so does `troupe token`, for curl).
    text.push_str("  try: troupe status   or   troupe bench\n  Ctrl-C stops every node.\n");
    eprint!("{text}");
}

fn display_path(path: &std::path::Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(PathBuf::from))
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

/// Polls every node's readiness and says once when the whole cluster is ready.
async fn report_ready(config: NodeConfig) {
    let started = Instant::now();
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
    else {
        return;
    };
    loop {
        let mut waiting = Vec::new();
        for n in &config.nodes {
            let url = format!("http://{}/health/ready", n.http_addr);
            let ready = matches!(client.get(&url).send().await, Ok(r) if r.status().is_success());
            if !ready {
                waiting.push(n.id.to_string());
            }
        }
        if waiting.is_empty() {
            eprintln!(
                "troupe: cluster ready: {} nodes up in {} ms",
                config.nodes.len(),
                started.elapsed().as_millis()
            );
            return;
        }
        if started.elapsed() > READY_DEADLINE {
            eprintln!(
                "troupe: not ready after {READY_DEADLINE:?}: waiting for {}",
                waiting.join(", ")
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

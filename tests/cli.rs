//! The command line, from the outside: `troupe up` and configuration errors.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::{config_text, node_addrs, troupe_bin, wait_until};

/// The pids of the processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The fields after the command name (which may hold spaces) start after the last ')'.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            pids.push(pid);
        }
    }
    pids
}

fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn troupe_up_starts_the_cluster_and_ctrl_c_stops_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = node_addrs(3);
    let config = dir.path().join("cluster.toml");
    std::fs::write(&config, config_text(&nodes)).unwrap();

    let mut up = Command::new(troupe_bin())
        .arg("up")
        .arg("--config")
        .arg(&config)
        .env_remove("TROUPE_COOKIE")
        .env("TROUPE_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Collect everything `up` prints, from both streams.
    let output = Arc::new(Mutex::new(String::new()));
    let readers: Vec<_> = [
        Box::new(up.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(up.stderr.take().unwrap()),
    ]
    .into_iter()
    .map(|stream| {
        let output = Arc::clone(&output);
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut text = output.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        })
    })
    .collect();
    let guard = KillOnDrop(up.id());
    wait_until(
        "troupe up to report the cluster ready",
        Duration::from_secs(60),
        || async { output.lock().unwrap().contains("troupe: cluster ready") },
    )
    .await;
    let client = support::http().build().unwrap();
    for n in &nodes {
        let r = client.get(n.url("/health/ready")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{} is ready", n.id);
    }
    let nodes_pids = children_of(up.id());
    assert_eq!(nodes_pids.len(), 3, "one child process per node");

    // The cookie was generated once, owner-only, in the data directory.
    let cookie = dir.path().join("data/secrets/cluster-cookie");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&cookie).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    kill(Pid::from_raw(up.id() as i32), Signal::SIGINT).unwrap();
    let status = wait_until_exit(&mut up, Duration::from_secs(30)).await;
    assert!(status.success(), "troupe up exited with {status}");
    for pid in &nodes_pids {
        assert!(!alive(*pid), "node process {pid} outlived troupe up");
    }
    drop(guard);
    for reader in readers {
        reader.join().unwrap();
    }
    let text = output.lock().unwrap().clone();
    for n in &nodes {
        assert!(
            text.contains(&format!("http://127.0.0.1:{}", n.http_port)),
            "{text}"
        );
        assert!(
            text.contains(&format!("[{}] ", n.id)),
            "node output is prefixed: {text}"
        );
    }
    assert!(text.contains("cluster ready"), "{text}");
    assert!(text.contains("all nodes stopped"), "{text}");
}

async fn wait_until_exit(
    child: &mut std::process::Child,
    deadline: Duration,
) -> std::process::ExitStatus {
    let start = tokio::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < deadline,
            "process did not exit within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills `troupe up` and its nodes if the test fails half-way.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in children_of(self.0) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = kill(Pid::from_raw(self.0 as i32), Signal::SIGKILL);
    }
}

fn run_troupe(args: &[&str], config: &std::path::Path) -> (Option<i32>, String) {
    let output = Command::new(troupe_bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .env("TROUPE_COOKIE", support::COOKIE)
        .env("TROUPE_JWT_SECRET", support::TOKEN_KEY)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_malformed_config_exits_64_and_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    let good = config_text(&node_addrs(1));

    // An unknown key: the file, the line and the key are named.
    std::fs::write(&config, good.replace("[http]", "[http]\nbody_limit = 5")).unwrap();
    let line = std::fs::read_to_string(&config)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("body_limit"))
        .unwrap()
        + 1;
    for command in [&["node", "--id", "n1"][..], &["up"], &["status"]] {
        let (code, stderr) = run_troupe(command, &config);
        assert_eq!(code, Some(64), "{command:?}: {stderr}");
        assert!(stderr.contains("bad.toml"), "{stderr}");
        assert!(stderr.contains(&format!("line {line}")), "{stderr}");
        assert!(stderr.contains("body_limit"), "{stderr}");
    }

    // A value that parses but cannot work.
    std::fs::write(&config, good.replace("127.0.0.1:", "127.0.0.1:99999#")).unwrap();
    let (code, stderr) = run_troupe(&["node", "--id", "n1"], &config);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("bad.toml:") && stderr.contains("node.cluster_addr"),
        "{stderr}"
    );

    // A node id that is not configured.
    std::fs::write(&config, &good).unwrap();
    let (code, stderr) = run_troupe(&["node", "--id", "n9"], &config);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("no node \"n9\""), "{stderr}");

    // A missing file.
    let (code, stderr) = run_troupe(&["node", "--id", "n1"], &dir.path().join("absent.toml"));
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("absent.toml"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_brings_its_own_admin_token_and_a_wrong_key_is_refused() {
    let mut cluster = support::TestCluster::new(2);
    cluster.start_formed().await;
    let config = cluster.config.clone();
    let status = |key: &str| {
        let output = Command::new(troupe_bin())
            .args(["status", "--json", "--config"])
            .arg(&config)
            .env("TROUPE_JWT_SECRET", key)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    // The nodes' key: the command signs its own admin token and the admin route answers.
    let (code, stdout, stderr) = status(support::TOKEN_KEY);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("\"n2\""), "{stdout}");
    // Another key: the node refuses the token, and the command says so.
    let (code, _, stderr) = status("another-token-key-0123456789abcdef-xyz");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    // Without a token at all, the admin route is refused; health stays open.
    let client = reqwest::Client::new();
    let node = cluster.node("n1");
    let r = client.get(node.url("/admin/cluster")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // `troupe token` prints one for curl.
    let output = Command::new(troupe_bin())
        .args(["token", "--config"])
        .arg(&config)
        .env("TROUPE_JWT_SECRET", support::TOKEN_KEY)
        .output()
        .unwrap();
    let token = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let r = client
        .get(node.url("/admin/cluster"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client.get(node.url("/health/live")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

//! `troupe load` against a real 3-node cluster with the business services: the real binary,
//! run for a few seconds with `--json`, and its report read back.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use std::process::{Command, Output, Stdio};

use serde_json::Value;

use support::{TOKEN_KEY, TestCluster, config_text_with, troupe_bin};

const SERVICES: &str = "[services.users]\nshards = 4\n\n[services.user-emails]\nshards = 4\n\n\
                        [services.wallets]\nshards = 4\n\n[services.products]\nshards = 4\n\n\
                        [services.product-skus]\nshards = 4\n\n[services.orders]\nshards = 4\n\n\
                        [services.order-views]\nshards = 4\n\n[services.notifications]\nshards = 4\n";

async fn cluster() -> TestCluster {
    let mut cluster = TestCluster::new(3);
    std::fs::write(&cluster.config, config_text_with(&cluster.nodes, SERVICES)).unwrap();
    cluster.start_formed().await;
    cluster
}

/// Runs `troupe load --json` with `args` (split at spaces) against the cluster (the nodes' token key, so that
/// its operator token is accepted): exit status, the JSON report, and stderr.
async fn load(cluster: &TestCluster, args: &str) -> (Output, Value) {
    let config = cluster.config.clone();
    let args: Vec<String> = args.split_whitespace().map(str::to_string).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(troupe_bin())
            .arg("--config")
            .arg(&config)
            .args(["load", "--json"])
            .args(&args)
            .env("TROUPE_JWT_SECRET", TOKEN_KEY)
            .env_remove("TROUPE_CONFIG")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "the report is not JSON ({e}): stdout {:?}, stderr {:?}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, report)
}

fn no_5xx(report: &Value) {
    let statuses = report["errors"]["by_status"].as_object().unwrap();
    assert!(
        statuses
            .keys()
            .all(|s| !s.starts_with('5') && s != "transport"),
        "a healthy cluster answered {statuses:?}: {report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_reports_accepted_orders_and_no_server_errors() {
    let cluster = cluster().await;
    let (output, report) = load(
        &cluster,
        "--duration 3 --users 6 --products 4 --concurrency 4 --settle 1",
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(report["users"], 6, "{report:#}");
    assert_eq!(report["products"], 4, "{report:#}");
    assert_eq!(report["nodes"], 3, "{report:#}");
    let accepted = report["orders"]["accepted"].as_u64().unwrap();
    assert!(accepted > 0, "{report:#}");
    assert_eq!(report["orders"]["unknown"], 0, "{report:#}");
    assert_eq!(
        report["latency_ms"]["accept"]["count"].as_u64(),
        Some(accepted),
        "{report:#}"
    );
    assert!(report["latency_ms"]["accept"]["p99"].as_f64().unwrap() > 0.0);
    assert!(report["check"].is_null());
    no_5xx(&report);
    // The progress went to stderr: stdout held the report alone (parsed above).
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("placing orders"), "{stderr}");
}

/// Every order's user asks to cancel it at once: the saga undoes those it can (stock and
/// wallet as before, `cancelled_by_user`) and refuses those already paid (409; they are
/// confirmed); `--check` verifies every invariant end to end, with restocks made while the
/// orders flow counted in the stock balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_when_every_order_is_cancelled_by_its_user() {
    let cluster = cluster().await;
    let (output, report) = load(
        &cluster,
        "--duration 2 --users 4 --products 3 --rate 20 --cancel-percent 100 --settle 20 \
         --check --check-timeout 60 --restock-every-ms 200",
    )
    .await;
    let check = &report["check"];
    assert!(output.status.success(), "{output:?}\n{report:#}");
    assert_eq!(check["holds"], true, "{report:#}");
    assert_eq!(check["quiescent"], true, "{report:#}");
    let invariants = check["invariants"].as_array().unwrap();
    assert_eq!(invariants.len(), 6, "{report:#}");
    let accepted = report["orders"]["accepted"].as_u64().unwrap();
    assert!(accepted > 0, "{report:#}");
    let states = &report["final_states"];
    let by_user = states["cancelled:cancelled_by_user"].as_u64().unwrap_or(0);
    let confirmed = states["confirmed"].as_u64().unwrap_or(0);
    assert!(by_user > 0, "{report:#}");
    assert_eq!(by_user + confirmed, accepted, "{report:#}");
    let refused = report["cancels"]["conflict"].as_u64().unwrap_or(0);
    assert_eq!(
        refused, confirmed,
        "a cancel refused for each confirmed order: {report:#}"
    );
    assert!(
        report["restocks"]["units_added"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    no_5xx(&report);
}

/// `--up`: the load generator starts the cluster itself, so with `--chaos` it also SIGKILLs
/// and SIGSTOPs its nodes and brings them back; every order still reaches a final state (each
/// cancelled by its user, retried with backoff through the disruptions), the invariants hold,
/// and no node outlives the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_with_chaos_disrupts_its_own_nodes_and_stops_them_at_the_end() {
    // Configured, not started: `--up` starts it.
    let cluster = TestCluster::new(3);
    std::fs::write(&cluster.config, config_text_with(&cluster.nodes, SERVICES)).unwrap();
    let (output, report) = load(
        &cluster,
        "--up --chaos --node-chaos-every-ms 1500 --chaos-every-ms 500 --duration 6 --users 4 \
         --products 3 --rate 20 --cancel-percent 100 --settle 30 --check --check-timeout 90",
    )
    .await;
    assert!(output.status.success(), "{output:?}\n{report:#}");
    assert_eq!(report["check"]["holds"], true, "{report:#}");
    let disrupted: u64 = report["node_chaos"]["done"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert!(disrupted >= 1, "{report:#}");
    assert!(
        report["orders"]["accepted"].as_u64().unwrap() > 0,
        "{report:#}"
    );
    // Every node it started is gone: no edge answers.
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(1))
        .build()
        .unwrap();
    for n in &cluster.nodes {
        assert!(
            client.get(n.url("/health/live")).send().await.is_err(),
            "node {} outlived troupe load",
            n.id
        );
    }
}

/// The long chaos run, skipped by CI: `TROUPE_CHAOS_SECONDS` (default 120) of orders with
/// scarce stock and money, users cancelling some, actor kills every 300 ms and a node SIGKILLed
/// or SIGSTOPped every 3 s, then every invariant checked. Run it with
/// `TROUPE_CHAOS_SECONDS=600 cargo test --test load -- --ignored long_chaos`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: minutes of chaos; run by hand with TROUPE_CHAOS_SECONDS"]
async fn long_chaos_run_keeps_every_invariant() {
    let seconds: u64 = std::env::var("TROUPE_CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let cluster = TestCluster::new(3);
    std::fs::write(&cluster.config, config_text_with(&cluster.nodes, SERVICES)).unwrap();
    let args = format!(
        "--up --chaos --node-chaos-every-ms 3000 --chaos-every-ms 300 --duration {seconds} \
         --users 12 --products 6 --rate 50 --low-stock --restock-every-ms 1000 \
         --cancel-percent 10 --settle 60 --check --check-timeout 300"
    );
    let (output, report) = load(&cluster, &args).await;
    assert!(output.status.success(), "{output:?}\n{report:#}");
    assert_eq!(report["check"]["holds"], true, "{report:#}");
}

/// `--check` end to end with the order saga: scarce stock and money make orders confirmed,
/// out of stock and declined, users cancel some, admins restock; every invariant holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_after_a_run_with_scarce_stock_and_money() {
    let cluster = cluster().await;
    let (output, report) = load(
        &cluster,
        "--duration 4 --users 8 --products 4 --concurrency 8 --low-stock --cancel-percent 10 \
         --restock-every-ms 500 --check --check-timeout 60",
    )
    .await;
    assert!(output.status.success(), "{output:?}\n{report:#}");
    assert_eq!(report["check"]["holds"], true, "{report:#}");
    let states = report["final_states"].as_object().unwrap();
    assert!(states.contains_key("confirmed"), "{report:#}");
    assert!(
        states.contains_key("cancelled:out_of_stock")
            || states.contains_key("cancelled:payment_declined"),
        "{report:#}"
    );
    no_5xx(&report);
}

/// Runs `troupe load` with `args` against `cluster`'s configuration: the exit code and stderr.
fn load_exit(cluster: &TestCluster, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(troupe_bin())
        .arg("--config")
        .arg(&cluster.config)
        .arg("load")
        .args(args)
        .env("TROUPE_JWT_SECRET", TOKEN_KEY)
        .env_remove("TROUPE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_options_exit_64_and_a_cluster_that_does_not_answer_69() {
    // Configured, never started.
    let cluster = TestCluster::new(3);
    let (code, stderr) = load_exit(&cluster, &["--rate", "0"]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(stderr.contains("--rate"), "{stderr}");
    let (code, stderr) = load_exit(&cluster, &["--duration=-1"]);
    assert_eq!(code, Some(64), "{stderr}");
    let (code, stderr) = load_exit(&cluster, &["--duration", "1"]);
    assert_eq!(code, Some(69), "{stderr}");
    assert!(stderr.contains("/admin/cluster"), "{stderr}");
}

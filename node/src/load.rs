//! `troupe load`: a load generator against a running cluster, through its HTTP API only.
//!
//! A run creates its own users (registered, logged in, wallets topped up by an admin deposit)
//! and products, then places orders across every node's edge at a target rate (open loop) or
//! with a fixed number of workers (closed loop) for a duration, follows the accepted orders to
//! their final state at a modest pace, and reports throughput, latencies (request to 202, and
//! 202 to the final state from the orders' own timestamps), final states and errors by code.
//! With `--check` it then waits until no order is pending and verifies the invariants of the
//! order saga from the API; with `--chaos` it kills random actors while the orders flow.
//!
//! - `client`: the edges, in turn; answers sorted into codes and retryable outcomes.
//! - `setup`: the run's users and products.
//! - `drive`: placing orders (idempotency keys, retries of unknown outcomes).
//! - `poll`: following accepted orders to their final state.
//! - `progress`: the live bar or plain lines.
//! - `chaos`: actor kills on a schedule; `local`: `--up`, the nodes as child processes, and
//!   their SIGKILLs and SIGSTOPs.
//! - `gather`, `check`: `--check`'s reading, and the invariants as plain functions.
//! - `restock`: restocks while the orders flow (`--restock-every-ms`).
//! - `report`, `stats`: the figures, for a person or as JSON.

mod chaos;
mod check;
mod client;
mod drive;
mod gather;
mod local;
mod poll;
mod progress;
mod report;
mod restock;
mod setup;
mod stats;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::config::{ConfigArgs, NodeConfig};
use crate::exit;
use client::{Answer, Api};
use drive::{Drive, Pace};
use report::Report;

/// Units added by one restock.
const RESTOCK_UNITS: u64 = 5;

/// What to run, from the command line.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct LoadArgs {
    /// Orders started per second (open loop: sent whatever the answers)
    #[arg(long, conflicts_with = "concurrency")]
    rate: Option<f64>,
    /// Workers with one order in flight each (closed loop) [default: 16 without --rate]
    #[arg(long)]
    concurrency: Option<usize>,
    /// How long to place orders, in seconds
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Users to create (each registration costs the node an Argon2 hash)
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// Products to create
    #[arg(long, default_value_t = 20)]
    products: usize,
    /// Stock of each new product
    #[arg(long, default_value_t = 1_000_000)]
    stock: u64,
    /// Deposited into each new wallet by an admin before the orders, in cents
    #[arg(long, default_value_t = 100_000_000)]
    deposit_cents: u64,
    /// Little stock (5 a product) and no deposit: some orders go out of stock and some
    /// wallets run dry, so that cancellations happen
    #[arg(long)]
    low_stock: bool,
    /// Most units of a product in one order line
    #[arg(long, default_value_t = 3)]
    max_quantity: u64,
    /// Percent of accepted orders whose user asks to cancel them at once
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    cancel_percent: u8,
    /// Order reads per second at most while following orders to their final state
    /// [default: twice --rate, at least 200: fewer reads than orders leave orders unread, and
    /// the report counts them as not final]
    #[arg(long)]
    poll_per_second: Option<usize>,
    /// How long to keep following orders after the last one was placed, in seconds
    #[arg(long, default_value_t = 30.0)]
    settle: f64,
    /// Milliseconds between two admin restocks of a random product (5 units) while the
    /// orders flow [default: none]
    #[arg(long)]
    restock_every_ms: Option<u64>,
    /// Then wait for quiescence and verify the invariants; exit 1 if any fails
    #[arg(long)]
    check: bool,
    /// How long `--check` waits for every order to be final, in seconds
    #[arg(long, default_value_t = 120.0)]
    check_timeout: f64,
    /// Kill random actors (POST /admin/chaos/kill) while the orders flow
    #[arg(long)]
    chaos: bool,
    /// Milliseconds between two chaos kills
    #[arg(long, default_value_t = 1000)]
    chaos_every_ms: u64,
    /// Start the configuration's local cluster first, as `troupe up` does, and stop it at the
    /// end; with --chaos, also SIGKILL or SIGSTOP a random node now and then and bring it back
    #[arg(long)]
    up: bool,
    /// With --up and --chaos: milliseconds between two node disruptions
    #[arg(long, default_value_t = 5000)]
    node_chaos_every_ms: u64,
    /// Only these nodes' edges (ids of the configuration or URLs, comma-separated)
    /// [default: every node of the configuration]
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<String>,
    /// Print the report as JSON (progress lines then go to stderr)
    #[arg(long)]
    json: bool,
}

fn seconds(field: &str, s: f64) -> Result<Duration, String> {
    if s.is_finite() && s > 0.0 && s <= 86_400.0 {
        Ok(Duration::from_secs_f64(s))
    } else {
        Err(format!(
            "--{field}: more than 0 and at most 86400 seconds, got {s}"
        ))
    }
}

/// Order reads per second while following orders: as asked, else twice the order rate (a
/// final order is read once or twice), at least 200.
fn poll_rate(args: &LoadArgs) -> usize {
    args.poll_per_second.unwrap_or_else(|| {
        let twice = args.rate.map_or(0.0, |rate| (rate * 2.0).ceil());
        // At most 200,000: `--rate` is at most 100,000.
        (twice.min(200_000.0) as usize).max(200)
    })
}

/// The pace and durations, checked.
fn plan(args: &LoadArgs) -> Result<(Pace, Duration, Duration, Duration), String> {
    let pace = match (args.rate, args.concurrency) {
        (Some(rate), _) if rate.is_finite() && rate > 0.0 && rate <= 100_000.0 => Pace::Rate(rate),
        (Some(rate), _) => {
            return Err(format!(
                "--rate: more than 0 and at most 100000, got {rate}"
            ));
        }
        (None, Some(n)) if (1..=4096).contains(&n) => Pace::Concurrency(n),
        (None, Some(n)) => return Err(format!("--concurrency: 1 to 4096, got {n}")),
        (None, None) => Pace::Concurrency(16),
    };
    if args.users == 0 || args.products == 0 {
        return Err("--users and --products: at least 1".into());
    }
    if args.poll_per_second == Some(0) {
        return Err("--poll-per-second: at least 1".into());
    }
    if args.max_quantity == 0 || args.max_quantity > 1000 {
        return Err(format!(
            "--max-quantity: 1 to 1000, got {}",
            args.max_quantity
        ));
    }
    Ok((
        pace,
        seconds("duration", args.duration)?,
        seconds("settle", args.settle)?,
        seconds("check-timeout", args.check_timeout)?,
    ))
}

/// Runs `troupe load`.
pub(crate) async fn run(
    config_args: &ConfigArgs,
    config: &NodeConfig,
    args: &LoadArgs,
) -> ExitCode {
    let (pace, duration, settle, check_timeout) = match plan(args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("troupe: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let token = match crate::auth::operator_token(config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("troupe: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let bases: Vec<String> = if args.nodes.is_empty() {
        config
            .nodes
            .iter()
            .map(|n| format!("http://{}", n.http_addr))
            .collect()
    } else {
        args.nodes
            .iter()
            .map(|n| crate::admin_client::base_url(config, Some(n)))
            .collect()
    };
    let api = match Api::new(bases, token, Duration::from_secs(10)) {
        Ok(api) => Arc::new(api),
        Err(e) => {
            eprintln!("troupe: cannot build an HTTP client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let local = if args.up {
        match local::LocalCluster::start(config_args, config).await {
            Ok(cluster) => Some(cluster),
            Err(e) => {
                eprintln!("troupe: cannot start the local cluster: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    if let Err(answer) = api.read("/admin/cluster").await {
        eprintln!("troupe: /admin/cluster: {}", answer.describe());
        if let Some(local) = local {
            local.stop().await;
        }
        return ExitCode::from(match answer {
            Answer::Transport(_) => exit::UNAVAILABLE,
            Answer::Http(..) => 1,
        });
    }
    let plan = Plan {
        pace,
        duration,
        settle,
        check_timeout,
    };
    let (report, local) = execute(&api, args, plan, local).await;
    if let Some(local) = local {
        local.stop().await;
    }
    let Some(report) = report else {
        return ExitCode::FAILURE;
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", report::render(&report));
    }
    match &report.check {
        Some(check) if !check.holds => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    }
}

/// Setup, drive, follow, check: the report, or None if the setup made nothing to load with.
async fn execute(
    api: &Arc<Api>,
    args: &LoadArgs,
    plan: Plan,
    mut local: Option<local::LocalCluster>,
) -> (Option<Report>, Option<local::LocalCluster>) {
    let Plan {
        pace,
        duration,
        settle,
        check_timeout,
    } = plan;
    let run_id = format!("{:08x}", rand::random::<u32>());
    let say = |text: String| {
        if args.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    };
    say(format!(
        "troupe load {run_id}: creating {} users and {} products",
        args.users, args.products
    ));
    let spec = setup::SetupSpec {
        run_id: run_id.clone(),
        num_users: args.users,
        num_products: args.products,
        stock: if args.low_stock { 5 } else { args.stock },
        deposit_cents: if args.low_stock {
            0
        } else {
            args.deposit_cents
        },
    };
    let made = setup::run(api, &spec).await;
    if made.users.is_empty() || made.products.is_empty() {
        eprintln!(
            "troupe: setup made {} users and {} products ({}): nothing to load with",
            made.users.len(),
            made.products.len(),
            made.failures.line()
        );
        return (None, local);
    }
    let mut report = Report {
        run_id: run_id.clone(),
        nodes: api.num_nodes(),
        pace: match pace {
            Pace::Rate(r) => format!("rate {r}/s"),
            Pace::Concurrency(n) => format!("concurrency {n}"),
        },
        users: made.users.len(),
        products: made.products.len(),
        setup_failures: made.failures,
        ..Report::default()
    };
    say(format!(
        "troupe load {run_id}: placing orders ({})",
        report.pace
    ));

    let (accepted_tx, accepted_rx) = mpsc::unbounded_channel();
    let drive = Arc::new(Drive::new(
        api.clone(),
        made.users,
        made.products,
        run_id,
        args.max_quantity,
        args.cancel_percent,
        accepted_tx,
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (chaos_stop_tx, chaos_stop_rx) = watch::channel(false);
    let poller = tokio::spawn(poll::follow(
        drive.clone(),
        accepted_rx,
        stop_rx.clone(),
        poll_rate(args),
        settle,
    ));
    let progress = tokio::spawn(progress::show(drive.clone(), duration, args.json, stop_rx));
    let chaos = if args.chaos {
        let services = chaos::services(api).await;
        Some(tokio::spawn(chaos::kill_actors(
            api.clone(),
            services,
            Duration::from_millis(args.chaos_every_ms.max(1)),
            chaos_stop_rx,
        )))
    } else {
        None
    };
    let disruption = match local.take() {
        Some(mut cluster) if args.chaos => {
            let every = Duration::from_millis(args.node_chaos_every_ms.max(100));
            let stop = chaos_stop_tx.subscribe();
            Some(tokio::spawn(async move {
                let done = cluster.disrupt(every, stop).await;
                (cluster, done)
            }))
        }
        other => {
            local = other;
            None
        }
    };
    let restocks = args.restock_every_ms.map(|ms| {
        tokio::spawn(restock::run(
            api.clone(),
            drive.products.iter().map(|p| p.id.clone()).collect(),
            Duration::from_millis(ms.max(10)),
            RESTOCK_UNITS,
            chaos_stop_tx.subscribe(),
        ))
    });
    let interrupt = tokio::spawn(interrupted(drive.clone()));
    let started = Instant::now();
    drive::run(&drive, pace, duration).await;
    interrupt.abort();
    report.duration_s = started.elapsed().as_secs_f64();
    let _ = chaos_stop_tx.send(true);
    if let Some(chaos) = chaos {
        report.chaos = chaos.await.ok();
    }
    let restocks = match restocks {
        Some(task) => task.await.unwrap_or_default(),
        None => restock::Restocks::default(),
    };
    if args.restock_every_ms.is_some() {
        report.restocks = Some(restocks.summary());
    }
    if let Some(disruption) = disruption
        && let Ok((cluster, done)) = disruption.await
    {
        // The cluster whole again before the unknown outcomes are settled and checked.
        if let Err(e) = cluster.wait_ready().await {
            eprintln!("troupe: after the node chaos: {e:#}");
        }
        report.node_chaos = Some(done);
        local = Some(cluster);
    }
    drive::resolve_unknown(&drive).await;
    let _ = stop_tx.send(true);
    let seen = poller.await.unwrap_or_default();
    let _ = progress.await;
    let c = &drive.counters;
    {
        let records = drive.records();
        report::orders(
            &mut report,
            &records,
            &seen,
            c.sent.load(std::sync::atomic::Ordering::Relaxed),
            c.retries.load(std::sync::atomic::Ordering::Relaxed),
            c.skipped.load(std::sync::atomic::Ordering::Relaxed),
        );
    }
    if args.check {
        say("checking the invariants: waiting for every order to be final".to_string());
        report.check = Some(gather::check(api, &drive, &seen, &restocks, check_timeout).await);
    }
    (Some(report), local)
}

/// On Ctrl-C or SIGTERM: no new order, report on what was sent. A second one exits at once
/// (nodes started with `--up` then stop as their standard input closes).
async fn interrupted(drive: Arc<Drive>) {
    crate::serve::shutdown_signal().await;
    drive
        .stopping
        .store(true, std::sync::atomic::Ordering::Relaxed);
    eprintln!("troupe: interrupted: no new orders; finishing those in flight (again to quit now)");
    crate::serve::shutdown_signal().await;
    std::process::exit(130);
}

/// The pace and durations of a run, checked.
#[derive(Debug, Clone, Copy)]
struct Plan {
    pace: Pace,
    duration: Duration,
    settle: Duration,
    check_timeout: Duration,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        load: LoadArgs,
    }

    fn polls(line: &[&str]) -> usize {
        let cli = Cli::try_parse_from([&["load"], line].concat()).expect("parses");
        poll_rate(&cli.load)
    }

    #[test]
    fn orders_are_read_at_least_as_fast_as_they_are_placed() {
        assert_eq!(polls(&["--rate", "1000"]), 2000);
        assert_eq!(polls(&["--rate", "0.5"]), 200);
        assert_eq!(polls(&["--concurrency", "8"]), 200);
        assert_eq!(polls(&["--rate", "1000", "--poll-per-second", "50"]), 50);
    }
}

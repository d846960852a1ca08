//! The `troupe` command.
//!
//! Exit codes follow `sysexits.h`: 0 success, 1 failure, 64 bad configuration or usage,
//! 69 a node could not be reached (`status`); see [`crate::exit`].

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{ConfigArgs, NodeConfig};
use crate::serve::{self, BadConfig, NodeOptions};
use crate::{exit, logging, status, up};

/// Troupe: an actor runtime for microservices. One binary, no external infrastructure.
#[derive(Parser, Debug)]
#[command(name = "troupe", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one node of the cluster.
    Node {
        /// The node's id, as in the configuration
        #[arg(long, env = "TROUPE_NODE_ID")]
        id: String,
        /// Listen for HTTP here instead of the configured address
        #[arg(long, env = "TROUPE_HTTP_ADDR")]
        http_addr: Option<SocketAddr>,
        /// Shut down gracefully when standard input closes (used by `troupe up` and tests, so
        /// that nodes never outlive the process that started them)
        #[arg(long, hide = true)]
        exit_with_stdin: bool,
    },
    /// Start every node of the configuration as a child process and stream their logs;
    /// Ctrl-C stops them all.
    Up,
    /// Print the cluster as one node sees it.
    Status {
        /// The node to ask [default: the first node of the configuration]
        #[arg(long)]
        node: Option<String>,
        /// Print the raw JSON
        #[arg(long)]
        json: bool,
    },
    /// Measure message throughput and latency: one node drives the echo service of another.
    Bench(crate::bench_cmd::BenchArgs),
    /// Load the cluster with orders through its API: users and products created, orders at a
    /// rate or concurrency for a duration, then a report (`--check` verifies the invariants).
    Load(crate::load::LoadArgs),
    /// Print an administrator's access token for the admin routes (valid one hour), signed
    /// with the token key the nodes share: `curl -H "authorization: Bearer $(troupe token)"`.
    Token,
}

/// Parses the command line, runs the command and returns the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match NodeConfig::load(&cli.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("troupe: {e}");
            return ExitCode::from(exit::CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("troupe: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(cli, config));
    // Nothing left running may hold the exit hostage (a blocked read, a wedged task).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

async fn run(cli: Cli, config: NodeConfig) -> ExitCode {
    match cli.command {
        Command::Node {
            id,
            http_addr,
            exit_with_stdin,
        } => {
            logging::init(&config.log.level, config.log.format, Some(&id));
            let shutdown = async move {
                if exit_with_stdin {
                    tokio::select! {
                        () = serve::shutdown_signal() => {}
                        () = stdin_closed() => tracing::info!("standard input closed: stopping"),
                    }
                } else {
                    serve::shutdown_signal().await;
                }
            };
            match serve::run(config, NodeOptions { id, http_addr }, shutdown).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.is::<BadConfig>() => {
                    tracing::error!(error = %e, "bad configuration");
                    eprintln!("troupe: {e}");
                    ExitCode::from(exit::CONFIG)
                }
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "node failed");
                    eprintln!("troupe: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Up => {
            logging::init(&config.log.level, config.log.format, None);
            up::run(&cli.config, config).await
        }
        Command::Status { node, json } => status::run(&config, node.as_deref(), json).await,
        Command::Bench(args) => crate::bench_cmd::run(&config, &args).await,
        Command::Load(args) => crate::load::run(&cli.config, &config, &args).await,
        Command::Token => match crate::auth::operator_token(&config) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("troupe: {e}");
                ExitCode::from(exit::CONFIG)
            }
        },
    }
}

/// Completes when standard input reaches its end. The read runs on a plain thread: a blocked
/// read must not keep the async runtime from shutting down.
async fn stdin_closed() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("stdin-watch".into())
        .spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let _ = tx.send(());
        });
    if spawned.is_err() {
        std::future::pending::<()>().await;
    }
    let _ = rx.await;
}

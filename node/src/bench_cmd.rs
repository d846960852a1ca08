//! `troupe bench`: asks one node to drive the `echo` service of another (or itself) through
//! `POST /admin/bench`, and prints messages per second and latency percentiles.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

use crate::admin_client::{base_url, client, fetch_json};
use crate::config::NodeConfig;

/// What to run, from the command line.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct BenchArgs {
    /// The node that sends [default: the first node of the configuration]
    #[arg(long)]
    pub(crate) node: Option<String>,
    /// The node whose echo members answer [default: the sending node]
    #[arg(long)]
    pub(crate) target: Option<String>,
    /// cast (one-way) or call (request/response)
    #[arg(long, default_value = "call", value_parser = ["cast", "call"])]
    pub(crate) mode: String,
    /// Payload bytes per message (at most 1 MiB; payload x in-flight at most 16 MiB)
    #[arg(long, default_value_t = 16)]
    pub(crate) payload_bytes: usize,
    /// How long to send, in milliseconds (at most 60000)
    #[arg(long, default_value_t = 5000)]
    pub(crate) duration_ms: u64,
    /// Concurrent senders (at most 1024); one benchmark runs at a time per node
    #[arg(long, default_value_t = 64)]
    pub(crate) in_flight: usize,
    /// echo, or kv (durable puts to the target's kv shards; call mode)
    #[arg(long, default_value = "echo", value_parser = ["echo", "kv"])]
    pub(crate) service: String,
    /// Print the raw JSON report
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) async fn run(config: &NodeConfig, args: &BenchArgs) -> ExitCode {
    let base = base_url(config, args.node.as_deref());
    let target = match (&args.target, &args.node) {
        (Some(t), _) => t.clone(),
        (None, Some(n)) if config.node(n).is_ok() => n.clone(),
        _ => config.nodes[0].id.to_string(),
    };
    let body = json!({
        "target_node": target,
        "mode": args.mode,
        "payload_bytes": args.payload_bytes,
        "duration_ms": args.duration_ms,
        "in_flight": args.in_flight,
        "service": args.service,
    });
    let client = match client(
        config,
        Duration::from_millis(args.duration_ms) + Duration::from_secs(90),
    ) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let url = format!("{base}/admin/bench");
    let report = match fetch_json(&url, client.post(&url).json(&body)).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", render(&body, &report));
    }
    ExitCode::SUCCESS
}

fn render(request: &Value, report: &Value) -> String {
    let n = |v: &Value| v.as_f64().unwrap_or_default();
    let l = &report["latency_us"];
    format!(
        "{} {} on {}: {} messages of {} bytes in {:.2} s with {} in flight\n  {:.0} msg/s\n  latency us: p50 {} p90 {} p99 {} max {}\n",
        request["service"].as_str().unwrap_or("echo"),
        request["mode"].as_str().unwrap_or_default(),
        request["target_node"].as_str().unwrap_or_default(),
        report["messages"],
        request["payload_bytes"],
        n(&report["seconds"]),
        request["in_flight"],
        n(&report["per_second"]),
        l["p50"],
        l["p90"],
        l["p99"],
        l["max"],
    )
}

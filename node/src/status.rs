//! `troupe status`: the cluster as one node sees it.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use crate::admin_client::{base_url, client, fetch_json};
use crate::config::NodeConfig;

pub(crate) async fn run(config: &NodeConfig, node: Option<&str>, json: bool) -> ExitCode {
    let url = format!("{}/admin/cluster", base_url(config, node));
    let client = match client(config, Duration::from_secs(5)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let body = match fetch_json(&url, client.get(&url)).await {
        Ok(v) => v,
        Err(code) => return code,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    print!("{}", render(&body));
    ExitCode::SUCCESS
}

/// The human form of `/admin/cluster`.
fn render(body: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_string();
    let mut out = format!(
        "cluster as seen by {} ({})\n",
        text(&body["node"]),
        if body["formed"].as_bool() == Some(true) {
            "formed"
        } else {
            "forming"
        }
    );
    out.push_str(&format!(
        "{:<12} {:<8} {:<22} {:<22} {}\n",
        "NODE", "STATUS", "CLUSTER", "HTTP", "LAST HEARD"
    ));
    for n in body["nodes"].as_array().into_iter().flatten() {
        let heard = n["last_heard_ms"]
            .as_u64()
            .map_or_else(|| "never".to_string(), |ms| format!("{ms} ms ago"));
        out.push_str(&format!(
            "{:<12} {:<8} {:<22} {:<22} {}\n",
            text(&n["id"]),
            text(&n["status"]),
            text(&n["cluster_addr"]),
            text(&n["http_addr"]),
            heard
        ));
    }
    out.push_str(&render_placements(body));
    out
}

/// The sharded services whose placement is not the configured one: pending moves (shards
/// served where their data is, not where the configuration places them), refusals, waits.
fn render_placements(body: &Value) -> String {
    let mut out = String::new();
    for service in body["services"].as_array().into_iter().flatten() {
        let name = service["name"].as_str().unwrap_or("-");
        let placement = &service["placement"];
        if placement.is_null() {
            continue;
        }
        if placement["agreed"].as_bool() == Some(false) {
            let waiting: Vec<&str> = placement["waiting_for"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            out.push_str(&format!(
                "{name}: placement not agreed yet, waiting for {}\n",
                waiting.join(", ")
            ));
        }
        if let Some(why) = placement["refused"].as_str() {
            out.push_str(&format!("{name}: refused: {why}\n"));
        }
        let moves = placement["pending_moves"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !moves.is_empty() {
            out.push_str(&format!(
                "{name}: {} pending moves (data not moved yet; each shard is served where its data is):\n",
                moves.len()
            ));
            for m in &moves {
                out.push_str(&format!(
                    "  shard {:<5} {} -> {}\n",
                    m["shard"].as_u64().unwrap_or_default(),
                    m["from"].as_str().unwrap_or("-"),
                    m["to"].as_str().unwrap_or("-")
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_line_per_node() {
        let body = serde_json::json!({
            "node": "n1", "formed": true,
            "nodes": [
                {"id": "n1", "status": "up", "cluster_addr": "127.0.0.1:7101", "http_addr": "127.0.0.1:8081", "last_heard_ms": 0},
                {"id": "n2", "status": "down", "cluster_addr": "127.0.0.1:7102", "http_addr": "127.0.0.1:8082", "last_heard_ms": null}
            ]
        });
        let text = render(&body);
        assert!(text.starts_with("cluster as seen by n1 (formed)\n"));
        assert!(!text.contains("pending"));
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[3].starts_with("n2") && lines[3].contains("down") && lines[3].ends_with("never")
        );
    }

    #[test]
    fn renders_pending_moves() {
        let body = serde_json::json!({
            "node": "n1", "formed": true, "nodes": [],
            "services": [{"name": "kv", "placement": {"agreed": true, "waiting_for": [],
                "owners": [], "refused": null,
                "pending_moves": [{"shard": 3, "from": "n1", "to": "n4"}]}}]
        });
        let text = render(&body);
        assert!(text.contains("kv: 1 pending moves"), "{text}");
        assert!(text.contains("shard 3     n1 -> n4"), "{text}");
    }
}

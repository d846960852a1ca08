//! `--chaos`: random actors killed through `POST /admin/chaos/kill` on a schedule, while the
//! orders flow. Which services: those the cluster reports (`GET /admin/cluster`), but `echo`.
//! A 429 (the node's kill rate) is obeyed: the next kill waits for its `Retry-After` at least.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;

use super::client::{Answer, Api};
use super::stats::Tally;

/// What the chaos did.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct ChaosReport {
    /// Actors killed, by service.
    pub(crate) killed: Tally,
    /// Kill requests that killed nothing, by error code.
    pub(crate) refused: Tally,
}

/// The services to kill members of, as the cluster reports them.
pub(crate) async fn services(api: &Api) -> Vec<String> {
    let Ok(body) = api.read("/admin/cluster").await else {
        return Vec::new();
    };
    body["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .filter(|name| *name != "echo")
        .map(str::to_string)
        .collect()
}

/// Kills a random member of a random service of `services` every `every`, until `stop`.
pub(crate) async fn kill_actors(
    api: Arc<Api>,
    services: Vec<String>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> ChaosReport {
    let mut report = ChaosReport::default();
    if services.is_empty() {
        return report;
    }
    loop {
        let mut wait = every;
        let service = &services[rand::random_range(0..services.len())];
        match api
            .post(
                "/admin/chaos/kill",
                Some(api.admin()),
                &json!({"service": service}),
            )
            .await
        {
            Answer::Http(200, body) => {
                let n = body["killed"].as_array().map_or(0, Vec::len);
                for _ in 0..n {
                    report.killed.add(service.clone());
                }
            }
            answer => {
                if let Answer::Http(429, _) = answer {
                    wait = wait.max(Duration::from_secs(1));
                }
                report.refused.add(answer.error_key());
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return report,
        }
        if *stop.borrow() {
            return report;
        }
    }
}

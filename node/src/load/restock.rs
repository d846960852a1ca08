//! `--restock-every-ms`: an administrator restocks a random product of the run now and then
//! while the orders flow, so that the stock invariant's "restocks" term is exercised (and, with
//! `--low-stock`, sold-out products come back). A restock is not idempotent: one whose outcome
//! is unknown (504, no answer) is not repeated but counted apart, and the check accepts the
//! stock with or without it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;

use super::client::{Answer, Api};
use super::stats::Tally;

/// What the restocks did, per product id.
#[derive(Debug, Default, Clone)]
pub(crate) struct Restocks {
    /// Units known added.
    pub(crate) added: HashMap<String, u64>,
    /// Units whose restock had an unknown outcome.
    pub(crate) unknown: HashMap<String, u64>,
    /// Restocks refused or unknown, by code.
    pub(crate) failed: Tally,
}

impl Restocks {
    /// The figures for the report: units known added, units unknown, failures by code.
    pub(crate) fn summary(&self) -> RestockSummary {
        RestockSummary {
            units_added: self.added.values().sum(),
            units_unknown: self.unknown.values().sum(),
            failed: self.failed.clone(),
        }
    }
}

/// The restocks in the report.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct RestockSummary {
    pub(crate) units_added: u64,
    pub(crate) units_unknown: u64,
    pub(crate) failed: Tally,
}

/// Restocks a random product of `products` by `quantity` every `every`, until `stop`.
pub(crate) async fn run(
    api: Arc<Api>,
    products: Vec<String>,
    every: Duration,
    quantity: u64,
    mut stop: watch::Receiver<bool>,
) -> Restocks {
    let mut done = Restocks::default();
    if products.is_empty() {
        return done;
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return done,
        }
        if *stop.borrow() {
            return done;
        }
        let id = &products[rand::random_range(0..products.len())];
        let answer = api
            .post(
                &format!("/api/v1/products/{id}/restock"),
                Some(api.admin()),
                &json!({"quantity": quantity}),
            )
            .await;
        match answer {
            Answer::Http(200, _) => *done.added.entry(id.clone()).or_default() += quantity,
            // Nothing was done (503) or refused: no stock moved.
            Answer::Http(status, _) if status != 504 => done.failed.add(answer.error_key()),
            _ => {
                done.failed.add(answer.error_key());
                *done.unknown.entry(id.clone()).or_default() += quantity;
            }
        }
    }
}

//! `--check`'s reading side: waits for quiescence (no accepted order still pending), then reads
//! from the API what the invariants are checked over ([`super::check::Snapshot`]): every
//! product through the paged list, every wallet, every order, and each user's orders (read
//! model) and notifications.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::check::{self, Feed, OrderFact, ProductFact, Snapshot, WalletFact};
use super::client::Api;
use super::drive::{Accepted, Drive};
use super::poll::Seen;
use super::report::CheckReport;
use super::restock::Restocks;
use super::setup::{LoadProduct, LoadUser};

/// The least time the read side gets to catch up once every order is final.
const READ_SIDE_GRACE: Duration = Duration::from_secs(10);
/// The most entries a user's orders or notifications list shows (`limit` at most 1000).
const FEED_LIMIT: usize = 1000;
/// Reads in flight at once.
const PARALLEL: usize = 16;

/// Reads `paths` as admin, a few at a time: each body, or None when it could not be read.
async fn read_all(api: &Arc<Api>, paths: Vec<String>) -> Vec<Option<serde_json::Value>> {
    let mut out = vec![None; paths.len()];
    let mut tasks = JoinSet::new();
    for (n, path) in paths.into_iter().enumerate() {
        if tasks.len() >= PARALLEL
            && let Some(Ok((i, body))) = tasks.join_next().await
        {
            out[i] = body;
        }
        let api = api.clone();
        tasks.spawn(async move { (n, api.read(&path).await.ok()) });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok((i, body)) = joined {
            out[i] = body;
        }
    }
    out
}

fn is_final(status: &str) -> bool {
    status == "confirmed" || status == "cancelled"
}

/// Waits until no accepted order is pending (or `deadline` passes), re-reading only the
/// orders not known final (`known`: the statuses the run saw last, by order); gives how long
/// it took and every order's status.
pub(crate) async fn quiesce(
    api: &Arc<Api>,
    orders: &[Accepted],
    mut known: Vec<String>,
    deadline: Duration,
) -> (Duration, Vec<String>) {
    let started = Instant::now();
    loop {
        let open: Vec<usize> = (0..orders.len())
            .filter(|i| !is_final(&known[*i]))
            .collect();
        if open.is_empty() || started.elapsed() > deadline {
            return (started.elapsed(), known);
        }
        let paths = open
            .iter()
            .map(|i| format!("/api/v1/orders/{}", orders[*i].id))
            .collect();
        for (i, body) in open.iter().zip(read_all(api, paths).await) {
            known[*i] = body
                .and_then(|b| b["status"].as_str().map(str::to_string))
                .unwrap_or_else(|| "unreadable".to_string());
        }
        if open.iter().any(|i| !is_final(&known[*i])) {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Every product of the list, id to stock, a page at a time; None if a page failed.
async fn product_stock(api: &Arc<Api>) -> Option<HashMap<String, u64>> {
    let mut stock = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(a) => format!("/api/v1/products?limit=200&after={a}"),
            None => "/api/v1/products?limit=200".to_string(),
        };
        let page = api.read(&path).await.ok()?;
        for p in page["products"].as_array().into_iter().flatten() {
            if let (Some(id), Some(n)) = (p["id"].as_str(), p["stock"].as_u64()) {
                stock.insert(id.to_string(), n);
            }
        }
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => return Some(stock),
        }
    }
}

fn feed(body: Option<serde_json::Value>, list: &str, value: &str) -> Option<Feed> {
    let body = body?;
    let items = body[list].as_array()?;
    Some(Feed {
        entries: items
            .iter()
            .map(|e| {
                let id = if list == "orders" { "id" } else { "order_id" };
                (
                    e[id].as_str().unwrap_or_default().to_string(),
                    e[value].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        full: items.len() >= FEED_LIMIT,
    })
}

/// Reads everything the invariants need, after quiescence (`statuses` as last read).
pub(crate) async fn snapshot(
    api: &Arc<Api>,
    users: &[LoadUser],
    products: &[LoadProduct],
    orders: &[Accepted],
    statuses: Vec<String>,
    restocks: &Restocks,
) -> Snapshot {
    let stock = product_stock(api).await;
    let wallets = read_all(
        api,
        users
            .iter()
            .map(|u| format!("/api/v1/users/{}/wallet", u.id))
            .collect(),
    )
    .await;
    let order_lists = read_all(
        api,
        users
            .iter()
            .map(|u| format!("/api/v1/users/{}/orders?limit={FEED_LIMIT}", u.id))
            .collect(),
    )
    .await;
    let inboxes = read_all(
        api,
        users
            .iter()
            .map(|u| format!("/api/v1/users/{}/notifications?limit={FEED_LIMIT}", u.id))
            .collect(),
    )
    .await;
    let mut read_models = HashMap::new();
    let mut notifications = HashMap::new();
    for ((user, list), inbox) in users.iter().zip(order_lists).zip(inboxes) {
        read_models.insert(user.id.clone(), feed(list, "orders", "status"));
        notifications.insert(user.id.clone(), feed(inbox, "notifications", "kind"));
    }
    Snapshot {
        orders: orders
            .iter()
            .zip(statuses)
            .map(|(o, status)| OrderFact {
                id: o.id.clone(),
                user_id: users[o.user].id.clone(),
                status,
                total_cents: o.total_cents,
                items: o.items.clone(),
            })
            .collect(),
        products: products
            .iter()
            .map(|p| ProductFact {
                id: p.id.clone(),
                initial_stock: p.initial_stock,
                restocked: restocks.added.get(&p.id).copied().unwrap_or(0),
                restocked_unknown: restocks.unknown.get(&p.id).copied().unwrap_or(0),
                current_stock: stock.as_ref().and_then(|s| s.get(&p.id).copied()),
            })
            .collect(),
        wallets: users
            .iter()
            .zip(wallets)
            .map(|(u, w)| WalletFact {
                user_id: u.id.clone(),
                opening_cents: u.opening_cents,
                deposited_cents: u.deposited_cents,
                current_cents: w.and_then(|w| w["balance_cents"].as_u64()),
            })
            .collect(),
        read_models,
        notifications,
    }
}

/// `--check`: waits until no accepted order is pending (statuses the run `seen` last to begin
/// with), then verifies the invariants. The read model and the notifications follow the orders
/// through events, so they get until the deadline (and at least [`READ_SIDE_GRACE`]) to catch
/// up before a verdict is final.
pub(crate) async fn check(
    api: &Arc<Api>,
    drive: &Drive,
    seen: &HashMap<usize, Seen>,
    restocks: &Restocks,
    timeout: Duration,
) -> CheckReport {
    let accepted = drive.records().accepted.clone();
    let known = (0..accepted.len())
        .map(|i| {
            seen.get(&i)
                .map_or_else(|| "pending".to_string(), |s| s.status.clone())
        })
        .collect();
    let started = Instant::now();
    let (waited, statuses) = quiesce(api, &accepted, known, timeout).await;
    let quiescent = statuses.iter().all(|s| is_final(s));
    let read_side = Instant::now() + timeout.saturating_sub(waited).max(READ_SIDE_GRACE);
    let invariants = loop {
        let snapshot = snapshot(
            api,
            &drive.users,
            &drive.products,
            &accepted,
            statuses.clone(),
            restocks,
        )
        .await;
        let invariants = check::verify(&snapshot);
        if invariants.iter().all(|v| v.holds) || !quiescent || Instant::now() > read_side {
            break invariants;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    CheckReport {
        unknown_orders: drive.records().unknown.len(),
        quiescent,
        waited_s: started.elapsed().as_secs_f64(),
        holds: invariants.iter().all(|v| v.holds),
        invariants,
    }
}

//! `--check`: the invariants of issue 11, verified over what the API shows after the run.
//!
//! [`Snapshot`] is what was read (see `gather`); [`verify`] is a plain function over it that
//! gives one [`Verdict`] per invariant, with its figures and the first few offenders, so that
//! the arithmetic is tested on synthetic data.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

/// How many offenders a verdict names.
const NAMED: usize = 5;

/// One order this run got a 202 for, as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderFact {
    pub(crate) id: String,
    pub(crate) user_id: String,
    /// `pending`, `confirmed`, `cancelled`, or `unreadable` when it could not be read.
    pub(crate) status: String,
    pub(crate) total_cents: u64,
    /// (product id, quantity).
    pub(crate) items: Vec<(String, u64)>,
}

/// A product this run created: what it knows was put in, and what the API shows now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProductFact {
    pub(crate) id: String,
    pub(crate) initial_stock: u64,
    pub(crate) restocked: u64,
    /// Units of restocks whose outcome is unknown: the stock may or may not hold them.
    pub(crate) restocked_unknown: u64,
    /// None when it is missing from the product list.
    pub(crate) current_stock: Option<u64>,
}

/// A wallet of a user this run created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WalletFact {
    pub(crate) user_id: String,
    /// The balance read before the run placed any order.
    pub(crate) opening_cents: u64,
    pub(crate) deposited_cents: u64,
    /// None when it could not be read.
    pub(crate) current_cents: Option<u64>,
}

/// What one user's feed (read model or notifications) shows: (order id, status or kind).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Feed {
    pub(crate) entries: Vec<(String, String)>,
    /// Whether the feed was full (its newest entries only): older orders may be out of it.
    pub(crate) full: bool,
}

/// Everything the invariants are checked over.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub(crate) orders: Vec<OrderFact>,
    pub(crate) products: Vec<ProductFact>,
    pub(crate) wallets: Vec<WalletFact>,
    /// Per user: `GET /api/v1/users/{id}/orders`; None when it could not be read.
    pub(crate) read_models: HashMap<String, Option<Feed>>,
    /// Per user: `GET /api/v1/users/{id}/notifications`; None when it could not be read.
    pub(crate) notifications: HashMap<String, Option<Feed>>,
}

/// One invariant's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Verdict {
    pub(crate) name: &'static str,
    pub(crate) holds: bool,
    /// The figures behind it, for a person.
    pub(crate) figures: String,
    /// The first few offenders.
    pub(crate) offenders: Vec<String>,
}

impl Verdict {
    fn new(name: &'static str, figures: String, offenders: Vec<String>, failed: usize) -> Self {
        let mut offenders = offenders;
        if failed > offenders.len() {
            offenders.push(format!("... and {} more", failed - offenders.len()));
        }
        Self {
            name,
            holds: failed == 0,
            figures,
            offenders,
        }
    }
}

/// Every invariant, in the order of the issue.
pub(crate) fn verify(s: &Snapshot) -> Vec<Verdict> {
    let stock = stock_balances(s);
    let wallets = wallet_balances(s);
    let twice = Verdict {
        name: "nothing charged or released twice",
        holds: stock.holds && wallets.holds,
        figures: if stock.holds && wallets.holds {
            "follows from the stock and wallet balances, which both hold".to_string()
        } else {
            "cannot be shown: a stock or wallet balance is off (see above)".to_string()
        },
        offenders: Vec::new(),
    };
    vec![
        all_final(s),
        stock,
        wallets,
        notifications(s),
        read_model(s),
        twice,
    ]
}

fn is_final(status: &str) -> bool {
    status == "confirmed" || status == "cancelled"
}

fn all_final(s: &Snapshot) -> Verdict {
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    let mut offenders = Vec::new();
    let mut failed = 0;
    for o in &s.orders {
        *by_status.entry(o.status.as_str()).or_default() += 1;
        if !is_final(&o.status) {
            failed += 1;
            if offenders.len() < NAMED {
                offenders.push(format!("order {} is {}", o.id, o.status));
            }
        }
    }
    let counts: Vec<String> = by_status.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let figures = format!("{} accepted: {}", s.orders.len(), counts.join(", "));
    Verdict::new("every accepted order is final", figures, offenders, failed)
}

fn stock_balances(s: &Snapshot) -> Verdict {
    let mut sold: HashMap<&str, u64> = HashMap::new();
    for o in s.orders.iter().filter(|o| o.status == "confirmed") {
        for (product, quantity) in &o.items {
            *sold.entry(product.as_str()).or_default() += quantity;
        }
    }
    let (mut put_in, mut left, mut sold_total) = (0u64, 0u64, 0u64);
    let (mut offenders, mut failed) = (Vec::new(), 0);
    for p in &s.products {
        let sold = sold.get(p.id.as_str()).copied().unwrap_or(0);
        let before = p.initial_stock + p.restocked;
        put_in += before;
        sold_total += sold;
        left += p.current_stock.unwrap_or(0);
        let fine = p
            .current_stock
            .is_some_and(|now| (before..=before + p.restocked_unknown).contains(&(now + sold)));
        if !fine {
            failed += 1;
            if offenders.len() < NAMED {
                let now = p
                    .current_stock
                    .map_or_else(|| "unreadable".to_string(), |n| n.to_string());
                let maybe = match p.restocked_unknown {
                    0 => String::new(),
                    n => format!(" (+ up to {n} restocked with an unknown outcome)"),
                };
                offenders.push(format!(
                    "product {}: initial {} + restocked {}{maybe} != stock {now} + confirmed {sold}",
                    p.id, p.initial_stock, p.restocked
                ));
            }
        }
    }
    let figures = format!(
        "{} products: initial + restocks {put_in} = stock now {left} + confirmed quantities {sold_total} ({} off)",
        s.products.len(),
        failed
    );
    Verdict::new(
        "stock: initial + restocks = stock + confirmed",
        figures,
        offenders,
        failed,
    )
}

fn wallet_balances(s: &Snapshot) -> Verdict {
    let mut spent: HashMap<&str, u64> = HashMap::new();
    for o in s.orders.iter().filter(|o| o.status == "confirmed") {
        *spent.entry(o.user_id.as_str()).or_default() += o.total_cents;
    }
    let (mut put_in, mut left, mut spent_total) = (0u64, 0u64, 0u64);
    let (mut offenders, mut failed) = (Vec::new(), 0);
    for w in &s.wallets {
        let spent = spent.get(w.user_id.as_str()).copied().unwrap_or(0);
        let before = w.opening_cents + w.deposited_cents;
        put_in += before;
        spent_total += spent;
        left += w.current_cents.unwrap_or(0);
        let fine = w.current_cents.is_some_and(|now| now + spent == before);
        if !fine {
            failed += 1;
            if offenders.len() < NAMED {
                let now = w
                    .current_cents
                    .map_or_else(|| "unreadable".to_string(), |n| n.to_string());
                offenders.push(format!(
                    "wallet of {}: opening {} + deposits {} != balance {now} + confirmed {spent}",
                    w.user_id, w.opening_cents, w.deposited_cents
                ));
            }
        }
    }
    let figures = format!(
        "{} wallets: opening + deposits {put_in} = balances now {left} + confirmed totals {spent_total} cents ({} off)",
        s.wallets.len(),
        failed
    );
    Verdict::new(
        "wallets: opening + deposits = balance + confirmed",
        figures,
        offenders,
        failed,
    )
}

/// The kind of notification a final status calls for.
fn kind_of(status: &str) -> Option<&'static str> {
    match status {
        "confirmed" => Some("order_confirmed"),
        "cancelled" => Some("order_cancelled"),
        _ => None,
    }
}

/// The orders that are confirmed or cancelled.
fn finished_orders(s: &Snapshot) -> impl Iterator<Item = &OrderFact> {
    s.orders.iter().filter(|o| is_final(&o.status))
}

fn notifications(s: &Snapshot) -> Verdict {
    let (mut offenders, mut failed, mut checked, mut out_of_window) = (Vec::new(), 0, 0, 0);
    let note = |offenders: &mut Vec<String>, text: String| {
        if offenders.len() < NAMED {
            offenders.push(text);
        }
    };
    for o in finished_orders(s) {
        let Some(want) = kind_of(&o.status) else {
            continue;
        };
        let Some(Some(feed)) = s.notifications.get(&o.user_id) else {
            failed += 1;
            note(
                &mut offenders,
                format!("notifications of {} unreadable", o.user_id),
            );
            continue;
        };
        let kinds: Vec<&str> = feed
            .entries
            .iter()
            .filter(|(id, _)| *id == o.id)
            .map(|(_, k)| k.as_str())
            .collect();
        match kinds.as_slice() {
            [k] if *k == want => checked += 1,
            [] if feed.full => out_of_window += 1,
            _ => {
                failed += 1;
                note(
                    &mut offenders,
                    format!("order {} ({}): notifications {kinds:?}", o.id, o.status),
                );
            }
        }
    }
    // Nothing notified of an order that is not finished.
    for o in s.orders.iter().filter(|o| !is_final(&o.status)) {
        if let Some(Some(feed)) = s.notifications.get(&o.user_id)
            && feed.entries.iter().any(|(id, _)| *id == o.id)
        {
            failed += 1;
            note(
                &mut offenders,
                format!("order {} is {} but was notified", o.id, o.status),
            );
        }
    }
    let figures = format!(
        "{checked} finished orders with exactly one notification of their kind, {failed} wrong, {out_of_window} beyond the inboxes' newest entries"
    );
    Verdict::new(
        "exactly one notification per finished order",
        figures,
        offenders,
        failed,
    )
}

fn read_model(s: &Snapshot) -> Verdict {
    let (mut offenders, mut failed, mut checked, mut out_of_window) = (Vec::new(), 0, 0, 0);
    for o in finished_orders(s) {
        let Some(Some(feed)) = s.read_models.get(&o.user_id) else {
            failed += 1;
            if offenders.len() < NAMED {
                offenders.push(format!("orders of {} unreadable", o.user_id));
            }
            continue;
        };
        let shown: Vec<&str> = feed
            .entries
            .iter()
            .filter(|(id, _)| *id == o.id)
            .map(|(_, status)| status.as_str())
            .collect();
        match shown.as_slice() {
            [status] if *status == o.status => checked += 1,
            [] if feed.full => out_of_window += 1,
            _ => {
                failed += 1;
                if offenders.len() < NAMED {
                    offenders.push(format!(
                        "order {} is {} but its user's orders show {shown:?}",
                        o.id, o.status
                    ));
                }
            }
        }
    }
    let figures = format!(
        "{checked} finished orders shown with their final status, {failed} not, {out_of_window} beyond the read model's newest entries"
    );
    Verdict::new(
        "the read model shows each final status",
        figures,
        offenders,
        failed,
    )
}

#[cfg(test)]
#[path = "check/tests.rs"]
mod tests;

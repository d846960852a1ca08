//! Before the orders: the run's users (registered, logged in, wallets read and topped up) and
//! its products, all through the API. Registration costs an Argon2 hash on a node, so users are
//! made a few at a time. Anything whose creation had an unknown outcome is left out of the run
//! (and of the checks): the run only counts on what it knows.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::client::{Answer, Api};
use super::stats::Tally;

/// How many registrations (or product creations) are in flight at once.
const PARALLEL: usize = 8;

/// A user of the run.
#[derive(Debug, Clone)]
pub(crate) struct LoadUser {
    pub(crate) id: String,
    pub(crate) token: String,
    /// The wallet's balance before the run placed any order.
    pub(crate) opening_cents: u64,
    pub(crate) deposited_cents: u64,
}

/// A product of the run.
#[derive(Debug, Clone)]
pub(crate) struct LoadProduct {
    pub(crate) id: String,
    pub(crate) initial_stock: u64,
}

/// What the setup asks for.
#[derive(Debug, Clone)]
pub(crate) struct SetupSpec {
    /// Names emails and skus so that runs never collide.
    pub(crate) run_id: String,
    pub(crate) num_users: usize,
    pub(crate) num_products: usize,
    pub(crate) stock: u64,
    pub(crate) deposit_cents: u64,
}

/// What the setup made, and what it could not.
#[derive(Debug, Default)]
pub(crate) struct Made {
    pub(crate) users: Vec<LoadUser>,
    pub(crate) products: Vec<LoadProduct>,
    /// Failures by step and code (`register:conflict`, `product:transport`).
    pub(crate) failures: Tally,
}

/// Creates the run's users and products.
pub(crate) async fn run(api: &Arc<Api>, spec: &SetupSpec) -> Made {
    let mut made = Made::default();
    let mut tasks = JoinSet::new();
    for n in 0..spec.num_users {
        if tasks.len() >= PARALLEL
            && let Some(Ok(done)) = tasks.join_next().await
        {
            collect_user(&mut made, done);
        }
        let (api, spec) = (api.clone(), spec.clone());
        tasks.spawn(async move { user(&api, &spec, n).await });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok(done) = joined {
            collect_user(&mut made, done);
        }
    }
    let mut tasks = JoinSet::new();
    for n in 0..spec.num_products {
        if tasks.len() >= PARALLEL
            && let Some(Ok(done)) = tasks.join_next().await
        {
            collect_product(&mut made, done);
        }
        let (api, spec) = (api.clone(), spec.clone());
        tasks.spawn(async move { product(&api, &spec, n).await });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok(done) = joined {
            collect_product(&mut made, done);
        }
    }
    made
}

fn collect_user(made: &mut Made, done: Result<LoadUser, String>) {
    match done {
        Ok(u) => made.users.push(u),
        Err(why) => made.failures.add(why),
    }
}

fn collect_product(made: &mut Made, done: Result<LoadProduct, String>) {
    match done {
        Ok(p) => made.products.push(p),
        Err(why) => made.failures.add(why),
    }
}

fn failed(step: &str, answer: &Answer) -> String {
    format!("{step}:{}", answer.error_key())
}

/// A random password of 20 letters and digits.
fn password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..20)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

async fn user(api: &Api, spec: &SetupSpec, n: usize) -> Result<LoadUser, String> {
    let email = format!("load-{}-{n}@load.troupe.test", spec.run_id);
    let password = password();
    let registration =
        json!({"email": email, "name": format!("Load user {n}"), "password": password});
    let id = match api.post("/api/v1/users", None, &registration).await {
        Answer::Http(201, body) => text(&body, "id")?,
        answer => return Err(failed("register", &answer)),
    };
    let login = json!({"email": email, "password": password});
    let token = match api.post("/api/v1/auth/login", None, &login).await {
        Answer::Http(200, body) => text(&body, "access_token")?,
        answer => return Err(failed("login", &answer)),
    };
    let wallet = format!("/api/v1/users/{id}/wallet");
    let opening_cents = match api.get(&wallet, &token).await {
        Answer::Http(200, body) => cents(&body)?,
        answer => return Err(failed("wallet", &answer)),
    };
    if spec.deposit_cents > 0 {
        let body = json!({"amount_cents": spec.deposit_cents});
        match api
            .post(&format!("{wallet}/deposits"), Some(api.admin()), &body)
            .await
        {
            Answer::Http(200, _) => {}
            answer => return Err(failed("deposit", &answer)),
        }
    }
    Ok(LoadUser {
        id,
        token,
        opening_cents,
        deposited_cents: spec.deposit_cents,
    })
}

async fn product(api: &Api, spec: &SetupSpec, n: usize) -> Result<LoadProduct, String> {
    let price_cents = rand::random_range(100..=5_000u64);
    let body = json!({
        "sku": format!("LOAD-{}-{n}", spec.run_id),
        "name": format!("Load product {n}"),
        "price_cents": price_cents,
        "stock": spec.stock,
    });
    match api.post("/api/v1/products", Some(api.admin()), &body).await {
        Answer::Http(201, body) => Ok(LoadProduct {
            id: text(&body, "id")?,
            initial_stock: body["stock"].as_u64().unwrap_or(spec.stock),
        }),
        answer => Err(failed("product", &answer)),
    }
}

fn text(body: &Value, field: &str) -> Result<String, String> {
    body[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("answer without {field}"))
}

fn cents(body: &Value) -> Result<u64, String> {
    body["balance_cents"]
        .as_u64()
        .ok_or_else(|| "wallet without balance_cents".to_string())
}

//! The order saga on a real 3-node cluster: orders racing for the last units, a user's cancel
//! and an operator's forced compensation while a step waits on a stopped node, a few hundred
//! orders carried through actor kills, a node kill and a node stop with every invariant
//! holding afterwards, and sagas whose shard actor or node dies right after each step.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use std::collections::HashMap;

use nix::sys::signal::Signal;
use serde_json::{Value, json};
use tokio::time::Duration;
use troupe_node::auth::Role;

use support::{TestCluster, config_text_with, send_json, token, wait_until};

const SERVICES: &str = "[services.users]\nshards = 4\n\n[services.user-emails]\nshards = 4\n\n\
                        [services.wallets]\nshards = 4\n\n[services.products]\nshards = 4\n\n\
                        [services.product-skus]\nshards = 4\n\n[services.orders]\nshards = 4\n\n\
                        [services.order-views]\nshards = 4\n\n[services.notifications]\nshards = 4\n";

/// The opening balance of every wallet (the default).
const OPENING: u64 = 100_000;

async fn cluster() -> TestCluster {
    let mut cluster = TestCluster::new(3);
    std::fs::write(&cluster.config, config_text_with(&cluster.nodes, SERVICES)).unwrap();
    cluster.start_formed().await;
    cluster
}

/// `method path` on `node` with `token` (and `body`): status and JSON, or None if no answer.
async fn call(
    cluster: &TestCluster,
    node: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Option<(u16, Value)> {
    let mut request = support::client()
        .request(method, cluster.node(node).url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    send_json(request).await
}

async fn admin_get(cluster: &TestCluster, node: &str, path: &str) -> (u16, Value) {
    let admin = token(Role::Admin);
    call(cluster, node, reqwest::Method::GET, path, &admin, None)
        .await
        .unwrap_or((0, Value::Null))
}

async fn admin_post(cluster: &TestCluster, node: &str, path: &str, body: Value) -> (u16, Value) {
    let admin = token(Role::Admin);
    call(
        cluster,
        node,
        reqwest::Method::POST,
        path,
        &admin,
        Some(body),
    )
    .await
    .unwrap_or((0, Value::Null))
}

/// Registers a user; their id.
async fn register(cluster: &TestCluster, node: &str, name: &str) -> String {
    let email = format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple());
    let body = json!({"email": email, "name": name, "password": "correct horse battery"});
    let request = support::client()
        .post(cluster.node(node).url("/api/v1/users"))
        .json(&body);
    let (status, user) = send_json(request).await.unwrap();
    assert_eq!(status, 201, "{user}");
    user["id"].as_str().unwrap().to_string()
}

/// Places an order for `user` through `node`, trying other keys while the order's own shard
/// cannot take it (its node is stopped): its id.
async fn place_where_it_can(
    cluster: &TestCluster,
    node: &str,
    user: &str,
    items: &Value,
    key: &str,
) -> String {
    let token = support::user_token(user);
    for n in 0..50 {
        let request = support::client()
            .post(cluster.node(node).url("/api/v1/orders"))
            .bearer_auth(&token)
            .header("Idempotency-Key", format!("{key}-{n}"))
            .json(&json!({ "items": items }));
        match send_json(request).await {
            Some((202, order)) => return order["id"].as_str().unwrap().to_string(),
            Some((503 | 504, _)) | None => continue,
            Some((status, body)) => panic!("placing {key}: {status} {body}"),
        }
    }
    panic!("no order id landed on a node that runs");
}

/// Creates a product; its id.
async fn product(cluster: &TestCluster, sku: &str, price: u64, stock: u64) -> String {
    let body = json!({"sku": sku, "name": sku, "price_cents": price, "stock": stock});
    let (status, created) = admin_post(cluster, "n1", "/api/v1/products", body).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_string()
}

/// Places an order for `user` through `node` with `key`, trying again (same key) while the
/// answer is "unavailable" or unknown: its id.
async fn place(cluster: &TestCluster, node: &str, user: &str, items: Value, key: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(id) = try_place(cluster, node, user, &items, key).await {
            return id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {key} was never placed"
        );
        // Not a guess at timing: the next try is simply another request, soon.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One try at placing an order: its id, or None if the answer was "unavailable" or unknown.
async fn try_place(
    cluster: &TestCluster,
    node: &str,
    user: &str,
    items: &Value,
    key: &str,
) -> Option<String> {
    let request = support::client()
        .post(cluster.node(node).url("/api/v1/orders"))
        .bearer_auth(support::user_token(user))
        .header("Idempotency-Key", key)
        .json(&json!({ "items": items }));
    match send_json(request).await {
        Some((202, order)) => order["id"].as_str().map(String::from),
        Some((503 | 504, _)) | None => None,
        Some((status, body)) => panic!("placing {key}: {status} {body}"),
    }
}

/// Order `id` once it is final (read through `node` as an admin).
async fn final_order(cluster: &TestCluster, node: &str, id: &str, within: Duration) -> Value {
    let path = format!("/api/v1/orders/{id}");
    wait_until(&format!("order {id} to be final"), within, || async {
        let (status, order) = admin_get(cluster, node, &path).await;
        status == 200 && order["status"] != "pending"
    })
    .await;
    admin_get(cluster, node, &path).await.1
}

async fn stock(cluster: &TestCluster, id: &str) -> u64 {
    let (status, product) = admin_get(cluster, "n1", &format!("/api/v1/products/{id}")).await;
    assert_eq!(status, 200, "{product}");
    product["stock"].as_u64().unwrap()
}

async fn balance(cluster: &TestCluster, user: &str) -> u64 {
    let (status, wallet) = admin_get(cluster, "n2", &format!("/api/v1/users/{user}/wallet")).await;
    assert_eq!(status, 200, "{wallet}");
    wallet["balance_cents"].as_u64().unwrap()
}

/// The node that holds product `id`'s shard.
async fn product_node(cluster: &TestCluster, id: &str) -> String {
    let key = uuid::Uuid::parse_str(id).unwrap();
    let shard = troupe_runtime::shard::shard_of(key.as_bytes(), 4) as usize;
    cluster.shard_map("n1", "products").await[shard].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_racing_for_the_last_units_never_oversell() {
    let cluster = cluster().await;
    let last = product(&cluster, "LAST-5", 100, 5).await;
    let mut users = Vec::new();
    for n in 0..6 {
        users.push(register(&cluster, ["n1", "n2", "n3"][n % 3], &format!("racer{n}")).await);
    }
    // Eighteen orders of one unit at once, through every node, for five units.
    let mut racing = tokio::task::JoinSet::new();
    for n in 0..18 {
        let user = users[n % users.len()].clone();
        let node = ["n1", "n2", "n3"][n % 3];
        let (url, token) = (
            cluster.node(node).url("/api/v1/orders"),
            support::user_token(&user),
        );
        let body = json!({"items": [{"product_id": last, "quantity": 1}]});
        racing.spawn(async move {
            let request = support::client()
                .post(url)
                .bearer_auth(token)
                .header("Idempotency-Key", format!("race-{n}"))
                .json(&body);
            send_json(request).await
        });
    }
    let mut ids = Vec::new();
    while let Some(answer) = racing.join_next().await {
        let (status, order) = answer.unwrap().unwrap();
        assert_eq!(status, 202, "{order}");
        ids.push(order["id"].as_str().unwrap().to_string());
    }
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        let order = final_order(&cluster, "n2", id, Duration::from_secs(30)).await;
        let outcome = format!("{}:{}", order["status"], order["reason"]);
        *outcomes.entry(outcome).or_default() += 1;
    }
    assert_eq!(outcomes.get("\"confirmed\":null"), Some(&5), "{outcomes:?}");
    assert_eq!(
        outcomes.get("\"cancelled\":\"out_of_stock\""),
        Some(&13),
        "{outcomes:?}"
    );
    assert_eq!(stock(&cluster, &last).await, 0);
    // Each confirmed order charged its user once.
    let mut spent: HashMap<&str, u64> = HashMap::new();
    for id in &ids {
        let (_, order) = admin_get(&cluster, "n1", &format!("/api/v1/orders/{id}")).await;
        if order["status"] == "confirmed" {
            let user = users
                .iter()
                .find(|u| order["user_id"] == u.as_str())
                .unwrap();
            *spent.entry(user.as_str()).or_default() += 100;
        }
    }
    for user in &users {
        let paid = spent.get(user.as_str()).copied().unwrap_or(0);
        assert_eq!(balance(&cluster, user).await, OPENING - paid, "{user}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_or_a_forced_compensation_while_a_step_waits_on_a_stopped_node_undoes_it() {
    let mut cluster = cluster().await;
    // Two users whose wallets are on one node (not n1, which the test talks to), a product
    // elsewhere: each order reserves its stock, then waits at the charge while that node is
    // stopped.
    let wallets = cluster.shard_map("n1", "wallets").await;
    let wallet_node = |user: &str| {
        let key = uuid::Uuid::parse_str(user).unwrap();
        wallets[troupe_runtime::shard::shard_of(key.as_bytes(), 4) as usize].clone()
    };
    let mut by_node: HashMap<String, Vec<String>> = HashMap::new();
    let (stopped, alice, bob) = loop {
        let user = register(&cluster, "n1", "payer").await;
        let node = wallet_node(&user);
        let on_node = by_node.entry(node.clone()).or_default();
        on_node.push(user);
        if node != "n1" && on_node.len() == 2 {
            break (node, on_node[0].clone(), on_node[1].clone());
        }
    };
    let via = "n1";
    let mut n = 0;
    let lamp = loop {
        let lamp = product(&cluster, &format!("LAMP-{n}"), 700, 4).await;
        if product_node(&cluster, &lamp).await != stopped {
            break lamp;
        }
        n += 1;
    };
    cluster.proc(&stopped).freeze().await;
    let items = json!([{"product_id": lamp, "quantity": 2}]);
    let cancelled = place_where_it_can(&cluster, via, &alice, &items, "stop-1").await;
    let forced = place_where_it_can(&cluster, via, &bob, &items, "stop-2").await;
    // Both wait at their charge, retried: the operator sees them running.
    wait_until(
        "both sagas to be listed running",
        Duration::from_secs(20),
        || async {
            let (status, list) = admin_get(&cluster, via, "/admin/sagas?state=running").await;
            let ids: Vec<&str> = list["sagas"]
                .as_array()
                .map(|s| s.iter().filter_map(|s| s["id"].as_str()).collect())
                .unwrap_or_default();
            status == 200 && ids.contains(&cancelled.as_str()) && ids.contains(&forced.as_str())
        },
    )
    .await;
    let (status, body) = admin_get(&cluster, via, "/admin/sagas?state=bogus").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );

    // Alice cancels; an operator forces Bob's compensation.
    let token = support::user_token(&alice);
    let path = format!("/api/v1/orders/{cancelled}/cancel");
    let (status, order) = call(
        &cluster,
        via,
        reqwest::Method::POST,
        &path,
        &token,
        Some(json!({})),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{order}");
    let (status, saga) = admin_post(
        &cluster,
        via,
        &format!("/admin/sagas/{forced}/compensate"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, saga["state"].as_str()),
        (200, Some("compensating")),
        "{saga}"
    );
    cluster.proc(&stopped).signal(Signal::SIGCONT);

    let order = final_order(&cluster, via, &cancelled, Duration::from_secs(30)).await;
    assert_eq!(
        (order["status"].as_str(), order["reason"].as_str()),
        (Some("cancelled"), Some("cancelled_by_user"))
    );
    let order = final_order(&cluster, via, &forced, Duration::from_secs(30)).await;
    assert_eq!(
        (order["status"].as_str(), order["reason"].as_str()),
        (Some("cancelled"), Some("cancelled_by_operator"))
    );
    assert_eq!(
        stock(&cluster, &lamp).await,
        4,
        "every reservation released"
    );
    assert_eq!(balance(&cluster, &alice).await, OPENING);
    assert_eq!(balance(&cluster, &bob).await, OPENING);
    let (_, saga) = admin_get(&cluster, via, &format!("/api/v1/sagas/{forced}")).await;
    let notes: Vec<&str> = saga["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["note"].as_str())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("compensation forced by admin")),
        "{notes:?}"
    );
    let (status, _) = admin_post(
        &cluster,
        via,
        &format!("/admin/sagas/{forced}/retry"),
        json!({}),
    )
    .await;
    assert_eq!(status, 409, "a finished saga");
    let (_, finished) = admin_get(&cluster, via, "/admin/sagas?state=compensated").await;
    assert!(
        finished["sagas"].as_array().unwrap().len() >= 2,
        "{finished}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_carried_through_actor_kills_a_node_kill_and_a_node_stop_all_finish_and_balance() {
    let mut cluster = cluster().await;
    let products = [
        (product(&cluster, "CH-1", 300, 200).await, 200),
        (product(&cluster, "CH-2", 1_200, 60).await, 60),
        (product(&cluster, "CH-3", 45_000, 80).await, 80),
    ];
    let mut users = Vec::new();
    for n in 0..6 {
        users.push(register(&cluster, "n1", &format!("chaos{n}")).await);
    }
    // 240 orders placed through n1 and n2 while the saga, product and wallet shards and the
    // saga runners are killed over and over, n3 is SIGKILLed and started again, and n2 is
    // SIGSTOPped and continued.
    let mut ids = Vec::new();
    let mut later = Vec::new();
    for n in 0..240 {
        if n % 10 == 0 {
            for service in ["orders", "products", "wallets", "order-saga"] {
                let _ = admin_post(
                    &cluster,
                    "n1",
                    "/admin/chaos/kill",
                    json!({"service": service}),
                )
                .await;
            }
        }
        match n {
            60 => cluster.kill("n3"),
            100 => cluster.start("n3"),
            140 => cluster.proc("n2").signal(Signal::SIGSTOP),
            170 => cluster.proc("n2").signal(Signal::SIGCONT),
            _ => {}
        }
        let user = &users[n % users.len()];
        let (product, _) = &products[n % products.len()];
        let items = json!([{"product_id": product, "quantity": 1 + n % 3}]);
        let node = if (140..170).contains(&n) {
            "n1"
        } else {
            ["n1", "n2"][n % 2]
        };
        let key = format!("chaos-{n}");
        match try_place(&cluster, node, user, &items, &key).await {
            Some(id) => ids.push(id),
            // Its shard is on a node that is down: placed again, same key, once it is back.
            None => later.push((node, user.clone(), items, key)),
        }
    }
    cluster.wait_ready("n3", Duration::from_secs(30)).await;
    for (node, user, items, key) in later {
        ids.push(place(&cluster, node, &user, items, &key).await);
    }
    // Every order reaches a final state; stock and wallets add up; one notice per order.
    let mut sold: HashMap<String, u64> = HashMap::new();
    let mut spent: HashMap<String, u64> = HashMap::new();
    let mut per_user: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        let order = final_order(&cluster, "n1", id, Duration::from_secs(90)).await;
        let user = order["user_id"].as_str().unwrap().to_string();
        *per_user.entry(user.clone()).or_default() += 1;
        if order["status"] == "confirmed" {
            *spent.entry(user).or_default() += order["total_cents"].as_u64().unwrap();
            for item in order["items"].as_array().unwrap() {
                let product = item["product_id"].as_str().unwrap().to_string();
                *sold.entry(product).or_default() += item["quantity"].as_u64().unwrap();
            }
        }
    }
    assert!(!spent.is_empty(), "some orders were confirmed");
    for (product, initial) in &products {
        let left = stock(&cluster, product).await;
        assert_eq!(
            left + sold.get(product).copied().unwrap_or(0),
            *initial,
            "{product}"
        );
    }
    for user in &users {
        let paid = spent.get(user).copied().unwrap_or(0);
        assert_eq!(balance(&cluster, user).await + paid, OPENING, "{user}");
        let inbox = format!("/api/v1/users/{user}/notifications");
        let wanted = per_user.get(user).copied().unwrap_or(0);
        wait_until(
            &format!("{user}'s notices"),
            Duration::from_secs(30),
            || async {
                let (status, list) = admin_get(&cluster, "n2", &inbox).await;
                status == 200 && list["notifications"].as_array().map(Vec::len) == Some(wanted)
            },
        )
        .await;
    }
}

/// The steps a one-item order goes through, by the prefix of their names.
const STEPS: [&str; 3] = ["reserve", "charge", "commit"];

/// Places one order of `quantity` units of `product` for `user` and waits for it to be
/// confirmed; checks the product and the wallet were changed exactly once.
async fn confirmed_once(
    cluster: &TestCluster,
    user: &str,
    product: &str,
    quantity: u64,
    key: &str,
    stock_before: u64,
    balance_before: u64,
) -> String {
    let items = json!([{"product_id": product, "quantity": quantity}]);
    let id = place(cluster, "n1", user, items, key).await;
    let order = final_order(cluster, "n1", &id, Duration::from_secs(60)).await;
    assert_eq!(order["status"], "confirmed", "{order}");
    let total = order["total_cents"].as_u64().unwrap();
    assert_eq!(
        stock(cluster, product).await,
        stock_before - quantity,
        "{key}: stock"
    );
    assert_eq!(
        balance(cluster, user).await,
        balance_before - total,
        "{key}: charged once"
    );
    let (_, saga) = admin_get(cluster, "n1", &format!("/api/v1/sagas/{id}")).await;
    assert_eq!(saga["state"], "completed", "{saga}");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_whose_shard_actor_dies_right_after_each_step_finishes_once() {
    let mut cluster = cluster().await;
    let user = register(&cluster, "n1", "steady").await;
    let kettle = product(&cluster, "STEP-K", 500, 30).await;
    let (mut stock_now, mut balance_now) = (30, OPENING);
    for step in STEPS {
        let failpoint = format!("orders:{step}:panic");
        restart_all_with_failpoint(&mut cluster, &failpoint).await;
        let key = format!("panic-{step}");
        confirmed_once(&cluster, &user, &kettle, 2, &key, stock_now, balance_now).await;
        let fired = cluster
            .ids()
            .iter()
            .any(|n| cluster.log(n).contains("saga failpoint: failing now"));
        assert!(fired, "the shard actor died after {step}");
        stock_now -= 2;
        balance_now -= 1000;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saga_whose_node_dies_right_after_each_step_resumes_and_finishes_once() {
    let mut cluster = cluster().await;
    let user = register(&cluster, "n1", "steady").await;
    let kettle = product(&cluster, "STEP-N", 500, 30).await;
    let (mut stock_now, mut balance_now) = (30, OPENING);
    for step in STEPS {
        let failpoint = format!("orders:{step}:abort");
        restart_all_with_failpoint(&mut cluster, &failpoint).await;
        let items = json!([{"product_id": kettle, "quantity": 2}]);
        let key = format!("abort-{step}");
        // The node that holds the saga dies right after the step is recorded (SIGABRT: no
        // goodbye), possibly before the 202 reached us; it is started again, without the
        // failpoint.
        let (id, mut dead) = place_across_an_abort(&mut cluster, &user, &items, &key).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while dead.is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no node died after {step}"
            );
            dead = restart_the_dead(&mut cluster).await;
            // Not a guess at timing: the next look at the processes is simply soon.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let order = final_order(&cluster, "n1", &id, Duration::from_secs(60)).await;
        assert_eq!(order["status"], "confirmed", "{order}");
        assert_eq!(
            stock(&cluster, &kettle).await,
            stock_now - 2,
            "{step}: stock taken once"
        );
        assert_eq!(
            balance(&cluster, &user).await,
            balance_now - 1000,
            "{step}: charged once"
        );
        stock_now -= 2;
        balance_now -= 1000;
    }
}

/// Restarts every node with `TROUPE_SAGA_FAILPOINT=failpoint` (their data kept): whichever
/// hosts the saga's shard fails there.
async fn restart_all_with_failpoint(cluster: &mut TestCluster, failpoint: &str) {
    for node in cluster.ids() {
        cluster.kill(&node);
        cluster.start_with(
            &node,
            support::COOKIE,
            &[("TROUPE_SAGA_FAILPOINT", failpoint)],
        );
    }
    for node in cluster.ids() {
        cluster.wait_ready(&node, Duration::from_secs(30)).await;
    }
}

/// Places an order through n1 with `key` while the node holding its saga may abort right
/// after a step (the failpoint), perhaps before its 202 was sent: a node found dead between
/// tries is started again without the failpoint, and the same key is tried again. The
/// order's id, and the node that died if one did.
async fn place_across_an_abort(
    cluster: &mut TestCluster,
    user: &str,
    items: &Value,
    key: &str,
) -> (String, Option<String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut dead = None;
    loop {
        if let Some(id) = try_place(cluster, "n1", user, items, key).await {
            return (id, dead);
        }
        if let Some(node) = restart_the_dead(cluster).await {
            dead = Some(node);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order {key} was never placed"
        );
        // Not a guess at timing: the next try is simply another request, soon.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts again, without the failpoint, the node of `cluster` that is no longer running, if
/// one is not; which one it was.
async fn restart_the_dead(cluster: &mut TestCluster) -> Option<String> {
    let dead = cluster
        .ids()
        .into_iter()
        .find(|n| !cluster.proc(n).is_running())?;
    cluster.take(&dead);
    cluster.start(&dead);
    cluster.wait_ready(&dead, Duration::from_secs(30)).await;
    Some(dead)
}

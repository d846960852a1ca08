//! `/api/v1/orders`, the product list, and the read side of orders (each user's orders and
//! notifications) on a real 3-node cluster: placing, idempotency, validation, authorization,
//! cancelling, and the read model and notifications catching up after their node was killed.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use std::collections::BTreeSet;

use serde_json::{Value, json};
use tokio::time::Duration;
use troupe_node::auth::Role;

use support::{TestCluster, config_text_with, send_json, token, wait_until};

const SERVICES: &str = "[services.users]\nshards = 4\n\n[services.user-emails]\nshards = 4\n\n\
                        [services.wallets]\nshards = 4\n\n[services.products]\nshards = 4\n\n\
                        [services.product-skus]\nshards = 4\n\n[services.orders]\nshards = 4\n\n\
                        [services.order-views]\nshards = 4\n\n[services.notifications]\nshards = 4\n";

async fn cluster() -> TestCluster {
    let mut cluster = TestCluster::new(3);
    std::fs::write(&cluster.config, config_text_with(&cluster.nodes, SERVICES)).unwrap();
    cluster.start_formed().await;
    cluster
}

/// Who calls: nobody, a user by id, or an admin.
#[derive(Clone, Copy)]
enum As<'a> {
    Nobody,
    User(&'a str),
    Admin,
}

/// A request with `headers`: status and JSON body.
async fn call_with(
    cluster: &TestCluster,
    node: &str,
    method: reqwest::Method,
    path: &str,
    who: As<'_>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut request = support::client().request(method, cluster.node(node).url(path));
    match who {
        As::Nobody => {}
        As::User(id) => request = request.bearer_auth(support::user_token(id)),
        As::Admin => request = request.bearer_auth(token(Role::Admin)),
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    send_json(request).await.unwrap()
}

async fn get(cluster: &TestCluster, node: &str, path: &str, who: As<'_>) -> (u16, Value) {
    call_with(cluster, node, reqwest::Method::GET, path, who, None, &[]).await
}

async fn post(
    cluster: &TestCluster,
    node: &str,
    path: &str,
    who: As<'_>,
    body: Value,
) -> (u16, Value) {
    call_with(
        cluster,
        node,
        reqwest::Method::POST,
        path,
        who,
        Some(body),
        &[],
    )
    .await
}

/// Creates a product as admin; its id.
async fn product(cluster: &TestCluster, node: &str, sku: &str, price: u64, stock: u64) -> String {
    let body =
        json!({"sku": sku, "name": format!("Product {sku}"), "price_cents": price, "stock": stock});
    let (status, created) = post(cluster, node, "/api/v1/products", As::Admin, body).await;
    assert_eq!(status, 201, "{created}");
    created["id"].as_str().unwrap().to_string()
}

/// Asserts an error answer: status, code, and a message that names `names`.
fn refused(answer: &(u16, Value), status: u16, code: &str, names: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(names), "{message:?} names {names:?}");
}

/// `POST /api/v1/orders` with `Idempotency-Key: key`.
async fn keyed(
    cluster: &TestCluster,
    node: &str,
    who: As<'_>,
    body: Value,
    key: &str,
) -> (u16, Value) {
    let key = [("Idempotency-Key", key)];
    call_with(
        cluster,
        node,
        reqwest::Method::POST,
        "/api/v1/orders",
        who,
        Some(body),
        &key,
    )
    .await
}

fn new_user() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_placed_read_idempotent_carried_out_and_reach_the_read_side() {
    let cluster = cluster().await;
    let kettle = product(&cluster, "n1", "KT-1", 250, 10).await;
    let lamp = product(&cluster, "n2", "LM-1", 1000, 5).await;
    let (alice, bob) = (
        register(&cluster, "alice").await,
        register(&cluster, "bob").await,
    );
    let (a, b) = (As::User(&alice), As::User(&bob));

    let body = json!({"items": [{"product_id": kettle, "quantity": 2}, {"product_id": lamp, "quantity": 1}]});
    let (status, placed) = post(&cluster, "n1", "/api/v1/orders", a, body.clone()).await;
    assert_eq!(status, 202, "{placed}");
    assert_eq!(placed["status"], "pending");
    assert_eq!(placed["total_cents"], 1500);
    assert_eq!(placed["items"][0]["price_cents"], 250);
    assert_eq!(placed["items"][1]["quantity"], 1);
    assert!(placed["created_at"].as_str().unwrap().ends_with('Z'));
    let first = placed["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/orders/{first}");

    // Read: the owner from any node, an admin; not another user, not without a token.
    let (status, read) = get(&cluster, "n3", &path, a).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(
        (read["id"].as_str(), read["user_id"].as_str()),
        (Some(first.as_str()), Some(alice.as_str()))
    );
    assert_eq!(read["reason"], Value::Null);
    assert_eq!(get(&cluster, "n2", &path, As::Admin).await.0, 200);
    refused(
        &get(&cluster, "n2", &path, b).await,
        403,
        "forbidden",
        "not yours",
    );
    refused(
        &get(&cluster, "n2", &path, As::Nobody).await,
        401,
        "unauthenticated",
        "",
    );
    let unknown = format!("/api/v1/orders/{}", uuid::Uuid::new_v4());
    refused(
        &get(&cluster, "n1", &unknown, a).await,
        404,
        "not_found",
        "does not exist",
    );
    refused(
        &get(&cluster, "n1", "/api/v1/orders/nope", a).await,
        400,
        "invalid_request",
        "id",
    );

    // Idempotency: the same key and body is the same order, from any node; another body 409;
    // another user's same key is another order.
    let once = json!({"items": [{"product_id": kettle, "quantity": 1}]});
    let (status, k1) = keyed(&cluster, "n1", a, once.clone(), "order-7").await;
    assert_eq!(status, 202, "{k1}");
    let (status, k2) = keyed(&cluster, "n3", a, once.clone(), "order-7").await;
    assert_eq!((status, &k2["id"]), (202, &k1["id"]), "{k2}");
    let other = json!({"items": [{"product_id": kettle, "quantity": 3}]});
    refused(
        &keyed(&cluster, "n2", a, other, "order-7").await,
        409,
        "conflict",
        "idempotency key",
    );
    let (status, k3) = keyed(&cluster, "n2", b, once.clone(), "order-7").await;
    assert_eq!(status, 202, "{k3}");
    assert_ne!(k3["id"], k1["id"]);
    let keyed_order = k1["id"].as_str().unwrap().to_string();

    // Bad input: each a 4xx naming the field; nothing is placed.
    let item = |q: Value| json!({"items": [{"product_id": kettle, "quantity": q}]});
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (json!({"items": []}), 400, "invalid_request", "items"),
        (json!({}), 400, "invalid_request", "items"),
        (
            json!({"items": [], "coupon": "x"}),
            400,
            "invalid_request",
            "coupon",
        ),
        (item(json!(0)), 422, "unprocessable", "items[0].quantity"),
        (item(json!(-4)), 422, "unprocessable", "items[0].quantity"),
        (
            item(json!(1001)),
            400,
            "invalid_request",
            "items[0].quantity",
        ),
        (item(json!("two")), 400, "invalid_request", "quantity"),
        (item(json!(1.5)), 400, "invalid_request", "quantity"),
        (
            json!({"items": [{"product_id": kettle, "quantity": 1}, {"product_id": kettle, "quantity": 2}]}),
            400,
            "invalid_request",
            "items[1].product_id",
        ),
        (
            json!({"items": [{"product_id": "x", "quantity": 1}]}),
            400,
            "invalid_request",
            "items[0].product_id",
        ),
        (
            json!({"items": [{"product_id": uuid::Uuid::new_v4().to_string(), "quantity": 1}]}),
            404,
            "not_found",
            "does not exist",
        ),
    ];
    for (body, status, code, names) in cases {
        let answer = post(&cluster, "n2", "/api/v1/orders", a, body.clone()).await;
        refused(&answer, status, code, names);
    }
    let many: Vec<Value> = (0..21)
        .map(|_| json!({"product_id": kettle, "quantity": 1}))
        .collect();
    refused(
        &post(&cluster, "n2", "/api/v1/orders", a, json!({"items": many})).await,
        400,
        "invalid_request",
        "items",
    );
    for bad_key in ["has space", "", &"k".repeat(201)] {
        let answer = keyed(&cluster, "n1", a, once.clone(), bad_key).await;
        refused(&answer, 400, "invalid_request", "Idempotency-Key");
    }
    refused(
        &post(&cluster, "n1", "/api/v1/orders", As::Nobody, once.clone()).await,
        401,
        "unauthenticated",
        "",
    );

    // The saga confirms both of alice's orders: stock taken, wallet charged, once each.
    let first_done = final_order(&cluster, &first, a).await;
    assert_eq!(
        (first_done["status"].as_str(), &first_done["reason"]),
        (Some("confirmed"), &Value::Null)
    );
    let keyed_done = final_order(&cluster, &keyed_order, a).await;
    assert_eq!(keyed_done["status"], "confirmed");
    let bobs = final_order(&cluster, k3["id"].as_str().unwrap(), b).await;
    assert_eq!(bobs["status"], "confirmed");
    assert_eq!(
        stock(&cluster, &kettle).await,
        10 - 2 - 1 - 1,
        "alice's two orders and bob's one"
    );
    assert_eq!(stock(&cluster, &lamp).await, 5 - 1);
    assert_eq!(balance(&cluster, &alice).await, 100_000 - 1500 - 250);

    // The saga: completed, every step done once, its history from start to end.
    let (status, saga) = get(&cluster, "n2", &format!("/api/v1/sagas/{first}"), a).await;
    assert_eq!(
        (status, saga["state"].as_str()),
        (200, Some("completed")),
        "{saga}"
    );
    let names: Vec<&str> = saga["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(
        names.len(),
        5,
        "two reservations, the charge, two commits: {names:?}"
    );
    assert!(
        saga["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "done" && s["attempts"] == 1)
    );
    assert_eq!(
        saga["history"].as_array().unwrap().last().unwrap()["to"],
        "completed"
    );
    refused(
        &get(&cluster, "n2", &format!("/api/v1/sagas/{first}"), b).await,
        403,
        "forbidden",
        "",
    );

    // A confirmed order cannot be cancelled.
    let cancel = format!("/api/v1/orders/{keyed_order}/cancel");
    refused(
        &post(&cluster, "n3", &cancel, b, json!({})).await,
        403,
        "forbidden",
        "not yours",
    );
    refused(
        &post(&cluster, "n3", &cancel, a, json!({})).await,
        409,
        "conflict",
        "completed",
    );

    // Out of stock: nothing taken, the order cancelled with the reason; the saga released
    // what it had reserved.
    let greedy = json!({"items": [{"product_id": kettle, "quantity": 1}, {"product_id": lamp, "quantity": 50}]});
    let (status, placed) = post(&cluster, "n1", "/api/v1/orders", a, greedy).await;
    assert_eq!(status, 202, "{placed}");
    let out = final_order(&cluster, placed["id"].as_str().unwrap(), a).await;
    assert_eq!(
        (out["status"].as_str(), out["reason"].as_str()),
        (Some("cancelled"), Some("out_of_stock"))
    );
    assert_eq!(stock(&cluster, &kettle).await, 6);
    assert_eq!(stock(&cluster, &lamp).await, 4);
    assert_eq!(balance(&cluster, &alice).await, 100_000 - 1750);

    // Payment declined: the reservation is released, nothing charged.
    let dear = product(&cluster, "n3", "GOLD-1", 200_000, 3).await;
    let (status, placed) = post(
        &cluster,
        "n2",
        "/api/v1/orders",
        b,
        json!({"items": [{"product_id": dear, "quantity": 1}]}),
    )
    .await;
    assert_eq!(status, 202, "{placed}");
    let declined = final_order(&cluster, placed["id"].as_str().unwrap(), b).await;
    assert_eq!(declined["reason"], "payment_declined");
    assert_eq!(stock(&cluster, &dear).await, 3);
    assert_eq!(balance(&cluster, &bob).await, 100_000 - 250);

    // The read model: alice's three orders, newest first, with their final statuses.
    let mine = format!("/api/v1/users/{alice}/orders");
    wait_until(
        "alice's orders in the read model",
        Duration::from_secs(20),
        || async {
            let (status, list) = get(&cluster, "n2", &mine, a).await;
            let statuses: Vec<&str> = list["orders"]
                .as_array()
                .map(|o| o.iter().filter_map(|o| o["status"].as_str()).collect())
                .unwrap_or_default();
            status == 200 && statuses == ["cancelled", "confirmed", "confirmed"]
        },
    )
    .await;
    let (_, list) = get(&cluster, "n1", &mine, a).await;
    assert_eq!(list["orders"][1]["id"], keyed_order.as_str());
    assert_eq!(list["orders"][2]["id"], first.as_str());
    assert_eq!(list["orders"][0]["reason"], "out_of_stock");
    refused(&get(&cluster, "n1", &mine, b).await, 403, "forbidden", "");
    assert_eq!(get(&cluster, "n1", &mine, As::Admin).await.0, 200);
    let (status, one) = get(&cluster, "n1", &format!("{mine}?limit=1"), a).await;
    assert_eq!(
        (status, one["orders"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    refused(
        &get(&cluster, "n1", &format!("{mine}?limit=0"), a).await,
        400,
        "invalid_request",
        "limit",
    );
    refused(
        &get(&cluster, "n1", &format!("{mine}?limit=ten"), a).await,
        400,
        "invalid_request",
        "limit",
    );
    refused(
        &get(&cluster, "n1", &format!("{mine}?sort=asc"), a).await,
        400,
        "invalid_request",
        "sort",
    );

    // Notifications: exactly one per finished order, of its kind.
    let inbox = format!("/api/v1/users/{alice}/notifications");
    wait_until("alice's notices", Duration::from_secs(20), || async {
        let (status, list) = get(&cluster, "n3", &inbox, a).await;
        status == 200 && list["notifications"].as_array().map(Vec::len) == Some(3)
    })
    .await;
    let (_, list) = get(&cluster, "n1", &inbox, a).await;
    let kinds: Vec<&str> = list["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["kind"].as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "order_confirmed").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "order_cancelled").count(),
        1,
        "{kinds:?}"
    );
    refused(&get(&cluster, "n1", &inbox, b).await, 403, "forbidden", "");
}

/// Registers a user through the API; their id.
async fn register(cluster: &TestCluster, name: &str) -> String {
    let email = format!("{name}-{}@example.com", uuid::Uuid::new_v4().simple());
    let body = json!({"email": email, "name": name, "password": "correct horse battery"});
    let (status, user) = post(cluster, "n1", "/api/v1/users", As::Nobody, body).await;
    assert_eq!(status, 201, "{user}");
    user["id"].as_str().unwrap().to_string()
}

/// Order `id` once it is confirmed or cancelled.
async fn final_order(cluster: &TestCluster, id: &str, who: As<'_>) -> Value {
    let path = format!("/api/v1/orders/{id}");
    wait_until(
        &format!("order {id} to be final"),
        Duration::from_secs(30),
        || async {
            let (status, order) = get(cluster, "n1", &path, who).await;
            status == 200 && order["status"] != "pending"
        },
    )
    .await;
    get(cluster, "n1", &path, who).await.1
}

/// A product's stock now.
async fn stock(cluster: &TestCluster, id: &str) -> u64 {
    let (status, product) = get(cluster, "n2", &format!("/api/v1/products/{id}"), As::Admin).await;
    assert_eq!(status, 200, "{product}");
    product["stock"].as_u64().unwrap()
}

/// A wallet's balance now.
async fn balance(cluster: &TestCluster, user: &str) -> u64 {
    let (status, wallet) = get(
        cluster,
        "n3",
        &format!("/api/v1/users/{user}/wallet"),
        As::Admin,
    )
    .await;
    assert_eq!(status, 200, "{wallet}");
    wallet["balance_cents"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_product_is_listed_once_in_pages_in_id_order() {
    let cluster = cluster().await;
    let nodes = ["n1", "n2", "n3"];
    let mut created = BTreeSet::new();
    for i in 0..23 {
        created.insert(
            product(
                &cluster,
                nodes[i % 3],
                &format!("SKU-{i:02}"),
                100 + i as u64,
                1,
            )
            .await,
        );
    }
    let user = new_user();
    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/api/v1/products?limit=7&after={a}"),
            None => "/api/v1/products?limit=7".to_string(),
        };
        let (status, page) = get(&cluster, nodes[pages % 3], &path, As::User(&user)).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let products = page["products"].as_array().unwrap();
        assert!(products.len() <= 7);
        listed.extend(
            products
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_string()),
        );
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
        assert!(pages < 10, "the pages end");
    }
    let in_order: Vec<String> = created.iter().cloned().collect();
    assert_eq!(listed, in_order, "every product once, in id order");
    let (status, all) = get(&cluster, "n1", "/api/v1/products", As::User(&user)).await;
    assert_eq!(
        (status, all["products"].as_array().map(Vec::len)),
        (200, Some(23))
    );
    assert_eq!(all["next_after"], Value::Null);
    assert_eq!(
        all["products"][0]["sku"]
            .as_str()
            .map(|s| s.starts_with("SKU-")),
        Some(true)
    );
    for bad in ["limit=0", "limit=201", "limit=x", "after=nope", "page=2"] {
        let answer = get(
            &cluster,
            "n2",
            &format!("/api/v1/products?{bad}"),
            As::User(&user),
        )
        .await;
        let field = bad.split('=').next().unwrap();
        refused(&answer, 400, "invalid_request", field);
    }
    refused(
        &get(&cluster, "n2", "/api/v1/products", As::Nobody).await,
        401,
        "unauthenticated",
        "",
    );
}

/// The shard of user or order `id` in a service of 4 shards.
fn shard(id: &str) -> usize {
    let key = uuid::Uuid::parse_str(id).unwrap();
    troupe_runtime::shard::shard_of(key.as_bytes(), 4) as usize
}

/// A new user id whose shard is one of `shards`.
fn user_in(shards: &[usize]) -> String {
    loop {
        let user = new_user();
        if shards.contains(&shard(&user)) {
            return user;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_model_and_notifications_catch_up_after_their_node_is_killed() {
    let mut cluster = cluster().await;
    // A node other than n1 (which the test talks to) holding shards of both the inboxes and
    // the views; a user whose inbox is there and one whose view is there.
    let inboxes = cluster.shard_map("n1", "notifications").await;
    let views = cluster.shard_map("n1", "order-views").await;
    let on = |map: &[String], node: &str| -> Vec<usize> {
        (0..map.len()).filter(|s| map[*s] == node).collect()
    };
    let victim = ["n2", "n3"]
        .into_iter()
        .find(|n| !on(&inboxes, n).is_empty() && !on(&views, n).is_empty())
        .expect("a node with an inbox shard and a view shard")
        .to_string();
    let users = [
        user_in(&on(&inboxes, &victim)),
        user_in(&on(&views, &victim)),
    ];
    // A product elsewhere: placing reads its price.
    let products = cluster.shard_map("n1", "products").await;
    let mut n = 0;
    let kettle = loop {
        let id = product(&cluster, "n1", &format!("KT-9-{n}"), 300, 50).await;
        if products[shard(&id)] != victim {
            break id;
        }
        n += 1;
    };
    cluster.kill(&victim);
    // Placed while an inbox and a view are down: the sagas finish (these users have no
    // wallet: payment declined) and their events wait in the outboxes for the killed node.
    // An order whose own shard, product or wallet is there waits too, or is placed again
    // with its key once the node is back (an unknown outcome never makes a second order).
    let mut orders: Vec<(usize, String)> = Vec::new();
    let mut later = Vec::new();
    for (u, user) in users.iter().enumerate() {
        for q in 1..=4 {
            let body = json!({"items": [{"product_id": kettle, "quantity": q}]});
            let key = format!("catch-up-{u}-{q}");
            let (status, placed) = keyed(&cluster, "n1", As::User(user), body.clone(), &key).await;
            match status {
                202 => orders.push((u, placed["id"].as_str().unwrap().to_string())),
                503 | 504 => later.push((u, body, key)),
                other => panic!("placing: {other} {placed}"),
            }
        }
    }
    assert!(
        !orders.is_empty(),
        "some order was placed while the node was down"
    );
    // The first user's inbox really is on the node that is down.
    let down = format!("/api/v1/users/{}/notifications", users[0]);
    let (status, body) = get(&cluster, "n1", &down, As::User(&users[0])).await;
    assert_eq!(status, 503, "{body}");
    cluster.start(&victim);
    cluster.wait_ready(&victim, Duration::from_secs(30)).await;
    for (u, body, key) in later {
        let who = As::User(&users[u]);
        let placed = std::sync::Mutex::new(None);
        wait_until(
            &format!("{key} to be placed"),
            Duration::from_secs(20),
            || async {
                let (status, order) = keyed(&cluster, "n1", who, body.clone(), &key).await;
                let done = status == 202;
                if done {
                    *placed.lock().unwrap() = Some(order["id"].as_str().unwrap().to_string());
                }
                done
            },
        )
        .await;
        let id = placed.into_inner().unwrap().expect("placed");
        orders.push((u, id));
    }
    for (u, user) in users.iter().enumerate() {
        let who = As::User(user);
        let inbox = format!("/api/v1/users/{user}/notifications");
        let view = format!("/api/v1/users/{user}/orders");
        let wanted: BTreeSet<String> = orders
            .iter()
            .filter(|(o, _)| *o == u)
            .map(|(_, id)| id.clone())
            .collect();
        wait_until(
            &format!("user {u}'s orders in the inbox and the view"),
            Duration::from_secs(30),
            || async {
                let (s1, notes) = get(&cluster, "n1", &inbox, who).await;
                let (s2, list) = get(&cluster, "n1", &view, who).await;
                let told: BTreeSet<String> = notes["notifications"]
                    .as_array()
                    .map(|n| {
                        n.iter()
                            .filter_map(|n| n["order_id"].as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let cancelled = list["orders"]
                    .as_array()
                    .map(|o| o.iter().filter(|o| o["status"] == "cancelled").count())
                    .unwrap_or_default();
                s1 == 200 && s2 == 200 && told == wanted && cancelled == wanted.len()
            },
        )
        .await;
        // Exactly one notice per order, and the view lists each order once.
        let (_, notes) = get(&cluster, "n2", &inbox, who).await;
        let notes = notes["notifications"].as_array().unwrap();
        assert_eq!(notes.len(), wanted.len(), "{notes:?}");
        assert!(notes.iter().all(|n| n["kind"] == "order_cancelled"));
        let (_, list) = get(&cluster, "n3", &view, who).await;
        let listed: BTreeSet<&str> = list["orders"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o["id"].as_str())
            .collect();
        assert_eq!(
            list["orders"].as_array().unwrap().len(),
            wanted.len(),
            "{listed:?}"
        );
        assert_eq!(listed.len(), wanted.len());
    }
}

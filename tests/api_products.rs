//! `/api/v1/products`: created and restocked by administrators, read by anyone with a token,
//! skus unique across the cluster, on a real 3-node cluster.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use serde_json::{Value, json};
use tokio::time::Duration;
use troupe_node::auth::Role;

use support::{TestCluster, config_text_with, send_json, token};

const SERVICES: &str = "[services.users]\nshards = 4\n\n[services.user-emails]\nshards = 4\n\n\
                        [services.wallets]\nshards = 4\n\n[services.products]\nshards = 4\n\n\
                        [services.product-skus]\nshards = 4\n";

async fn cluster() -> TestCluster {
    let mut cluster = TestCluster::new(3);
    std::fs::write(&cluster.config, config_text_with(&cluster.nodes, SERVICES)).unwrap();
    cluster.start_formed().await;
    cluster
}

async fn call(
    cluster: &TestCluster,
    node: &str,
    method: reqwest::Method,
    path: &str,
    role: Option<Role>,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut request = client.request(method, cluster.node(node).url(path));
    if let Some(role) = role {
        request = request.bearer_auth(token(role));
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    send_json(request).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_are_created_read_and_restocked_and_skus_stay_unique() {
    let cluster = cluster().await;
    let (post, get) = (reqwest::Method::POST, reqwest::Method::GET);
    let new = |sku: &str, price: i64, stock: i64| {
        Some(json!({"sku": sku, "name": "Kettle", "price_cents": price, "stock": stock}))
    };
    let admin = Some(Role::Admin);
    let (status, kettle) = call(
        &cluster,
        "n1",
        post.clone(),
        "/api/v1/products",
        admin,
        new("KT-1", 2500, 3),
    )
    .await;
    assert_eq!(status, 201, "{kettle}");
    let id = kettle["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/products/{id}");
    let (status, read) = call(&cluster, "n2", get.clone(), &path, Some(Role::User), None).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(
        (read["sku"].clone(), read["stock"].clone()),
        ("KT-1".into(), 3.into())
    );
    let (status, _) = call(&cluster, "n2", get.clone(), &path, None, None).await;
    assert_eq!(status, 401);

    // The same sku through another node: 409; a user may not create nor restock.
    let (status, body) = call(
        &cluster,
        "n3",
        post.clone(),
        "/api/v1/products",
        admin,
        new("KT-1", 99, 1),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, "conflict".into()),
        "{body}"
    );
    let (status, _) = call(
        &cluster,
        "n3",
        post.clone(),
        "/api/v1/products",
        Some(Role::User),
        new("KT-2", 99, 1),
    )
    .await;
    assert_eq!(status, 403);
    let restock = format!("{path}/restock");
    let (status, _) = call(
        &cluster,
        "n1",
        post.clone(),
        &restock,
        Some(Role::User),
        Some(json!({"quantity": 2})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = call(
        &cluster,
        "n1",
        post.clone(),
        &restock,
        admin,
        Some(json!({"quantity": 2})),
    )
    .await;
    assert_eq!((status, body["stock"].clone()), (200, 5.into()), "{body}");

    // Impossible and malformed input.
    let cases = [
        (new("KT-3", 0, 1), 422, "price_cents"),
        (new("KT-3", -5, 1), 422, "price_cents"),
        (new("KT-3", 10, -1), 422, "stock"),
        (new("bad sku!", 10, 1), 400, "sku"),
        (
            Some(json!({"sku": "KT-3", "name": "K", "price_cents": "ten", "stock": 1})),
            400,
            "price_cents",
        ),
        (
            Some(json!({"sku": "KT-3", "name": "K", "price_cents": 10})),
            400,
            "stock",
        ),
    ];
    for (body, code, field) in cases {
        let (status, answer) = call(
            &cluster,
            "n2",
            post.clone(),
            "/api/v1/products",
            admin,
            body.clone(),
        )
        .await;
        assert_eq!(status, code, "{body:?}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body:?}: {message}");
    }
    for quantity in [0, -3] {
        let (status, _) = call(
            &cluster,
            "n1",
            post.clone(),
            &restock,
            admin,
            Some(json!({"quantity": quantity})),
        )
        .await;
        assert_eq!(status, 422, "{quantity}");
    }
    let (status, _) = call(
        &cluster,
        "n1",
        get.clone(),
        "/api/v1/products/0190f5c2-8d4e-7b2a-9c3d-4e5f6a7b8c9d",
        admin,
        None,
    )
    .await;
    assert_eq!(status, 404);
    // A creation the product refuses (a name of 201 characters) gives its sku back.
    let long = json!({"sku": "KT-4", "name": "n".repeat(201), "price_cents": 10, "stock": 1});
    let (status, body) = call(
        &cluster,
        "n3",
        post.clone(),
        "/api/v1/products",
        admin,
        Some(long),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("name"),
        "{body}"
    );
    let (status, body) = call(
        &cluster,
        "n3",
        post.clone(),
        "/api/v1/products",
        admin,
        new("KT-4", 10, 1),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

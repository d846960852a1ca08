//! Routes, methods, ids in paths and request ids; and the race for one sku through every node.

use reqwest::Method;
use serde_json::{Value, json};
use troupe_node::auth::Role;

use super::support::client;
use super::{NOBODY, bearer, call, cluster, product, send, user};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_wrong_methods_bad_path_ids_and_request_ids_are_in_the_shape() {
    let cluster = cluster(2).await;
    let admin = bearer(Role::Admin);
    let ada = user(&cluster, "ada@example.com").await;
    let kettle = product(&cluster, "n2", "KT-1").await;
    let kettle_id = kettle["id"].as_str().unwrap();

    // Unknown routes: 404, with or without a token (`/` is the dashboard).
    for path in [
        "/dashboard/nope.js",
        "/nope",
        "/api/v1/nope",
        "/api/v2/users",
        "/api/v1/users/",
        "/api/v1/products/",
        &format!("/api/v1/users/{}/nope", ada.id),
        &format!("/api/v1/products/{kettle_id}/restock/more"),
        "/admin/nope",
    ] {
        for auth in [None, Some(admin.as_str())] {
            call(&cluster, "n1", Method::GET, path, auth, None)
                .await
                .error(404, "not_found", None, &format!("GET {path}"));
        }
    }
    // Known routes, other methods: 405 with Allow.
    for (method, path) in [
        (Method::DELETE, format!("/api/v1/users/{}", ada.id)),
        (Method::PUT, format!("/api/v1/products/{kettle_id}")),
        (Method::GET, "/api/v1/auth/login".to_string()),
        (
            Method::PATCH,
            format!("/api/v1/products/{kettle_id}/restock"),
        ),
        (
            Method::GET,
            format!("/api/v1/users/{}/wallet/deposits", ada.id),
        ),
        (Method::POST, format!("/api/v1/users/{}", ada.id)),
    ] {
        let request = client()
            .request(method.clone(), cluster.node("n2").url(&path))
            .header("authorization", &admin);
        let response = request.send().await.unwrap();
        assert!(response.headers().contains_key("allow"), "{method} {path}");
        send(
            client()
                .request(method.clone(), cluster.node("n2").url(&path))
                .header("authorization", &admin),
        )
        .await
        .error(405, "method_not_allowed", None, &format!("{method} {path}"));
    }

    // Ids that are not UUIDs: 400 naming the id, on every route with one, before anything else.
    let templates = [
        (Method::GET, "/api/v1/users/{}", Value::Null),
        (Method::GET, "/api/v1/users/{}/wallet", Value::Null),
        (
            Method::POST,
            "/api/v1/users/{}/wallet/deposits",
            json!({"amount_cents": 1}),
        ),
        (Method::GET, "/api/v1/products/{}", Value::Null),
        (
            Method::POST,
            "/api/v1/products/{}/restock",
            json!({"quantity": 1}),
        ),
    ];
    let long = "a".repeat(2000);
    let bad_ids = [
        "nope",
        "123",
        "0190f5c2-8d4e-7b2a-9c3d-4e5f6a7b8c9",
        "0190f5c2-8d4e-7b2a-9c3d-4e5f6a7b8c9dd",
        "0190f5c2-8d4e-7b2a-9c3d-4e5f6a7b8c9z",
        "%00",
        "%20",
        "..%2F..",
        "%F0%9F%A6%80",
        "%FF",
        "null",
        long.as_str(),
    ];
    for (method, template, body) in &templates {
        for id in bad_ids {
            let path = template.replace("{}", id);
            let body = (!body.is_null()).then(|| body.clone());
            call(&cluster, "n1", method.clone(), &path, Some(&admin), body)
                .await
                .error(
                    400,
                    "invalid_request",
                    Some("id"),
                    &format!("{method} {template} with {id:.40}"),
                );
        }
    }
    // A UUID in capitals is the same id.
    let shouting = format!("/api/v1/users/{}", ada.id.to_uppercase());
    let me = call(
        &cluster,
        "n2",
        Method::GET,
        &shouting,
        Some(&ada.auth),
        None,
    )
    .await
    .ok(200, "an upper-case id");
    assert_eq!(me["id"], ada.id.as_str());
    let upper = format!("/api/v1/products/{}", kettle_id.to_uppercase());
    call(&cluster, "n1", Method::GET, &upper, Some(&ada.auth), None)
        .await
        .ok(200, "an upper-case product id");
    let unknown = format!("/api/v1/users/{NOBODY}");
    call(&cluster, "n1", Method::GET, &unknown, Some(&admin), None)
        .await
        .error(404, "not_found", None, "a UUID of no user");

    // Request ids: echoed when sane, on successes and errors alike; replaced when not.
    let own = format!("/api/v1/users/{}", ada.id);
    let cases: [(Option<&str>, &str, u16); 4] = [
        (Some(ada.auth.as_str()), own.as_str(), 200),
        (None, own.as_str(), 401),
        (Some(ada.auth.as_str()), "/nope", 404),
        (Some(ada.auth.as_str()), "/api/v1/users/nope", 400),
    ];
    for (auth, path, status) in cases {
        let mut request = client()
            .get(cluster.node("n1").url(path))
            .header("x-request-id", "client-chosen-42");
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let answer = send(request).await;
        assert_eq!(answer.status, status, "{path}: {answer:?}");
        assert_eq!(
            answer.request_id.as_deref(),
            Some("client-chosen-42"),
            "{path}"
        );
        if status >= 400 {
            assert_eq!(answer.body["error"]["request_id"], "client-chosen-42");
        }
    }
    let huge = client()
        .post(cluster.node("n2").url("/api/v1/users"))
        .header("x-request-id", "big-one")
        .header("content-type", "application/json")
        .body(vec![b' '; 100_000]);
    let answer = send(huge).await;
    answer.error(413, "payload_too_large", None, "a huge body");
    assert_eq!(answer.request_id.as_deref(), Some("big-one"));
    for insane in ["has space", "quo\"te", &"x".repeat(200), "tab\there"] {
        let request = client()
            .get(cluster.node("n1").url("/nope"))
            .header("x-request-id", insane);
        let answer = send(request).await;
        answer.error(404, "not_found", None, insane);
        let id = answer.request_id.unwrap();
        assert!(!id.is_empty() && id != insane, "{insane:?} -> {id:?}");
    }
    // Fresh ids differ.
    let a = send(client().get(cluster.node("n1").url("/nope"))).await;
    let b = send(client().get(cluster.node("n1").url("/nope"))).await;
    assert_ne!(a.request_id, b.request_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_too_large_is_refused_in_the_shape_and_a_large_one_is_served() {
    let cluster = cluster(1).await;
    let url = |path: &str| cluster.node("n1").url(path);
    // A long query, a 20 KiB header, 101 header fields: each refused in the one shape (the
    // HTTP server alone would have answered with an empty body).
    let long = url(&format!("/api/v1/products?after={}", "a".repeat(9_000)));
    send(client().get(long))
        .await
        .error(414, "invalid_request", Some("URI"), "a 9 KB URI");
    let big = client()
        .get(url("/api/v1/products"))
        .header("x-big", "b".repeat(20_000));
    send(big)
        .await
        .error(431, "invalid_request", Some("header"), "a 20 KB header");
    let mut many = client().get(url("/api/v1/products"));
    for n in 0..101 {
        many = many.header(format!("x-field-{n}"), "v");
    }
    send(many)
        .await
        .error(431, "invalid_request", Some("header"), "101 fields");
    // Within the limits, a head of a good size is served as any other.
    let mut fine = client()
        .get(url("/api/v1/products"))
        .header("authorization", bearer(Role::User))
        .header("x-big", "b".repeat(8_000));
    for n in 0..60 {
        fine = fine.header(format!("x-field-{n}"), "v");
    }
    send(fine).await.ok(200, "a large head within the limits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_many_racing_creations_of_a_sku_wins() {
    let cluster = cluster(3).await;
    let admin = bearer(Role::Admin);
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..9 {
        let url = cluster
            .node(["n1", "n2", "n3"][i % 3])
            .url("/api/v1/products");
        let auth = admin.clone();
        racers.spawn(async move {
            let body =
                json!({"sku": "RACE-1", "name": format!("R{i}"), "price_cents": 100, "stock": 1});
            send(client().post(url).header("authorization", auth).json(&body)).await
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = racers.join_next().await {
        answers.push(answer.unwrap());
    }
    answers.sort_by_key(|a| a.status);
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses[0], 201, "{statuses:?}");
    for lost in &answers[1..] {
        lost.error(
            409,
            "conflict",
            None,
            &format!("exactly one wins: {statuses:?}"),
        );
    }
    let winner = &answers[0].body;
    let path = format!("/api/v1/products/{}", winner["id"].as_str().unwrap());
    for node in ["n1", "n2", "n3"] {
        let read = call(&cluster, node, Method::GET, &path, Some(&admin), None)
            .await
            .ok(200, "the winner");
        assert_eq!(&read, winner);
    }
    // And the sku stays taken.
    let body = json!({"sku": "RACE-1", "name": "Late", "price_cents": 100, "stock": 1});
    call(
        &cluster,
        "n3",
        Method::POST,
        "/api/v1/products",
        Some(&admin),
        Some(body),
    )
    .await
    .error(409, "conflict", None, "a late creation");
    // The product list (once it exists: `GET /api/v1/products`) holds it once.
    let list = call(
        &cluster,
        "n2",
        Method::GET,
        "/api/v1/products?limit=200",
        Some(&admin),
        None,
    )
    .await;
    if list.status == 200 {
        let same: Vec<&Value> = list.body["products"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["sku"] == "RACE-1")
            .collect();
        assert_eq!(same.len(), 1, "{:?}", list.body);
    } else {
        list.error(
            405,
            "method_not_allowed",
            None,
            "no product list on this branch yet",
        );
    }
}

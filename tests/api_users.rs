//! `/api/v1`: registration, login, users and wallets, on a real 3-node cluster, with real
//! tokens.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use serde_json::{Value, json};

use support::{TestCluster, config_text_with, send_json};

const SERVICES: &str = "[services.users]\nshards = 4\n\n[services.user-emails]\nshards = 4\n\n\
                        [services.wallets]\nshards = 4\n";

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
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = support::client().request(method, cluster.node(node).url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    send_json(request).await.unwrap()
}

async fn register(cluster: &TestCluster, node: &str, email: &str, name: &str) -> (u16, Value) {
    let body = json!({"email": email, "name": name, "password": "correct horse"});
    call(
        cluster,
        node,
        reqwest::Method::POST,
        "/api/v1/users",
        None,
        Some(body),
    )
    .await
}

async fn login(cluster: &TestCluster, node: &str, email: &str, password: &str) -> (u16, Value) {
    let body = json!({"email": email, "password": password});
    call(
        cluster,
        node,
        reqwest::Method::POST,
        "/api/v1/auth/login",
        None,
        Some(body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_register_log_in_and_reach_only_their_own_things() {
    let cluster = cluster().await;
    let (status, ada) = register(&cluster, "n1", "  Ada@Example.COM ", "Ada").await;
    assert_eq!(status, 201, "{ada}");
    assert_eq!(ada["email"], "ada@example.com");
    let ada_id = ada["id"].as_str().unwrap().to_string();
    assert!(ada["created_at"].as_str().unwrap().ends_with('Z'), "{ada}");
    // The same address, another spelling, through another node.
    let (status, body) = register(&cluster, "n2", "ada@example.com", "Other").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, "conflict".into()),
        "{body}"
    );

    let (status, token) = login(&cluster, "n3", "ADA@example.com", "correct horse").await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["token_type"], "Bearer");
    assert_eq!(token["expires_in"], 3600);
    let ada_token = token["access_token"].as_str().unwrap().to_string();
    let (status, wrong) = login(&cluster, "n3", "ada@example.com", "wrong horse").await;
    let (status2, unknown) = login(&cluster, "n1", "nobody@example.com", "correct horse").await;
    assert_eq!((status, status2), (401, 401));
    assert_eq!(
        wrong["error"]["message"], unknown["error"]["message"],
        "the same for both"
    );

    let get = reqwest::Method::GET;
    let me = format!("/api/v1/users/{ada_id}");
    let (status, body) = call(&cluster, "n2", get.clone(), &me, Some(&ada_token), None).await;
    assert_eq!(
        (status, body["name"].clone()),
        (200, "Ada".into()),
        "{body}"
    );
    let (status, _) = call(&cluster, "n2", get.clone(), &me, None, None).await;
    assert_eq!(status, 401);
    let (status, _) = call(&cluster, "n2", get.clone(), &me, Some("not.a.token"), None).await;
    assert_eq!(status, 401);

    // Bob may not see Ada.
    let (status, bob) = register(&cluster, "n3", "bob@example.com", "Bob").await;
    assert_eq!(status, 201, "{bob}");
    let (_, token) = login(&cluster, "n1", "bob@example.com", "correct horse").await;
    let bob_token = token["access_token"].as_str().unwrap().to_string();
    let (status, body) = call(&cluster, "n1", get.clone(), &me, Some(&bob_token), None).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, "forbidden".into()),
        "{body}"
    );
    let (status, _) = call(
        &cluster,
        "n1",
        get.clone(),
        &format!("{me}/wallet"),
        Some(&bob_token),
        None,
    )
    .await;
    assert_eq!(status, 403);
    // A user is no admin.
    let (status, _) = call(
        &cluster,
        "n1",
        get.clone(),
        "/admin/cluster",
        Some(&ada_token),
        None,
    )
    .await;
    assert_eq!(status, 403);

    // The wallet opens with the opening balance; deposits are for admins.
    let wallet = format!("{me}/wallet");
    let (status, body) = call(&cluster, "n3", get.clone(), &wallet, Some(&ada_token), None).await;
    assert_eq!(
        (status, body["balance_cents"].clone()),
        (200, 100_000.into()),
        "{body}"
    );
    let deposits = format!("{wallet}/deposits");
    let post = reqwest::Method::POST;
    let amount = |n: Value| Some(json!({"amount_cents": n}));
    let (status, _) = call(
        &cluster,
        "n1",
        post.clone(),
        &deposits,
        Some(&ada_token),
        amount(json!(5)),
    )
    .await;
    assert_eq!(status, 403);
    let admin = support::token(troupe_node::auth::Role::Admin);
    let (status, body) = call(
        &cluster,
        "n1",
        post.clone(),
        &deposits,
        Some(&admin),
        amount(json!(250)),
    )
    .await;
    assert_eq!(
        (status, body["balance_cents"].clone()),
        (200, 100_250.into()),
        "{body}"
    );
    for (bad, code) in [(json!(0), 422), (json!(-5), 422), (json!("ten"), 400)] {
        let (status, body) = call(
            &cluster,
            "n1",
            post.clone(),
            &deposits,
            Some(&admin),
            amount(bad.clone()),
        )
        .await;
        assert_eq!(status, code, "{bad}: {body}");
    }
    // Another user's unknown id, and a malformed one.
    let (status, _) = call(
        &cluster,
        "n2",
        get.clone(),
        "/api/v1/users/0190f5c2-8d4e-7b2a-9c3d-4e5f6a7b8c9d",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &cluster,
        "n2",
        get.clone(),
        "/api/v1/users/nope",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_registrations_are_4xx_naming_the_field() {
    let cluster = cluster().await;
    let post = |body: &str| {
        support::client()
            .post(cluster.node("n1").url("/api/v1/users"))
            .header("content-type", "application/json")
            .body(body.to_string())
    };
    let long_name = "n".repeat(101);
    let cases: Vec<(String, u16, &str)> = vec![
        ("{".into(), 400, "malformed"),
        (
            r#"{"email": "a@b.co", "name": "A"}"#.into(),
            400,
            "password",
        ),
        (
            r#"{"email": 5, "name": "A", "password": "12345678"}"#.into(),
            400,
            "email",
        ),
        (
            r#"{"email": "not-an-address", "name": "A", "password": "12345678"}"#.into(),
            400,
            "email",
        ),
        (
            format!(r#"{{"email": "a@b.co", "name": "{long_name}", "password": "12345678"}}"#),
            400,
            "name",
        ),
        (
            r#"{"email": "a@b.co", "name": "   ", "password": "12345678"}"#.into(),
            400,
            "name",
        ),
        (
            r#"{"email": "a@b.co", "name": "A", "password": "1234567"}"#.into(),
            400,
            "password",
        ),
        (
            r#"{"email": "a@b.co", "name": "A", "password": "12345678", "role": "admin"}"#.into(),
            400,
            "role",
        ),
    ];
    for (body, status, field) in cases {
        let (got, answer) = send_json(post(&body)).await.unwrap();
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_request", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
    }
    let huge = format!(
        r#"{{"email": "a@b.co", "name": "{}", "password": "12345678"}}"#,
        "x".repeat(200_000)
    );
    let (status, _) = send_json(post(&huge)).await.unwrap();
    assert_eq!(status, 413);
    // A hundred characters is a hundred characters, whatever their bytes.
    let emoji = "🦀".repeat(100);
    let (status, body) = register(&cluster, "n2", "crab@example.com", &emoji).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_many_racing_registrations_of_an_email_wins() {
    let cluster = cluster().await;
    let mut racers = tokio::task::JoinSet::new();
    for i in 0..9 {
        let url = cluster.node(["n1", "n2", "n3"][i % 3]).url("/api/v1/users");
        racers.spawn(async move {
            let body = json!({"email": "race@example.com", "name": format!("R{i}"), "password": "correct horse"});
            send_json(support::client().post(url).json(&body)).await.unwrap().0
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = racers.join_next().await {
        statuses.push(status.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(statuses[0], 201, "{statuses:?}");
    assert!(
        statuses[1..].iter().all(|s| *s == 409),
        "exactly one wins: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_wallet_opens_with_the_configured_balance() {
    let mut cluster = TestCluster::new(2);
    let services = format!("{SERVICES}\n[payments]\nopening_balance_cents = 2500\n");
    std::fs::write(&cluster.config, config_text_with(&cluster.nodes, &services)).unwrap();
    cluster.start_formed().await;
    let (status, user) = register(&cluster, "n1", "eve@example.com", "Eve").await;
    assert_eq!(status, 201, "{user}");
    let (_, token) = login(&cluster, "n2", "eve@example.com", "correct horse").await;
    let token = token["access_token"].as_str().unwrap().to_string();
    let wallet = format!("/api/v1/users/{}/wallet", user["id"].as_str().unwrap());
    let (status, body) = call(
        &cluster,
        "n2",
        reqwest::Method::GET,
        &wallet,
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (status, body["balance_cents"].clone()),
        (200, 2500.into()),
        "{body}"
    );
}

/// The most memory a node ever held (VmHWM), in bytes.
fn peak_rss_bytes(pid: impl std::fmt::Display) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// n1's count of password work done and refused as busy.
async fn password_work(cluster: &TestCluster) -> (f64, f64) {
    let text = cluster.metrics("n1").await;
    let count = |outcome: &str| {
        let series = format!("troupe_password_work_total{{outcome=\"{outcome}\"}}");
        support::metric(&text, &series).unwrap_or(0.0)
    };
    (count("done"), count("busy"))
}

/// A password check takes 19 MiB for its time (Argon2id). A stranger firing logins at once
/// must not make a node hold that once per request: a few are checked at a time, the rest wait
/// their turn or are told to retry (503, nothing done).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_logins_is_checked_a_few_at_a_time() {
    let mut cluster = cluster().await;
    let (status, user) = register(&cluster, "n1", "flood@example.com", "Flo").await;
    assert_eq!(status, 201, "{user}");
    let pid = cluster.proc("n1").pid();
    let before = peak_rss_bytes(pid);
    let work_before = password_work(&cluster).await;
    let mut flood = tokio::task::JoinSet::new();
    for n in 0..96 {
        let (url, email) = (
            cluster.node("n1").url("/api/v1/auth/login"),
            // Half for the user, half for addresses nobody has: both cost a check.
            if n % 2 == 0 {
                "flood@example.com".to_string()
            } else {
                format!("nobody{n}@example.com")
            },
        );
        flood.spawn(async move {
            let body = json!({"email": email, "password": "not the password"});
            send_json(support::client().post(url).json(&body)).await
        });
    }
    let (mut refused, mut busy) = (0.0, 0.0);
    while let Some(answer) = flood.join_next().await {
        let (status, body) = answer.unwrap().expect("an answer to every login");
        match (status, body["error"]["code"].as_str()) {
            (401, Some("unauthenticated")) => refused += 1.0,
            (503, Some("unavailable")) => busy += 1.0,
            other => panic!("a login answered {other:?}: {body}"),
        }
    }
    assert!(refused > 0.0, "some logins were checked and refused");
    // Every refusal cost a check, for an address nobody has as for a wrong password: the
    // answer's time does not tell which addresses are registered.
    let (done, turned_away) = password_work(&cluster).await;
    assert_eq!(
        (done - work_before.0, turned_away - work_before.1),
        (refused, busy)
    );
    let grown = peak_rss_bytes(pid).saturating_sub(before);
    assert!(
        grown < 200 << 20,
        "the flood made the node hold {} MiB more",
        grown >> 20
    );
}

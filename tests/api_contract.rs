//! The contract of `API.md`, black-box, for the routes that exist: registration, login, users,
//! wallets, deposits, products, restock and the `/admin` guard. Every error is checked in its
//! whole shape (status, `error.code`, a message naming the field for a 400, and a `request_id`
//! equal to the response's `x-request-id`), never only by its status.
//!
//! The groups, one cluster each: every route's successes, errors and authorization (here);
//! token attacks ([`tokens`]); bad input on every body route ([`input`]); Unicode in names,
//! emails and skus ([`unicode`]); routes, methods, path ids and request ids, and the race for
//! a sku ([`paths`]).
//!
//! Where `API.md` is silent, these tests fix what a demanding client expects:
//! - names (users' and products') are trimmed of Unicode whitespace, counted in Unicode scalar
//!   values, refused with a 400 naming `name` when they hold a control character (NUL, ESC,
//!   DEL, newline...) or nothing visible (only zero-width or direction marks);
//! - an email is trimmed and lower-cased; one with a control, whitespace or invisible
//!   (zero-width, direction) character inside is a 400 naming `email` (it would otherwise be
//!   a second account that looks like the first);
//! - a path id that is not a UUID is a 400 naming `id` on every route (a UUID that names
//!   nothing is the 404); an id is a UUID in any spelling `uuid` accepts (upper case too);
//! - a body that is not `application/json` is a 415 `unsupported_media_type`; a wrong method
//!   a 405 `method_not_allowed`; both in the one shape;
//! - an admin-only route answers 403 to a user before it looks at the body;
//! - the `Bearer` scheme is case-insensitive (RFC 7235).

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

#[path = "api_contract/input.rs"]
mod input;
#[path = "api_contract/paths.rs"]
mod paths;
#[path = "api_contract/tokens.rs"]
mod tokens;
#[path = "api_contract/unicode.rs"]
mod unicode;

use reqwest::Method;
use serde_json::{Value, json};
use troupe_node::auth::Role;

use support::{TestCluster, config_text_with, token};

const SERVICES: &str = "[services.users]\nshards = 4\n\n[services.user-emails]\nshards = 4\n\n\
                        [services.wallets]\nshards = 4\n\n[services.products]\nshards = 4\n\n\
                        [services.product-skus]\nshards = 4\n";

/// A UUID no resource has.
const NOBODY: &str = "0190f5c2-8d4e-7b2a-9c3d-4e5f6a7b8c9d";

/// A formed cluster of `n` nodes with the business services.
async fn cluster(n: usize) -> TestCluster {
    let mut cluster = TestCluster::new(n);
    std::fs::write(&cluster.config, config_text_with(&cluster.nodes, SERVICES)).unwrap();
    cluster.start_formed().await;
    cluster
}

/// What a request got back.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    request_id: Option<String>,
}

impl Answer {
    /// Asserts a success with `status`; answers the body.
    fn ok(self, status: u16, what: &str) -> Value {
        assert_eq!(self.status, status, "{what}: {self:?}");
        assert!(self.request_id.is_some(), "{what}: no x-request-id");
        self.body
    }

    /// Asserts the error shape: `status`, `code`, a message (naming `field` if given) and the
    /// request id of the response's header.
    fn error(&self, status: u16, code: &str, field: Option<&str>, what: &str) {
        assert_eq!(self.status, status, "{what}: {self:?}");
        let error = &self.body["error"];
        assert_eq!(error["code"], code, "{what}: {self:?}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{what}: no message: {self:?}");
        if let Some(field) = field {
            assert!(
                message.contains(field),
                "{what}: names no {field}: {self:?}"
            );
        }
        assert!(self.request_id.is_some(), "{what}: no x-request-id");
        assert_eq!(
            error["request_id"].as_str(),
            self.request_id.as_deref(),
            "{what}: the body's request id is the header's"
        );
        assert_eq!(
            self.body.as_object().map(|o| o.len()),
            Some(1),
            "{what}: only `error`: {self:?}"
        );
    }
}

/// Sends `request`: the status, the JSON body (`Null` if none) and the `x-request-id`.
async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("an answer, in time");
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = response.bytes().await.expect("a body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        body,
        request_id,
    }
}

/// Sends `method path` to `node` with `auth` (an `Authorization` value) and a JSON `body`.
async fn call(
    cluster: &TestCluster,
    node: &str,
    method: Method,
    path: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut request = support::client().request(method, cluster.node(node).url(path));
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    send(request).await
}

/// `Bearer <a token of role>` (subject `tester`).
fn bearer(role: Role) -> String {
    format!("Bearer {}", token(role))
}

/// A registered user: id and `Bearer <their token>`.
#[derive(Debug, Clone)]
struct User {
    id: String,
    auth: String,
}

/// Registers `email` through `node` and logs in through another node.
async fn user(cluster: &TestCluster, email: &str) -> User {
    let body = json!({"email": email, "name": "Someone", "password": "correct horse"});
    let created = call(
        cluster,
        "n1",
        Method::POST,
        "/api/v1/users",
        None,
        Some(body),
    )
    .await
    .ok(201, "register");
    let login = json!({"email": email, "password": "correct horse"});
    let token = call(
        cluster,
        "n2",
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(login),
    )
    .await
    .ok(200, "login");
    User {
        id: created["id"].as_str().unwrap().to_string(),
        auth: format!("Bearer {}", token["access_token"].as_str().unwrap()),
    }
}

/// Creates a product (as an admin) through `node`; answers it.
async fn product(cluster: &TestCluster, node: &str, sku: &str) -> Value {
    let body = json!({"sku": sku, "name": "Kettle", "price_cents": 2500, "stock": 3});
    call(
        cluster,
        node,
        Method::POST,
        "/api/v1/products",
        Some(&bearer(Role::Admin)),
        Some(body),
    )
    .await
    .ok(201, "create a product")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_its_successes_errors_and_authorization_in_the_shape() {
    let cluster = cluster(2).await;
    let (post, get) = (Method::POST, Method::GET);
    let admin = bearer(Role::Admin);

    // Registration and login.
    let ada = user(&cluster, "ada@example.com").await;
    let again = json!({"email": "ADA@example.com", "name": "Ada", "password": "12345678"});
    call(
        &cluster,
        "n2",
        post.clone(),
        "/api/v1/users",
        None,
        Some(again),
    )
    .await
    .error(409, "conflict", None, "the email again");
    let wrong = json!({"email": "ada@example.com", "password": "wrong horse"});
    let nobody = json!({"email": "nobody@example.com", "password": "correct horse"});
    let login = "/api/v1/auth/login";
    let wrong = call(&cluster, "n1", post.clone(), login, None, Some(wrong)).await;
    let nobody = call(&cluster, "n2", post.clone(), login, None, Some(nobody)).await;
    wrong.error(401, "unauthenticated", None, "a wrong password");
    nobody.error(401, "unauthenticated", None, "an unknown email");
    assert_eq!(
        wrong.body["error"]["message"],
        nobody.body["error"]["message"]
    );
    let bob = user(&cluster, "bob@example.com").await;

    // Users and wallets: one's own, not another's; an admin's anyone's.
    let me = format!("/api/v1/users/{}", ada.id);
    let wallet = format!("{me}/wallet");
    let deposits = format!("{wallet}/deposits");
    for path in [&me, &wallet] {
        let mine = call(&cluster, "n2", get.clone(), path, Some(&ada.auth), None).await;
        mine.ok(200, path);
        call(&cluster, "n1", get.clone(), path, Some(&admin), None)
            .await
            .ok(200, path);
        call(&cluster, "n1", get.clone(), path, Some(&bob.auth), None)
            .await
            .error(403, "forbidden", None, &format!("bob on {path}"));
        call(&cluster, "n1", get.clone(), path, None, None)
            .await
            .error(401, "unauthenticated", None, &format!("no token on {path}"));
        let unknown = path.replace(&ada.id, NOBODY);
        call(&cluster, "n2", get.clone(), &unknown, Some(&admin), None)
            .await
            .error(404, "not_found", None, &unknown);
    }
    let amount = |n: i64| Some(json!({"amount_cents": n}));
    let deposited = call(
        &cluster,
        "n2",
        post.clone(),
        &deposits,
        Some(&admin),
        amount(250),
    )
    .await
    .ok(200, "a deposit");
    assert_eq!(
        deposited,
        json!({"user_id": ada.id, "balance_cents": 100_250})
    );
    for (auth, status, code) in [
        (Some(ada.auth.as_str()), 403, "forbidden"),
        (Some(bob.auth.as_str()), 403, "forbidden"),
        (None, 401, "unauthenticated"),
    ] {
        call(&cluster, "n1", post.clone(), &deposits, auth, amount(5))
            .await
            .error(status, code, None, "a deposit by a non-admin");
    }
    for n in [0, -1] {
        call(
            &cluster,
            "n1",
            post.clone(),
            &deposits,
            Some(&admin),
            amount(n),
        )
        .await
        .error(
            422,
            "unprocessable",
            Some("amount_cents"),
            &format!("amount {n}"),
        );
    }
    let unknown = deposits.replace(&ada.id, NOBODY);
    call(
        &cluster,
        "n1",
        post.clone(),
        &unknown,
        Some(&admin),
        amount(5),
    )
    .await
    .error(404, "not_found", None, "a deposit to nobody");

    // Products: created and restocked by admins, read by anyone with a token.
    let kettle = product(&cluster, "n1", "KT-1").await;
    let id = kettle["id"].as_str().unwrap();
    assert_eq!(
        kettle,
        json!({"id": id, "sku": "KT-1", "name": "Kettle", "price_cents": 2500, "stock": 3})
    );
    let path = format!("/api/v1/products/{id}");
    let read = call(&cluster, "n2", get.clone(), &path, Some(&bob.auth), None)
        .await
        .ok(200, "a user reads a product");
    assert_eq!(read, kettle);
    call(&cluster, "n2", get.clone(), &path, None, None)
        .await
        .error(401, "unauthenticated", None, "a product without a token");
    let unknown = format!("/api/v1/products/{NOBODY}");
    call(&cluster, "n1", get.clone(), &unknown, Some(&ada.auth), None)
        .await
        .error(404, "not_found", None, "an unknown product");
    let new = json!({"sku": "KT-1", "name": "Other", "price_cents": 1, "stock": 1});
    let products = "/api/v1/products";
    call(
        &cluster,
        "n2",
        post.clone(),
        products,
        Some(&admin),
        Some(new.clone()),
    )
    .await
    .error(409, "conflict", None, "the sku again");
    let kt2 = json!({"sku": "KT-2", "name": "K", "price_cents": 1, "stock": 1});
    call(
        &cluster,
        "n2",
        post.clone(),
        products,
        Some(&ada.auth),
        Some(kt2.clone()),
    )
    .await
    .error(403, "forbidden", None, "a user creates a product");
    call(&cluster, "n2", post.clone(), products, None, Some(kt2))
        .await
        .error(401, "unauthenticated", None, "no token creates a product");
    let restock = format!("{path}/restock");
    let quantity = |n: i64| Some(json!({"quantity": n}));
    let restocked = call(
        &cluster,
        "n2",
        post.clone(),
        &restock,
        Some(&admin),
        quantity(2),
    )
    .await
    .ok(200, "restock");
    assert_eq!(restocked["stock"], 5, "{restocked}");
    call(
        &cluster,
        "n1",
        post.clone(),
        &restock,
        Some(&ada.auth),
        quantity(2),
    )
    .await
    .error(403, "forbidden", None, "a user restocks");
    call(&cluster, "n1", post.clone(), &restock, None, quantity(2))
        .await
        .error(401, "unauthenticated", None, "no token restocks");
    for n in [0, -2] {
        call(
            &cluster,
            "n1",
            post.clone(),
            &restock,
            Some(&admin),
            quantity(n),
        )
        .await
        .error(
            422,
            "unprocessable",
            Some("quantity"),
            &format!("restock {n}"),
        );
    }
    let unknown = format!("/api/v1/products/{NOBODY}/restock");
    call(
        &cluster,
        "n1",
        post.clone(),
        &unknown,
        Some(&admin),
        quantity(1),
    )
    .await
    .error(404, "not_found", None, "restock an unknown product");
    for (price, stock, field) in [
        (0, 1, "price_cents"),
        (-1, 1, "price_cents"),
        (1, -1, "stock"),
    ] {
        let body = json!({"sku": "KT-3", "name": "K", "price_cents": price, "stock": stock});
        call(
            &cluster,
            "n2",
            post.clone(),
            products,
            Some(&admin),
            Some(body),
        )
        .await
        .error(422, "unprocessable", Some(field), "an impossible product");
    }

    // An admin-only route answers a user 403 whatever the body: the body is not looked at.
    for (path, body) in [
        (products, "{"),
        (products, r#"{"sku": 5}"#),
        (restock.as_str(), "{}"),
        (deposits.as_str(), r#"{"amount_cents": "x"}"#),
    ] {
        let request = support::client()
            .post(cluster.node("n1").url(path))
            .header("authorization", &bob.auth)
            .header("content-type", "application/json")
            .body(body);
        send(request).await.error(
            403,
            "forbidden",
            None,
            &format!("a user's {body} to {path}"),
        );
    }

    // The admin guard.
    call(
        &cluster,
        "n1",
        get.clone(),
        "/admin/cluster",
        Some(&admin),
        None,
    )
    .await
    .ok(200, "an admin on /admin");
    call(
        &cluster,
        "n1",
        get.clone(),
        "/admin/cluster",
        Some(&ada.auth),
        None,
    )
    .await
    .error(403, "forbidden", None, "a user on /admin");
    call(&cluster, "n2", get.clone(), "/admin/cluster", None, None)
        .await
        .error(401, "unauthenticated", None, "no token on /admin");
    let kv = Some(json!({"x": 1}));
    call(
        &cluster,
        "n2",
        Method::PUT,
        "/admin/kv/k",
        Some(&ada.auth),
        kv,
    )
    .await
    .error(403, "forbidden", None, "a user writes /admin/kv");
}

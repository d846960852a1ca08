//! Token attacks, end to end: each forged, altered, stale or misaddressed bearer token, and
//! each wrong `Authorization` scheme, is a 401 in the shape on every kind of protected route
//! (a user's own resource, a product, an admin route), through either node.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use troupe_node::auth::{AUDIENCE, ISSUER};

use super::support::TOKEN_KEY;
use super::{cluster, product, send, user};

/// Base64url without padding (the JWT encoding of each part).
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
        }
    }
    out
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

/// The claims a node issues for `sub` with `role`, valid for an hour from now.
fn claims(sub: &str, role: &str) -> Value {
    let now = now();
    json!({"sub": sub, "role": role, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 3600})
}

/// `claims` with `changes` merged in (a `null` removes the claim).
fn with(mut claims: Value, changes: &Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

/// `claims` signed with `alg` under `key`.
fn signed(claims: &Value, alg: Algorithm, key: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

/// `claims` signed as the nodes sign.
fn genuine(claims: &Value) -> String {
    signed(claims, Algorithm::HS256, TOKEN_KEY)
}

/// `token` with its payload replaced by `claims`, its header and signature kept.
fn tampered(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let payload = b64url(claims.to_string().as_bytes());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// An unsigned token with header `alg` (`none` in any spelling) and `claims`.
fn unsigned(alg: &str, claims: &Value, signature: &str) -> String {
    let header = b64url(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes());
    let payload = b64url(claims.to_string().as_bytes());
    format!("{header}.{payload}.{signature}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_altered_stale_and_misaddressed_tokens_are_401_in_the_shape() {
    let cluster = cluster(2).await;
    let ada = user(&cluster, "ada@example.com").await;
    let bob = user(&cluster, "bob@example.com").await;
    let kettle = product(&cluster, "n1", "KT-1").await;
    let own = format!("/api/v1/users/{}", ada.id);
    let routes = [
        own.clone(),
        format!("/api/v1/products/{}", kettle["id"].as_str().unwrap()),
        "/admin/cluster".to_string(),
        format!("/api/v1/users/{}/wallet", bob.id),
    ];
    let admin = claims(&ada.id, "admin");
    let user_token = genuine(&claims(&ada.id, "user"));
    let admin_token = genuine(&admin);
    let now = now();

    // What holds: the genuine token, in any spelling of the scheme (RFC 7235: case-insensitive).
    for auth in [
        format!("Bearer {admin_token}"),
        format!("bearer {admin_token}"),
        format!("BEARER {admin_token}"),
    ] {
        for (i, path) in routes.iter().enumerate() {
            let node = ["n1", "n2"][i % 2];
            let request = super::support::client()
                .get(cluster.node(node).url(path))
                .header("authorization", &auth);
            send(request).await.ok(200, &format!("{auth} on {path}"));
        }
    }

    let mut attacks: Vec<(&str, HeaderValue)> = Vec::new();
    let mut bearer = |what: &'static str, token: String| {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        attacks.push((what, value));
    };
    for alg in ["none", "None", "NONE", "nOnE"] {
        bearer("alg none, no signature", unsigned(alg, &admin, ""));
        let signature = admin_token.rsplit('.').next().unwrap();
        bearer("alg none, a signature", unsigned(alg, &admin, signature));
    }
    bearer("HS384", signed(&admin, Algorithm::HS384, TOKEN_KEY));
    bearer("HS512", signed(&admin, Algorithm::HS512, TOKEN_KEY));
    bearer(
        "wrong key",
        signed(
            &admin,
            Algorithm::HS256,
            "another-key-0123456789abcdef-0123",
        ),
    );
    bearer(
        "a key one byte short",
        signed(&admin, Algorithm::HS256, &TOKEN_KEY[1..]),
    );
    bearer(
        "role raised",
        tampered(&user_token, &claims(&ada.id, "admin")),
    );
    bearer(
        "sub changed",
        tampered(&user_token, &claims(&bob.id, "user")),
    );
    bearer(
        "exp extended",
        tampered(
            &user_token,
            &with(claims(&ada.id, "user"), &json!({"exp": now + 99_999})),
        ),
    );
    bearer("signature dropped", {
        let mut parts: Vec<&str> = user_token.split('.').collect();
        parts[2] = "";
        parts.join(".")
    });
    bearer(
        "expired",
        genuine(&with(
            admin.clone(),
            &json!({"iat": now - 7200, "exp": now - 120}),
        )),
    );
    bearer(
        "issued in the future",
        genuine(&with(
            admin.clone(),
            &json!({"iat": now + 3600, "exp": now + 7200}),
        )),
    );
    bearer(
        "wrong audience",
        genuine(&with(admin.clone(), &json!({"aud": "someone-else"}))),
    );
    bearer(
        "wrong issuer",
        genuine(&with(admin.clone(), &json!({"iss": "mallory"}))),
    );
    for claim in ["exp", "iat", "iss", "aud", "sub", "role"] {
        bearer(
            "a claim missing",
            genuine(&with(admin.clone(), &json!({claim: null}))),
        );
    }
    bearer(
        "an unknown role",
        genuine(&with(admin.clone(), &json!({"role": "root"}))),
    );
    bearer(
        "exp as text",
        genuine(&with(admin.clone(), &json!({"exp": "tomorrow"}))),
    );
    for garbage in [
        "garbage",
        "a.b.c",
        "..",
        "...",
        "e30.e30.",
        &"A".repeat(8000),
    ] {
        bearer("garbage", garbage.to_string());
    }
    bearer("two tokens", format!("{admin_token} {admin_token}"));
    for (what, value) in [
        ("Basic", "Basic dXNlcjpwYXNzd29yZA==".to_string()),
        ("Bearer with nothing", "Bearer".to_string()),
        ("Bearer and spaces", "Bearer    ".to_string()),
        ("no scheme", admin_token.clone()),
        ("Token scheme", format!("Token {admin_token}")),
        ("Bearer glued", format!("Bearer{admin_token}")),
        ("empty", String::new()),
    ] {
        attacks.push((what, HeaderValue::from_str(&value).unwrap()));
    }
    attacks.push((
        "bytes that are not text",
        HeaderValue::from_bytes(b"Bearer \xff\xfe\xfd").unwrap(),
    ));

    for (n, (what, value)) in attacks.iter().enumerate() {
        for (i, path) in routes.iter().enumerate() {
            let node = ["n1", "n2"][(n + i) % 2];
            let request = super::support::client()
                .request(Method::GET, cluster.node(node).url(path))
                .header("authorization", value.clone());
            send(request)
                .await
                .error(401, "unauthenticated", None, &format!("{what} on {path}"));
        }
    }
}

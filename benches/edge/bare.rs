//! The baseline of the product read: a bare axum server with one handler that checks the
//! bearer token the way the nodes do (HS256 under the same key, the same issuer, audience,
//! leeway and required claims as `node/src/auth/token.rs`) and answers with the body the
//! product route gave. It runs as a child process (this binary with `--bare`), so that it
//! has a runtime of its own, as a node does; it prints its port on its first line of output
//! and exits when its stdin closes.

use std::io::{BufRead, Write};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// The claims a node's token carries (only their presence and validity matter here).
#[derive(Deserialize)]
#[allow(dead_code)] // read only by the decoder
struct Claims {
    sub: String,
    role: String,
    iss: String,
    aud: String,
    iat: u64,
    exp: u64,
}

struct Bare {
    key: DecodingKey,
    validation: Validation,
    body: bytes::Bytes,
}

async fn product(
    State(bare): State<Arc<Bare>>,
    headers: HeaderMap,
    Path(_id): Path<String>,
) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let valid = token.is_some_and(|t| {
        jsonwebtoken::decode::<Claims>(t, &bare.key, &bare.validation).is_ok_and(|data| {
            data.claims.iat <= super::unix_secs() + troupe_node::auth::token::LEEWAY.as_secs()
        })
    });
    if !valid {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        bare.body.clone(),
    )
        .into_response()
}

/// `--bare <body>`: serves the product route until stdin closes.
pub(crate) fn main(args: &[String]) {
    let body = args.first().expect("--bare <body>").clone();
    let mut validation = Validation::new(Algorithm::HS256);
    validation.algorithms = vec![Algorithm::HS256];
    validation.leeway = troupe_node::auth::token::LEEWAY.as_secs();
    validation.validate_exp = true;
    validation.validate_nbf = false;
    validation.set_issuer(&[troupe_node::auth::ISSUER]);
    validation.set_audience(&[troupe_node::auth::AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    let state = Arc::new(Bare {
        key: DecodingKey::from_secret(super::TOKEN_KEY.as_bytes()),
        validation,
        body: bytes::Bytes::from(body),
    });
    // Gone with the parent.
    std::thread::spawn(|| {
        for _ in std::io::stdin().lock().lines() {}
        std::process::exit(0);
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut out = std::io::stdout().lock();
        writeln!(out, "{port}").unwrap();
        out.flush().unwrap();
        drop(out);
        let app = axum::Router::new()
            .route("/api/v1/products/{id}", axum::routing::get(product))
            .with_state(state);
        axum::serve(listener, app).await.unwrap();
    });
}

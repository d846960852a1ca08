//! Bad input on every body route: malformed and truncated JSON, wrong types, missing, unknown
//! and repeated fields, integers beyond i64/u64, floats for integers, out-of-range counts,
//! wrong or missing Content-Type, bodies over the limit (announced or chunked) and bodies that
//! never finish. Each is a 4xx in the shape with the fitting code, never a 5xx, never a hang.

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Duration, timeout};
use troupe_node::auth::Role;

use super::support::TestCluster;
use super::{Answer, bearer, cluster, product, send, user};

/// The kind of a field, for the wrong values to try.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Text,
    /// A count: is 0 allowed?
    Count {
        zero_ok: bool,
    },
}

/// A body route: its path, who calls it, a valid body and its fields.
struct Route {
    path: String,
    auth: Option<String>,
    valid: Value,
    fields: Vec<(&'static str, Kind)>,
}

/// Sends `body` as raw bytes with `content_type` (none if `None`).
async fn raw_post(
    cluster: &TestCluster,
    node: &str,
    route: &Route,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Answer {
    let mut request =
        super::support::client().request(Method::POST, cluster.node(node).url(&route.path));
    if let Some(auth) = &route.auth {
        request = request.header("authorization", auth);
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    send(request.body(body)).await
}

/// One HTTP/1.1 exchange over a raw socket (`Connection: close`), for what a client library
/// will not send (chunked bodies of our choosing, bodies that stop). Answers the status, the
/// JSON body and the request id; panics if no answer comes within `deadline`.
async fn raw_http(
    cluster: &TestCluster,
    node: &str,
    head: &str,
    body: &[u8],
    deadline: Duration,
) -> Answer {
    let addr = format!("127.0.0.1:{}", cluster.node(node).http_port);
    let exchange = async {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket.write_all(head.as_bytes()).await.unwrap();
        // The server may answer (and close) before it has read everything: that is fine.
        let _ = socket.write_all(body).await;
        let mut answer = Vec::new();
        let _ = socket.read_to_end(&mut answer).await;
        answer
    };
    let answer = timeout(deadline, exchange)
        .await
        .unwrap_or_else(|_| panic!("no answer within {deadline:?} to {head}"));
    let text = String::from_utf8_lossy(&answer).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let request_id = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("x-request-id: ")
            .map(str::to_string)
    });
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        // One chunk is all an error body takes.
        body.split("\r\n").nth(1).unwrap_or_default()
    } else {
        body
    };
    Answer {
        status,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
        request_id,
    }
}

/// The wrong values of a field of `kind`, each with the status it gets.
fn wrong_values(kind: Kind) -> Vec<(Value, &'static str)> {
    let any = [
        (json!(null), "null"),
        (json!(true), "a boolean"),
        (json!([]), "an array"),
        (json!({}), "an object"),
    ];
    let mut values: Vec<_> = any.into_iter().collect();
    match kind {
        Kind::Text => values.extend([(json!(5), "a number"), (json!(-1.5), "a float")]),
        Kind::Count { .. } => {
            values.extend([
                (json!("1"), "a string"),
                (json!(1.5), "a float"),
                (json!(1.0), "a float that is whole"),
                (json!(1e3), "an exponent"),
            ]);
        }
    }
    values
}

/// Asserts that an error message speaks JSON, not Rust: no Rust type names.
fn in_api_words(answer: &Answer, what: &str) {
    let message = answer.body["error"]["message"].as_str().unwrap_or_default();
    for rust in [
        "i64",
        "u64",
        "i32",
        "u32",
        "f64",
        "struct ",
        "Request",
        "NewProduct",
        "Registration",
    ] {
        assert!(!message.contains(rust), "{what}: {rust} in {message:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_every_body_route_is_a_4xx_in_the_shape() {
    let cluster = cluster(2).await;
    let ada = user(&cluster, "ada@example.com").await;
    let kettle = product(&cluster, "n2", "KT-1").await;
    let admin = Some(bearer(Role::Admin));
    let count = |zero_ok| Kind::Count { zero_ok };
    let routes = [
        Route {
            path: "/api/v1/users".into(),
            auth: None,
            valid: json!({"email": "new@example.com", "name": "New", "password": "correct horse"}),
            fields: vec![
                ("email", Kind::Text),
                ("name", Kind::Text),
                ("password", Kind::Text),
            ],
        },
        Route {
            path: "/api/v1/auth/login".into(),
            auth: None,
            valid: json!({"email": "ada@example.com", "password": "correct horse"}),
            fields: vec![("email", Kind::Text), ("password", Kind::Text)],
        },
        Route {
            path: format!("/api/v1/users/{}/wallet/deposits", ada.id),
            auth: admin.clone(),
            valid: json!({"amount_cents": 5}),
            fields: vec![("amount_cents", count(false))],
        },
        Route {
            path: "/api/v1/products".into(),
            auth: admin.clone(),
            valid: json!({"sku": "NEW-1", "name": "New", "price_cents": 5, "stock": 1}),
            fields: vec![
                ("sku", Kind::Text),
                ("name", Kind::Text),
                ("price_cents", count(false)),
                ("stock", count(true)),
            ],
        },
        Route {
            path: format!(
                "/api/v1/products/{}/restock",
                kettle["id"].as_str().unwrap()
            ),
            auth: admin.clone(),
            valid: json!({"quantity": 1}),
            fields: vec![("quantity", count(false))],
        },
    ];
    let json_type = Some("application/json");
    for (r, route) in routes.iter().enumerate() {
        let node = ["n1", "n2"][r % 2];
        let path = &route.path;
        // Not JSON, or not the JSON of an object.
        let valid = route.valid.to_string();
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        let mut malformed: Vec<Vec<u8>> = [
            "{", "", " ", "[]", "null", "5", "\"text\"", "{}", "{\"a\"", "{,}", "{'a': 1}",
            "1e400", &deep,
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        malformed.push(format!("{valid}x").into_bytes());
        malformed.push(format!("{valid}{valid}").into_bytes());
        malformed.push(valid.as_bytes()[..valid.len() - 1].to_vec());
        // The fields' values in order, as an array: serde would take it for the struct.
        let values: Vec<Value> = route
            .fields
            .iter()
            .map(|(f, _)| route.valid[*f].clone())
            .collect();
        malformed.push(Value::from(values).to_string().into_bytes());
        malformed.push(b"{\"email\": \"\xff\xfe\"}".to_vec());
        let mut not_objects = vec![
            deep.clone().into_bytes(),
            malformed[malformed.len() - 2].clone(),
        ];
        not_objects
            .extend(["[]", "null", "5", "\"text\"", "true", "[{}]"].map(|s| s.as_bytes().to_vec()));
        for body in not_objects {
            // Said in the API's words, not the server's (no Rust type names).
            let what = format!(
                "{} to {path}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(60)
                    .collect::<String>()
            );
            let answer = raw_post(&cluster, node, route, json_type, body).await;
            answer.error(400, "invalid_request", Some("body"), &what);
            in_api_words(&answer, &what);
        }
        for body in malformed {
            let what = format!(
                "{} to {path}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(60)
                    .collect::<String>()
            );
            raw_post(&cluster, node, route, json_type, body)
                .await
                .error(400, "invalid_request", None, &what);
        }
        // Each field missing, of a wrong type, out of range; unknown and repeated fields.
        for (field, kind) in &route.fields {
            let mut body = route.valid.clone();
            body.as_object_mut().unwrap().remove(*field);
            raw_post(
                &cluster,
                node,
                route,
                json_type,
                body.to_string().into_bytes(),
            )
            .await
            .error(
                400,
                "invalid_request",
                Some(field),
                &format!("{field} missing on {path}"),
            );
            let values = wrong_values(*kind);
            if let Kind::Count { zero_ok } = kind {
                let mut body = route.valid.clone();
                body[*field] = json!(-1);
                raw_post(
                    &cluster,
                    node,
                    route,
                    json_type,
                    body.to_string().into_bytes(),
                )
                .await
                .error(
                    422,
                    "unprocessable",
                    Some(field),
                    &format!("{field} -1 on {path}"),
                );
                if !zero_ok {
                    body[*field] = json!(0);
                    raw_post(
                        &cluster,
                        node,
                        route,
                        json_type,
                        body.to_string().into_bytes(),
                    )
                    .await
                    .error(
                        422,
                        "unprocessable",
                        Some(field),
                        &format!("{field} 0 on {path}"),
                    );
                }
                for too_big in [i64::MAX, 1 << 53] {
                    body[*field] = json!(too_big);
                    raw_post(
                        &cluster,
                        node,
                        route,
                        json_type,
                        body.to_string().into_bytes(),
                    )
                    .await
                    .error(
                        400,
                        "invalid_request",
                        Some(field),
                        &format!("{field} {too_big} on {path}"),
                    );
                }
            }
            for (value, what) in values {
                let mut body = route.valid.clone();
                body[*field] = value;
                // A number serde_json cannot hold as a Value goes in as text.
                let text = body.to_string();
                let what = format!("{field} {what} on {path}: {text}");
                let answer = raw_post(&cluster, node, route, json_type, text.into_bytes()).await;
                answer.error(400, "invalid_request", Some(field), &what);
                in_api_words(&answer, &what);
            }
            let valid = route.valid.to_string();
            let repeated =
                valid.replacen('{', &format!("{{\"{field}\": {},", route.valid[*field]), 1);
            raw_post(&cluster, node, route, json_type, repeated.into_bytes())
                .await
                .error(
                    400,
                    "invalid_request",
                    Some(field),
                    &format!("{field} twice on {path}"),
                );
        }
        for literal in [
            "9223372036854775808",
            "-9223372036854775809",
            "18446744073709551616",
            "1e19",
            "123456789012345678901234567890",
            "-0.0",
        ] {
            for (field, kind) in &route.fields {
                if matches!(kind, Kind::Count { .. }) {
                    let body = route.valid.to_string().replacen(
                        &format!("\"{field}\":{}", route.valid[*field]),
                        &format!("\"{field}\":{literal}"),
                        1,
                    );
                    let what = format!("{body} on {path}");
                    let answer =
                        raw_post(&cluster, node, route, json_type, body.into_bytes()).await;
                    answer.error(400, "invalid_request", Some(field), &what);
                    in_api_words(&answer, &what);
                }
            }
        }
        let mut unknown = route.valid.clone();
        unknown["zzz_unknown"] = json!(1);
        raw_post(
            &cluster,
            node,
            route,
            json_type,
            unknown.to_string().into_bytes(),
        )
        .await
        .error(
            400,
            "invalid_request",
            Some("zzz_unknown"),
            &format!("an unknown field on {path}"),
        );

        // The Content-Type: JSON with parameters is JSON; anything else is a 415.
        for content_type in [
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
        ] {
            raw_post(
                &cluster,
                node,
                route,
                Some(content_type),
                unknown.to_string().into_bytes(),
            )
            .await
            .error(
                400,
                "invalid_request",
                Some("zzz_unknown"),
                &format!("{content_type} on {path}"),
            );
        }
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/xml"),
            Some(""),
        ] {
            raw_post(
                &cluster,
                node,
                route,
                content_type,
                valid.clone().into_bytes(),
            )
            .await
            .error(
                415,
                "unsupported_media_type",
                None,
                &format!("{content_type:?} on {path}"),
            );
        }

        // Over the limit (64 KiB), announced or chunked; just under it is an ordinary 400.
        let huge = json!({"zzz": "x".repeat(70_000)}).to_string();
        raw_post(&cluster, node, route, json_type, huge.clone().into_bytes())
            .await
            .error(
                413,
                "payload_too_large",
                None,
                &format!("a huge body to {path}"),
            );
        let under = json!({"zzz": "x".repeat(60_000)}).to_string();
        raw_post(&cluster, node, route, json_type, under.into_bytes())
            .await
            .error(
                400,
                "invalid_request",
                None,
                &format!("a big body to {path}"),
            );
        let auth = route
            .auth
            .as_ref()
            .map(|a| format!("authorization: {a}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{auth}\
             transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
        let mut chunked = Vec::new();
        for piece in huge.as_bytes().chunks(8192) {
            chunked.extend(format!("{:x}\r\n", piece.len()).into_bytes());
            chunked.extend(piece);
            chunked.extend(b"\r\n");
        }
        chunked.extend(b"0\r\n\r\n");
        raw_http(&cluster, node, &head, &chunked, Duration::from_secs(10))
            .await
            .error(
                413,
                "payload_too_large",
                None,
                &format!("a huge chunked body to {path}"),
            );
    }

    // A client that claims more than it sends is answered when the request's deadline passes
    // (the default, 10 s), not never.
    let head = "POST /api/v1/users HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
                content-length: 100\r\nconnection: close\r\n\r\n";
    let stalled = raw_http(&cluster, "n1", head, b"{\"a\":", Duration::from_secs(20)).await;
    let code = stalled.body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    stalled.error(stalled.status, &code, None, "a body that stops");
    assert!([408, 503].contains(&stalled.status), "{stalled:?}");

    // Authentication comes before the body: no token and a broken body is a 401.
    for route in routes.iter().filter(|r| r.auth.is_some()) {
        let anonymous = Route {
            path: route.path.clone(),
            auth: None,
            valid: Value::Null,
            fields: Vec::new(),
        };
        raw_post(&cluster, "n1", &anonymous, json_type, b"{".to_vec())
            .await
            .error(
                401,
                "unauthenticated",
                None,
                &format!("no token, bad body on {}", route.path),
            );
    }
}

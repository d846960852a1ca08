//! `/metrics` of a cluster running the business services, read with a strict parser of the
//! Prometheus text format (0.0.4): every line parses, every family is typed once and whole,
//! histograms add up. Then requests are made and the counters move by what they caused: HTTP
//! requests by route template and status, sagas started and finished by outcome and reason,
//! saga steps by kind, messages to the services' members.

#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{Value, json};
use support::{TestCluster, config_text_with, send_json, token, wait_until};
use troupe_node::auth::Role;

const SERVICES: &str = "[services.users]\nshards = 4\n\n[services.user-emails]\nshards = 4\n\n\
                        [services.wallets]\nshards = 4\n\n[services.products]\nshards = 4\n\n\
                        [services.product-skus]\nshards = 4\n\n[services.orders]\nshards = 4\n\n\
                        [services.order-views]\nshards = 4\n\n[services.notifications]\nshards = 4\n";

const NODES: [&str; 3] = ["n1", "n2", "n3"];

/// One series: its name and labels (sorted by name).
type Series = (String, BTreeMap<String, String>);

/// A scrape, parsed: each series' value, and each family's type.
#[derive(Debug, Default)]
struct Scrape {
    values: HashMap<Series, f64>,
    types: HashMap<String, String>,
}

impl Scrape {
    /// The sum of `name` over the series whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.values
            .iter()
            .filter(|((n, l), _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// The label values of `label` that `name` has.
    fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let mut all: Vec<String> = self
            .values
            .keys()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, l)| l.get(label).cloned())
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

fn is_metric_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A sample value: a float, `+Inf`, `-Inf` or `NaN`.
fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if s
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')) =>
        {
            s.parse().map_err(|e| format!("value {s:?}: {e}"))
        }
        _ => Err(format!("value {s:?}")),
    }
}

/// `{a="x",b="y\"z"}` (the braces included) into labels; the rest of the line after it.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("no {")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or_else(|| format!("no = in {rest:?}"))?;
        let name = &rest[..eq];
        if !is_label_name(name) {
            return Err(format!("label name {name:?}"));
        }
        let mut chars = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?
            .char_indices();
        let body = &rest[eq + 2..];
        let mut value = String::new();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, '\n') => return Err("newline in a label value".into()),
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &body[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("after a label: {rest:?}"));
        }
    }
}

/// The family a sample named `name` belongs to, given the families typed so far.
fn family_of<'a>(name: &'a str, types: &HashMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && matches!(
                types.get(base).map(String::as_str),
                Some("histogram" | "summary")
            )
            && !(suffix == "_bucket" && types.get(base).map(String::as_str) == Some("summary"))
        {
            return base;
        }
    }
    name
}

/// Parses `text` strictly, or says which line is wrong and why.
fn parse(text: &str) -> Result<Scrape, String> {
    let mut scrape = Scrape::default();
    let mut helps = HashMap::new();
    let mut done: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        let family = if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("HELP"), Some(name), Some(help)) => {
                    if !is_metric_name(name) {
                        return Err(at("metric name".into()));
                    }
                    let mut chars = help.chars();
                    while let Some(c) = chars.next() {
                        if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
                            return Err(at("bad escape in HELP".into()));
                        }
                    }
                    if helps.insert(name.to_string(), help.to_string()).is_some() {
                        return Err(at("HELP twice".into()));
                    }
                    name.to_string()
                }
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !is_metric_name(name) {
                        return Err(at("metric name".into()));
                    }
                    if !matches!(
                        kind,
                        "counter" | "gauge" | "histogram" | "summary" | "untyped"
                    ) {
                        return Err(at("type".into()));
                    }
                    if scrape.values.keys().any(|(s, _)| s == name) {
                        return Err(at("TYPE after its samples".into()));
                    }
                    if scrape
                        .types
                        .insert(name.to_string(), kind.to_string())
                        .is_some()
                    {
                        return Err(at("TYPE twice".into()));
                    }
                    name.to_string()
                }
                _ => continue, // another comment
            }
        } else {
            let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
            let name = &line[..name_end];
            if !is_metric_name(name) {
                return Err(at("metric name".into()));
            }
            let (labels, rest) = if line[name_end..].starts_with('{') {
                parse_labels(&line[name_end..]).map_err(at)?
            } else {
                (BTreeMap::new(), &line[name_end..])
            };
            let mut fields = rest
                .strip_prefix(' ')
                .ok_or_else(|| at("no space before the value".into()))?
                .split(' ');
            let value = parse_value(fields.next().unwrap_or_default()).map_err(at)?;
            if let Some(ts) = fields.next()
                && ts.parse::<i64>().is_err()
            {
                return Err(at("timestamp".into()));
            }
            if fields.next().is_some() {
                return Err(at("trailing fields".into()));
            }
            let family = family_of(name, &scrape.types).to_string();
            match scrape.types.get(&family).map(String::as_str) {
                Some("histogram") if name.ends_with("_bucket") && !labels.contains_key("le") => {
                    return Err(at("a bucket without le".into()));
                }
                Some("summary") if name == family && !labels.contains_key("quantile") => {
                    return Err(at("a quantile without its label".into()));
                }
                Some("counter") if value < 0.0 || value.is_nan() => {
                    return Err(at("a counter below zero".into()));
                }
                _ => {}
            }
            if scrape
                .values
                .insert((name.to_string(), labels), value)
                .is_some()
            {
                return Err(at("a series twice".into()));
            }
            family
        };
        // A family's lines come together: once another began, it does not come back.
        if current.as_deref() != Some(family.as_str()) {
            if done.contains(&family) {
                return Err(at(format!("family {family} split")));
            }
            if let Some(previous) = current.replace(family.clone()) {
                done.push(previous);
            }
        }
    }
    check_histograms(&scrape)?;
    Ok(scrape)
}

/// Every histogram: per series, buckets cumulative in `le` order, a `+Inf` bucket equal to
/// `_count`, and a `_sum`. Every summary: a `_sum` and `_count` per series.
fn check_histograms(scrape: &Scrape) -> Result<(), String> {
    for (family, kind) in &scrape.types {
        let part = |suffix: &str, labels: &BTreeMap<String, String>| {
            scrape
                .values
                .get(&(format!("{family}{suffix}"), labels.clone()))
                .copied()
        };
        match kind.as_str() {
            "histogram" => {
                let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> =
                    BTreeMap::new();
                for ((name, labels), value) in &scrape.values {
                    if *name == format!("{family}_bucket") {
                        let mut rest = labels.clone();
                        let le = parse_value(&rest.remove("le").unwrap())
                            .map_err(|e| format!("{family}: le {e}"))?;
                        series.entry(rest).or_default().push((le, *value));
                    }
                }
                for (labels, mut buckets) in series {
                    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                    if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                        return Err(format!("{family}{labels:?}: buckets not cumulative"));
                    }
                    let last = buckets.last().unwrap();
                    let count = part("_count", &labels);
                    if last.0 != f64::INFINITY || Some(last.1) != count {
                        return Err(format!(
                            "{family}{labels:?}: +Inf bucket {last:?}, count {count:?}"
                        ));
                    }
                    if part("_sum", &labels).is_none() {
                        return Err(format!("{family}{labels:?}: no _sum"));
                    }
                }
            }
            "summary" => {
                for (name, labels) in scrape.values.keys() {
                    if name == family {
                        let mut rest = labels.clone();
                        let q = parse_value(&rest.remove("quantile").unwrap())?;
                        if !(0.0..=1.0).contains(&q) {
                            return Err(format!("{family}: quantile {q}"));
                        }
                        if part("_sum", &rest).is_none() || part("_count", &rest).is_none() {
                            return Err(format!("{family}{rest:?}: no _sum or _count"));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[test]
fn the_parser_takes_the_format_and_refuses_what_breaks_it() {
    let good = "# HELP a_total Things, with \\\\ and \\n.\n# TYPE a_total counter\n\
                a_total{x=\"q\\\"uo\\\\te\",y=\"\"} 3\na_total{x=\"b\"} 1e3 1700000000000\n\n\
                # TYPE h histogram\nh_bucket{le=\"0.1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.3\n\
                h_count 2\n# TYPE g gauge\ng NaN\ng{k=\"v\"} -Inf\n\
                # TYPE s summary\ns{quantile=\"0.5\"} 1\ns_sum 1\ns_count 1\n";
    let scrape = parse(good).unwrap();
    assert_eq!(scrape.sum("a_total", &[]), 1003.0);
    assert_eq!(scrape.sum("a_total", &[("x", "q\"uo\\te")]), 3.0);
    assert!(scrape.sum("g", &[]).is_nan());
    for bad in [
        "1abc 1\n",
        "a{1x=\"v\"} 1\n",
        "a{x=v} 1\n",
        "a{x=\"v} 1\n",
        "a{x=\"\\t\"} 1\n",
        "a 1 2 3\n",
        "a one\n",
        "a  1\n",
        "a 1\na 2\n",
        "# TYPE a counter\na -1\n",
        "# TYPE a wrong\n",
        "# TYPE a gauge\n# TYPE a gauge\n",
        "a 1\n# TYPE a gauge\n",
        "a 1\nb 1\na{x=\"y\"} 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
        "# TYPE s summary\ns 1\n",
    ] {
        assert!(parse(bad).is_err(), "took {bad:?}");
    }
}

/// A request as `token` (or nobody): status and JSON body.
async fn request(
    cluster: &TestCluster,
    node: &str,
    method: reqwest::Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut request = client.request(method, cluster.node(node).url(path));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    send_json(request).await.unwrap()
}

/// Every node's scrape, each parsed strictly.
async fn scrape_all(cluster: &TestCluster) -> HashMap<&'static str, Scrape> {
    let mut all = HashMap::new();
    for node in NODES {
        let text = cluster.metrics(node).await;
        let scrape = parse(&text).unwrap_or_else(|e| panic!("{node}'s /metrics: {e}\n{text}"));
        all.insert(node, scrape);
    }
    all
}

/// The sum over every node of `name` with `labels`.
fn total(all: &HashMap<&str, Scrape>, name: &str, labels: &[(&str, &str)]) -> f64 {
    all.values().map(|s| s.sum(name, labels)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_with_requests_sagas_and_messages() {
    let mut cluster = TestCluster::new(3);
    std::fs::write(&cluster.config, config_text_with(&cluster.nodes, SERVICES)).unwrap();
    cluster.start_formed().await;
    let admin = token(Role::Admin);

    // A product (stock 1) and a user.
    let body = json!({"sku": "MT-1", "name": "Metered", "price_cents": 250, "stock": 1});
    let (status, product) = request(
        &cluster,
        "n1",
        reqwest::Method::POST,
        "/api/v1/products",
        Some(&admin),
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{product}");
    let product = product["id"].as_str().unwrap().to_string();
    let email = format!("m-{}@example.com", uuid::Uuid::new_v4().simple());
    let body = json!({"email": email, "name": "m", "password": "correct horse battery"});
    let (status, user) = request(
        &cluster,
        "n1",
        reqwest::Method::POST,
        "/api/v1/users",
        None,
        Some(body),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    let user_id = user["id"].as_str().unwrap().to_string();
    let user = troupe_node::auth::Tokens::new(
        support::TOKEN_KEY.as_bytes(),
        troupe_node::auth::ISSUER,
        troupe_node::auth::AUDIENCE,
        troupe_node::auth::TOKEN_TTL,
    )
    .issue(&user_id, Role::User)
    .unwrap();

    let before = scrape_all(&cluster).await;
    for (node, scrape) in &before {
        for (name, kind) in [
            ("troupe_http_requests_total", "counter"),
            ("troupe_http_request_seconds", "histogram"),
            ("troupe_messages_sent_total", "counter"),
            ("troupe_messages_received_total", "counter"),
            ("troupe_mailbox_depth", "gauge"),
            ("troupe_node_status", "gauge"),
            ("troupe_node_up", "gauge"),
            ("troupe_member_restart_seconds", "summary"),
            ("troupe_store_commit_seconds", "histogram"),
        ] {
            assert_eq!(
                scrape.types.get(name).map(String::as_str),
                Some(kind),
                "{node}: {name}"
            );
        }
        for peer in NODES {
            assert_eq!(
                scrape.sum("troupe_node_status", &[("node", peer), ("status", "up")]),
                1.0,
                "{node} sees {peer} up"
            );
            assert_eq!(scrape.sum("troupe_node_status", &[("node", peer)]), 1.0);
        }
        // Messages are counted for the node's own members only.
        assert_eq!(
            scrape.label_values("troupe_messages_received_total", "node"),
            vec![node.to_string()]
        );
    }
    let products_in = total(
        &before,
        "troupe_messages_received_total",
        &[("service", "products")],
    );

    // One product read, one order that completes, one that is refused for stock, one read of
    // an order that does not exist and one of a route that does not exist: all on n1.
    let read = format!("/api/v1/products/{product}");
    let (status, _) = request(
        &cluster,
        "n1",
        reqwest::Method::GET,
        &read,
        Some(&user),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let mut orders = Vec::new();
    for quantity in [1, 5] {
        let body = json!({"items": [{"product_id": product, "quantity": quantity}]});
        let (status, placed) = request(
            &cluster,
            "n1",
            reqwest::Method::POST,
            "/api/v1/orders",
            Some(&user),
            Some(body),
        )
        .await;
        assert_eq!(status, 202, "{placed}");
        orders.push(placed["id"].as_str().unwrap().to_string());
    }
    let missing = uuid::Uuid::new_v4().to_string();
    let (status, _) = request(
        &cluster,
        "n1",
        reqwest::Method::GET,
        &format!("/api/v1/orders/{missing}"),
        Some(&user),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = request(
        &cluster,
        "n1",
        reqwest::Method::GET,
        &format!("/no/such/{missing}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 404);

    // Both sagas finish: one completed, one compensated for stock.
    wait_until("both sagas to finish", Duration::from_secs(30), || async {
        let all = scrape_all(&cluster).await;
        total(&all, "troupe_sagas_finished_total", &[]) >= 2.0
    })
    .await;
    let after = scrape_all(&cluster).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        total(&after, name, labels) - total(&before, name, labels)
    };
    let on_n1 = |name: &str, labels: &[(&str, &str)]| {
        after["n1"].sum(name, labels) - before["n1"].sum(name, labels)
    };

    // HTTP: by route template and status, never by raw path.
    let get = [("method", "GET")];
    for (route, status, n) in [
        ("/api/v1/products/{id}", "200", 1.0),
        ("/api/v1/orders/{id}", "404", 1.0),
        ("unmatched", "404", 1.0),
    ] {
        let labels = [get[0], ("route", route), ("status", status)];
        assert_eq!(
            on_n1("troupe_http_requests_total", &labels),
            n,
            "{route} {status}"
        );
        assert_eq!(
            on_n1("troupe_http_request_seconds_count", &labels),
            n,
            "{route} {status}"
        );
    }
    let placed = [
        ("method", "POST"),
        ("route", "/api/v1/orders"),
        ("status", "202"),
    ];
    assert_eq!(on_n1("troupe_http_requests_total", &placed), 2.0);
    assert_eq!(moved("troupe_http_requests_total", &placed), 2.0, "only n1");
    for route in after["n1"].label_values("troupe_http_requests_total", "route") {
        assert!(
            route == "unmatched" || (route.starts_with('/') && !route.contains(&missing)),
            "a raw path as a route: {route}"
        );
    }
    let seconds = on_n1(
        "troupe_http_request_seconds_sum",
        &[("route", "/api/v1/orders")],
    );
    assert!(seconds > 0.0 && seconds < 20.0, "{seconds} s");

    // Sagas: two started, one completed, one compensated because of stock; wherever their
    // instances live.
    assert_eq!(
        moved("troupe_sagas_started_total", &[("saga", "orders")]),
        2.0
    );
    assert_eq!(
        moved(
            "troupe_sagas_finished_total",
            &[
                ("saga", "orders"),
                ("outcome", "completed"),
                ("reason", "none")
            ]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "troupe_sagas_finished_total",
            &[
                ("saga", "orders"),
                ("outcome", "compensated"),
                ("reason", "out_of_stock")
            ]
        ),
        1.0
    );
    // Steps by kind: both orders reserved (one was refused), one charged and committed.
    let step = |step: &str, work: &str, outcome: &str| {
        moved(
            "troupe_saga_step_seconds_count",
            &[
                ("saga", "orders"),
                ("step", step),
                ("work", work),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(step("reserve", "act", "done"), 1.0);
    assert_eq!(step("reserve", "act", "refused"), 1.0);
    assert_eq!(step("charge", "act", "done"), 1.0);
    assert_eq!(step("commit", "act", "done"), 1.0);
    for scrape in after.values() {
        for kind in scrape.label_values("troupe_saga_step_seconds_count", "step") {
            assert!(!kind.contains(':'), "a step's kind, not its name: {kind}");
        }
    }

    // Messages: the products' members handled the read, the reservations and the commit; what
    // was sent to them covers what they handled and what is queued.
    let products_moved = total(
        &after,
        "troupe_messages_received_total",
        &[("service", "products")],
    ) - products_in;
    assert!(products_moved >= 4.0, "products handled {products_moved}");
    for (node, scrape) in &after {
        for service in scrape.label_values("troupe_messages_received_total", "service") {
            let labels = [("service", service.as_str())];
            let sent = scrape.sum("troupe_messages_sent_total", &labels);
            let received = scrape.sum("troupe_messages_received_total", &labels);
            let depth = scrape.sum("troupe_mailbox_depth", &labels);
            assert!(
                sent >= received && depth >= 0.0,
                "{node} {service}: sent {sent}, received {received}, depth {depth}"
            );
        }
        // Counters never go back.
        for ((name, labels), value) in &before[node].values {
            if before[node].types.get(name).map(String::as_str) == Some("counter") {
                let now = scrape.values.get(&(name.clone(), labels.clone()));
                assert!(
                    now.is_some_and(|now| now >= value),
                    "{node} {name}{labels:?}: {value} then {now:?}"
                );
            }
        }
    }
    let orders_moved = moved("troupe_messages_received_total", &[("service", "orders")]);
    assert!(orders_moved >= 2.0, "orders handled {orders_moved}");
}

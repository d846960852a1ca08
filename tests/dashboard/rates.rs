//! The dashboard's cluster-wide rates (`/admin/metrics/cluster` drawn by the page): what the
//! page shows, traffic to move them, and the page's rate computation (`lib.js`) run in the page.

use std::time::Duration;

use serde_json::json;

use super::Page;

/// The requests per second the page shows in its rates table: `{"n1": 1.5, ..., "*": 3.0}`
/// (`*` is the cluster; null where it shows none).
pub(crate) const CLUSTER_RATES: &str = "Object.fromEntries([...document.querySelectorAll('#cluster-rates tr[data-node]')]\
    .map(r => { const v = r.querySelector('td[data-field=\"http\"]')?.dataset.value; \
    return [r.dataset.node, v ? Number(v) : null]; }))";

/// GETs every one of `urls` in turn, over and over, until aborted (about 100 requests a
/// second: traffic to watch, not load).
pub(crate) async fn requests_to(urls: Vec<String>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("a client");
    let mut every = tokio::time::interval(Duration::from_millis(10));
    for url in urls.iter().cycle() {
        every.tick().await;
        let _ = client.get(url).send().await;
    }
}

/// The page's rate computation (lib.js), run in the page: a counter's rate over two samples,
/// none across a restart; the cluster's rates the sum of the nodes that have one, a node
/// unavailable in either sample or restarted between them adding nothing; restarts within
/// the last minute from the oldest sample inside it.
pub(crate) async fn check_rate_computation(page: &mut Page) {
    let result = page
        .eval(
            "import('/dashboard/lib.js').then((m) => {
               const node = (id, http, handled, restarts) => ({ node: id, status: 'up', unavailable: false,
                 counters: { http_requests: http, http_by_class: { '4xx': 0, '5xx': 0 }, messages_received: handled,
                   restarts, sagas_started: 0, sagas_finished: 0,
                   services: [{ name: 'echo', messages_sent: handled, messages_received: handled, restarts }] } });
               const down = (id) => ({ node: id, status: 'down', unavailable: true, reason: 'node ' + id + ' is down', counters: null });
               const before = { nodes: [node('n1', 10, 100, 0), node('n2', 100, 50, 1), down('n3')] };
               const after = { nodes: [node('n1', 30, 160, 2), node('n2', 40, 10, 0), node('n3', 5, 5, 0)],
                 total: { restarts: 2, services: [{ name: 'echo', restarts: 2 }] } };
               const r = m.clusterRates(before, after, 2);
               const first = m.clusterRates(null, after, 0);
               const seen = (at, pairs) => ({ at, restarts: new Map(pairs) });
               const recent = m.recentRestarts([seen(0, [['n1', 1]]), seen(30000, [['n1', 3]]),
                 seen(70000, [['n1', 4], ['n2', 2], ['n3', 0]])], 60000);
               const restarted = m.recentRestarts([seen(0, [['n1', 5]]), seen(1000, [['n1', 1]])], 60000);
               return {
                 rate: m.counterRate(10, 40, 2), reset: m.counterRate(40, 10, 2), no_time: m.counterRate(1, 2, 0),
                 nodes: Object.fromEntries(r.nodes.map((n) => [n.node, [n.rates.http, n.rates.messages, n.rates.restarts]])),
                 total: [r.total.http, r.total.messages, r.total.restarts],
                 echo: r.services.get('echo'), echo_restarts: r.restarts.get('echo'),
                 first: first.total.http,
                 recent: [recent.byNode.get('n1'), recent.byNode.get('n2'), recent.total],
                 restarted: [restarted.byNode.get('n1'), restarted.total],
               };
             })",
        )
        .await;
    // (Whole numbers: the page hands them over as integers.)
    assert_eq!(
        result,
        json!({
            "rate": 15, "reset": null, "no_time": null,
            "nodes": {"n1": [10, 30, 1], "n2": [null, null, null], "n3": [null, null, null]},
            "total": [10, 30, 1],
            "echo": 30, "echo_restarts": 2,
            "first": null,
            // n1: 4 now, 3 at the oldest sample within the minute; n2 seen once.
            "recent": [1, 0, 1],
            // A count that went down: the node restarted, its recent restarts are unknown.
            "restarted": [null, null],
        })
    );
}

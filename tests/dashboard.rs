//! The dashboard (`GET /`) in a real browser: headless Chromium (Debian's `chromium` package;
//! `.ci/run` installs it when missing) loads the page from n1 of a 3-node cluster, is signed in
//! with a pasted admin token, shows n1, n2 and n3 up; n3 is SIGKILLed and the page shows it
//! down. Between the two, requests served by n2 and n3 only show as request rates of n2, n3 and
//! the cluster on n1's page (through `/admin/metrics/cluster`), and n3 is then marked
//! unavailable in the rates table; the page's rate computation (`lib.js`) is checked in the
//! page itself. Screenshots of both moments are written to `$CARGO_TARGET_TMPDIR/dashboard/`
//! (`target/tmp/dashboard/` by default).
//!
//! The browser is driven over the Chrome DevTools Protocol on a websocket to 127.0.0.1 (the
//! port Chromium chose, read from its `DevToolsActivePort` file); every call has a deadline,
//! and every wait polls what the page shows until a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is how a test fails

mod support;

/// The cluster's rates on the page: what it shows, the traffic to move them, and its rate
/// computation checked in the page.
#[path = "dashboard/rates.rs"]
mod rates;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::TestCluster;
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use troupe_node::auth::Role;

/// The longest one DevTools call may take.
const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// The browser to drive: `TROUPE_CHROMIUM`, else `chromium` (or a usual alias) on the `PATH`.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("TROUPE_CHROMIUM") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "no Chromium found on the PATH: this test needs Debian's `chromium` package \
         (`apt-get install -y chromium`; .ci/run installs it when missing), or TROUPE_CHROMIUM \
         naming a Chromium binary"
    );
}

/// A headless Chromium process with a profile of its own, killed on drop.
struct Browser {
    child: Child,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium and returns it with the websocket address of its DevTools endpoint.
    async fn launch() -> (Self, String) {
        let profile = tempfile::tempdir().expect("profile dir");
        let log = std::fs::File::create(profile.path().join("chromium.log")).expect("log file");
        let child = Command::new(chromium())
            .args([
                "--headless",
                "--disable-gpu",
                "--no-sandbox",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
                "--window-size=1400,1200",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-dev-shm-usage",
                "--disable-extensions",
                // Nothing but the node under test: no update checks, sync or pings.
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-default-apps",
                "--no-pings",
                "--metrics-recording-only",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start chromium");
        let mut browser = Self { child, profile };
        let url = browser.devtools_url().await;
        (browser, url)
    }

    /// `ws://127.0.0.1:<port>/devtools/browser/<id>`, once Chromium has written it.
    async fn devtools_url(&mut self) -> String {
        let file = self.profile.path().join("DevToolsActivePort");
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    return format!("ws://127.0.0.1:{port}{path}");
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "chromium exited ({status}) before listening:\n{}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "chromium did not open its DevTools port within 60 s:\n{}",
                self.log()
            );
            sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One page of the browser, over the DevTools protocol (a flat session on the browser's
/// websocket).
struct Page {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: Option<String>,
    next_id: u64,
}

impl Page {
    /// A new blank page of the browser at `url`.
    async fn open(url: &str) -> Self {
        let (socket, _) = timeout(CALL_DEADLINE, tokio_tungstenite::connect_async(url))
            .await
            .expect("devtools connect in time")
            .expect("devtools connect");
        let mut page = Self {
            socket,
            session: None,
            next_id: 0,
        };
        let target = page
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = page
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        page.session = Some(attached["sessionId"].as_str().expect("a session").into());
        page
    }

    /// Calls `method` and returns its result; events that arrive meanwhile are skipped.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        let exchange = async {
            self.socket
                .send(Message::text(message.to_string()))
                .await
                .expect("send to devtools");
            loop {
                let frame = self
                    .socket
                    .next()
                    .await
                    .expect("devtools closed")
                    .expect("devtools read");
                let Message::Text(text) = frame else { continue };
                let answer: Value = serde_json::from_str(&text).expect("devtools json");
                if answer["id"] == json!(id) {
                    return answer;
                }
            }
        };
        let answer = timeout(CALL_DEADLINE, exchange)
            .await
            .unwrap_or_else(|_| panic!("{method}: no answer within {CALL_DEADLINE:?}"));
        assert!(answer["error"].is_null(), "{method}: {answer}");
        answer["result"].clone()
    }

    /// The value of the JavaScript `expression` in the page.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Polls `expression` until `holds` of its value, or panics naming `what` and the last value.
    async fn wait_for(
        &mut self,
        what: &str,
        deadline: Duration,
        expression: &str,
        holds: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let value = self.eval(expression).await;
            if holds(&value) {
                return value;
            }
            assert!(
                start.elapsed() < deadline,
                "timed out after {deadline:?} waiting for {what}; the page shows {value}"
            );
            sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the whole page, written to `path`.
    async fn screenshot(&mut self, path: &Path) -> Vec<u8> {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot base64");
        std::fs::create_dir_all(path.parent().expect("a directory")).expect("output dir");
        std::fs::write(path, &png).expect("write screenshot");
        png
    }
}

/// What the page shows of each node: `{"n1": "up", ...}`.
const NODE_STATUSES: &str = "Object.fromEntries([...document.querySelectorAll('#nodes .card')]\
    .map(c => [c.dataset.node, c.dataset.status]))";

fn statuses_are(value: &Value, wanted: &[(&str, &str)]) -> bool {
    wanted.iter().all(|(node, status)| value[*node] == *status)
}

/// Pastes `token` into the page's token form and submits it.
async fn paste_token(page: &mut Page, token: &str) {
    let token = serde_json::to_string(token).expect("a JSON string");
    page.eval(&format!(
        "document.getElementById('token-input').value = {token}; \
         document.querySelector('#token-form button').click(); true"
    ))
    .await;
}

/// The dashboard shows the three nodes up, then n3 down after n3 is SIGKILLed; a user's token
/// is refused with a clear message, the admin's never shows in the page's address, and a kill
/// button kills a member and shows the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_nodes_and_a_killed_node_down() {
    let output = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    let mut cluster = TestCluster::new(3);
    cluster.start_formed().await;
    let (browser, devtools) = Browser::launch().await;
    let mut page = Page::open(&devtools).await;
    page.call("Page.navigate", json!({"url": cluster.node("n1").url("/")}))
        .await;

    // Without a token: the sign-in form, and nothing else.
    page.wait_for(
        "the sign-in form",
        Duration::from_secs(30),
        "document.readyState === 'complete' && !document.getElementById('sign-in').hidden \
         && document.getElementById('board').hidden",
        |v| *v == json!(true),
    )
    .await;

    // A user's token is refused: the form comes back and says why.
    paste_token(&mut page, &support::token(Role::User)).await;
    page.wait_for(
        "the page to refuse a user's token",
        Duration::from_secs(30),
        "!document.getElementById('sign-in').hidden \
         && document.getElementById('sign-in-message').textContent",
        |v| v.as_str().is_some_and(|m| m.contains("not an admin")),
    )
    .await;

    let admin = support::token(Role::Admin);
    paste_token(&mut page, &admin).await;
    page.wait_for(
        "n1, n2 and n3 up on the page",
        Duration::from_secs(60),
        NODE_STATUSES,
        |v| statuses_are(v, &[("n1", "up"), ("n2", "up"), ("n3", "up")]),
    )
    .await;
    page.wait_for(
        "the services table",
        Duration::from_secs(30),
        "document.querySelector('#services tr[data-service=\"echo\"]') !== null",
        |v| *v == json!(true),
    )
    .await;
    // The kill button of a service kills one of its members and says so.
    page.eval("document.querySelector('#services tr[data-service=\"echo\"] button').click(); true")
        .await;
    page.wait_for(
        "the answer to a kill",
        Duration::from_secs(30),
        "document.querySelector('#kill-log li')?.textContent ?? ''",
        |v| {
            v.as_str()
                .is_some_and(|t| t.contains("killed a member of echo"))
        },
    )
    .await;
    let address = page.eval("location.href").await;
    assert!(
        !address.as_str().unwrap_or_default().contains(&admin),
        "the token is in the address: {address}"
    );
    rates::check_rate_computation(&mut page).await;
    // Requests served by n2 and n3 only: the page on n1 shows their rates and the cluster's.
    let traffic = tokio::spawn(rates::requests_to(vec![
        cluster.node("n2").url("/health/live"),
        cluster.node("n3").url("/health/live"),
    ]));
    page.wait_for(
        "request rates of n2, n3 and the cluster on n1's page",
        Duration::from_secs(60),
        rates::CLUSTER_RATES,
        |v| {
            ["n2", "n3", "*"]
                .iter()
                .all(|n| v[*n].as_f64().is_some_and(|r| r > 0.0))
        },
    )
    .await;
    traffic.abort();
    let up = page.screenshot(&output.join("all-up.png")).await;
    assert!(up.starts_with(b"\x89PNG"), "not a PNG");

    cluster.kill("n3");
    page.wait_for(
        "n3 down on the page (n1 and n2 up)",
        Duration::from_secs(60),
        NODE_STATUSES,
        |v| statuses_are(v, &[("n1", "up"), ("n2", "up"), ("n3", "down")]),
    )
    .await;
    // The rates table marks n3 in place (no row comes or goes).
    let rows = page
        .wait_for(
            "n3 unavailable in the rates table",
            Duration::from_secs(60),
            "Object.fromEntries([...document.querySelectorAll('#cluster-rates tbody tr')]\
             .map(r => [r.dataset.node, r.dataset.state]))",
            |v| v["n3"] == "unavailable",
        )
        .await;
    assert_eq!(
        rows,
        json!({"n1": "counted", "n2": "counted", "n3": "unavailable"})
    );
    let path = output.join("n3-down.png");
    let down = page.screenshot(&path).await;
    assert!(
        down.starts_with(b"\x89PNG") && down.len() > 1000,
        "not a PNG"
    );
    assert_eq!(
        std::fs::metadata(&path).expect("the screenshot").len() as usize,
        down.len()
    );
    eprintln!("dashboard screenshots: {}", output.display());
    drop(browser);
}

/// Not a test of its own: a screenshot of a running cluster's dashboard, to look at it under
/// load (`troupe load`). `TROUPE_DASHBOARD_URL` is the page (e.g. `http://127.0.0.1:8081/`),
/// `TROUPE_DASHBOARD_TOKEN` an admin's token (`troupe token`); `TROUPE_DASHBOARD_SECONDS`
/// (default 20) how long to watch it. Prints the page's element count at the start and the
/// end (it must not grow) and writes `$CARGO_TARGET_TMPDIR/dashboard/running.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a running cluster: TROUPE_DASHBOARD_URL and TROUPE_DASHBOARD_TOKEN"]
async fn screenshot_of_a_running_cluster() {
    let url = std::env::var("TROUPE_DASHBOARD_URL").expect("TROUPE_DASHBOARD_URL");
    let token = std::env::var("TROUPE_DASHBOARD_TOKEN").expect("TROUPE_DASHBOARD_TOKEN");
    let seconds: u64 = std::env::var("TROUPE_DASHBOARD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let (browser, devtools) = Browser::launch().await;
    let mut page = Page::open(&devtools).await;
    page.call("Page.navigate", json!({"url": url})).await;
    page.wait_for(
        "the sign-in form",
        Duration::from_secs(30),
        "document.readyState === 'complete' && !document.getElementById('sign-in').hidden",
        |v| *v == json!(true),
    )
    .await;
    paste_token(&mut page, &token).await;
    page.wait_for(
        "the nodes on the page",
        Duration::from_secs(30),
        "document.querySelectorAll('#nodes .card').length",
        |v| v.as_u64().is_some_and(|n| n > 0),
    )
    .await;
    const ELEMENTS: &str = "document.getElementsByTagName('*').length";
    let first = page.eval(ELEMENTS).await;
    let start = Instant::now();
    let mut most = first.as_u64().unwrap_or_default();
    while start.elapsed() < Duration::from_secs(seconds) {
        most = most.max(page.eval(ELEMENTS).await.as_u64().unwrap_or_default());
        sleep(Duration::from_millis(500)).await;
    }
    let last = page.eval(ELEMENTS).await;
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard/running.png");
    page.screenshot(&path).await;
    eprintln!(
        "elements: {first} at the start, {last} after {seconds} s, {most} at most; {}",
        path.display()
    );
    drop(browser);
}

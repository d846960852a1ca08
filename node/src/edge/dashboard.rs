//! `GET /`: the live dashboard, a page served by every node from the binary itself.
//!
//! The page is four files compiled in with `include_str!` (`dashboard/index.html`, `app.js`
//! and the module it imports, `lib.js`, and `style.css`) and names no other origin: it works without any network but the node's own,
//! and its `Content-Security-Policy` lets it load scripts, styles and data from this node only
//! (no inline script, no `eval`, no frames).
//!
//! The page holds no data itself: its script signs in (an admin's email and password through
//! `POST /api/v1/auth/login`, or a pasted token), keeps the token in the tab's
//! `sessionStorage` (never in a URL), and polls the node that served it: `GET /admin/cluster`
//! (nodes, services, members, shards), `GET /admin/metrics/cluster` (every node's counters,
//! which this node gathers through the cluster: the page computes the cluster's and each
//! node's request and message rates from two answers in a row, and shows restarts), `GET
//! /metrics` (this node's own rates, from the deltas of its counters) and `GET /admin/sagas?state=running|compensating` (the sagas in
//! flight; a listing by state scans every saga, so the page asks less often the longer it
//! takes), then reads the sagas that left those lists (`GET /api/v1/sagas/{id}`) to show how
//! they finished. Its kill buttons post `POST /admin/chaos/kill`. A 401 or 403 brings the
//! sign-in form back.

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// The page.
const INDEX_HTML: &str = include_str!("dashboard/index.html");
/// Its script (a module).
const APP_JS: &str = include_str!("dashboard/app.js");
/// What the script imports: its pure parts (formatting, the Prometheus text, rates).
const LIB_JS: &str = include_str!("dashboard/lib.js");
/// Its styles.
const STYLE_CSS: &str = include_str!("dashboard/style.css");

/// This node only: scripts, styles, data; nothing inline, no plugins, no frames, no forms
/// posted elsewhere.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// `body` as `content_type`, with the page's security headers; not cached, so that a node
/// upgraded in place serves its own page.
fn file(content_type: &'static str, body: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 6] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}

/// `GET /`: the dashboard.
#[utoipa::path(get, path = "/", tag = "dashboard",
    responses((status = 200, description = "The live dashboard (HTML): nodes and their status, \
        services with their members and shards, request and message rates, restarts, recent \
        sagas, and kill buttons. It signs in with an admin's account or token and reads the \
        `/admin` routes (`/admin/metrics/cluster` for the other nodes' rates) and `/metrics` \
        of this node; it loads nothing from any other origin \
        (`Content-Security-Policy` allows this node only)",
        content_type = "text/html", body = String,
        headers(("Content-Security-Policy" = String, description = "This node only")))))]
pub(crate) async fn index() -> Response {
    file("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /dashboard/app.js`: the dashboard's script.
#[utoipa::path(get, path = "/dashboard/app.js", tag = "dashboard",
    responses((status = 200, description = "The dashboard's script",
        content_type = "text/javascript", body = String)))]
pub(crate) async fn script() -> Response {
    file("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /dashboard/lib.js`: the pure parts of the dashboard's script.
#[utoipa::path(get, path = "/dashboard/lib.js", tag = "dashboard",
    responses((status = 200, description = "The pure parts of the dashboard's script (a module \
        it imports)", content_type = "text/javascript", body = String)))]
pub(crate) async fn script_lib() -> Response {
    file("text/javascript; charset=utf-8", LIB_JS)
}

/// `GET /dashboard/style.css`: the dashboard's styles.
#[utoipa::path(get, path = "/dashboard/style.css", tag = "dashboard",
    responses((status = 200, description = "The dashboard's styles",
        content_type = "text/css", body = String)))]
pub(crate) async fn style() -> Response {
    file("text/css; charset=utf-8", STYLE_CSS)
}

#[cfg(test)]
mod tests;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use super::super::tests::app;
use super::*;

/// Where the page's script and styles are served (the page names them; so do the handlers'
/// `#[utoipa::path]`s).
const SCRIPT_PATH: &str = "/dashboard/app.js";
const LIB_PATH: &str = "/dashboard/lib.js";
const STYLE_PATH: &str = "/dashboard/style.css";

async fn get(router: &axum::Router, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let request = Request::builder().uri(path).body(Body::empty()).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

/// The page and its files are served to anyone (no token: the data routes ask for one), each
/// with the policy that keeps the page to this node.
#[tokio::test]
async fn the_page_and_its_files_are_served_with_a_strict_policy() {
    let app = app(true).await;
    let router = app.bare();
    for (path, kind, marker) in [
        ("/", "text/html", "<title>Troupe dashboard</title>"),
        (SCRIPT_PATH, "text/javascript", "from './lib.js';"),
        (LIB_PATH, "text/javascript", "export class Scrapes"),
        (STYLE_PATH, "text/css", ".card"),
    ] {
        let (status, headers, body) = get(&router, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let content_type = headers[header::CONTENT_TYPE].to_str().unwrap();
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert_eq!(policy, CONTENT_SECURITY_POLICY, "{path}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(body.contains(marker), "{path} is not the file: {body:.200}");
    }
    // Nothing but this node: every source is 'self' or nothing, and none allows inline code.
    let policy = CONTENT_SECURITY_POLICY;
    assert!(policy.starts_with("default-src 'none';"), "{policy}");
    for directive in policy.split(';').map(str::trim) {
        let mut words = directive.split_whitespace();
        let name = words.next().unwrap();
        for source in words {
            assert!(
                source == "'self'" || source == "'none'",
                "{name} allows {source}"
            );
        }
    }
}

/// The page names no other origin: no URL with a scheme in any of its files, no inline
/// script or style for the policy to refuse, and its own files by the paths they are served at.
#[test]
fn the_page_names_no_other_origin_and_has_no_inline_code() {
    for (name, text) in [
        ("index.html", INDEX_HTML),
        ("app.js", APP_JS),
        ("lib.js", LIB_JS),
        ("style.css", STYLE_CSS),
    ] {
        for scheme in ["http://", "https://", "ws://", "wss://", "//cdn", "@import"] {
            assert!(!text.contains(scheme), "{name} contains {scheme:?}");
        }
    }
    assert!(INDEX_HTML.contains(&format!("<script type=\"module\" src=\"{SCRIPT_PATH}\"")));
    assert!(APP_JS.contains(&format!("from '.{}';", &LIB_PATH["/dashboard".len()..])));
    assert!(INDEX_HTML.contains(&format!("href=\"{STYLE_PATH}\"")));
    assert_eq!(
        INDEX_HTML.matches("<script").count(),
        1,
        "one script, from a file"
    );
    for inline in [
        "<style",
        " style=",
        " onclick=",
        " onload=",
        " onsubmit=",
        "javascript:",
    ] {
        assert!(!INDEX_HTML.contains(inline), "index.html has {inline:?}");
    }
    // The token is never put in a URL or a log.
    for leak in ["?token", "&token", "console.log"] {
        assert!(
            !APP_JS.contains(leak) && !LIB_JS.contains(leak),
            "a script has {leak:?}"
        );
    }
}

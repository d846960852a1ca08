//! Talking to a node's admin API from a subcommand (`status`, `bench`): which URL, a client with
//! a deadline, and a JSON answer or the exit code to give up with.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use crate::config::NodeConfig;
use crate::exit;

/// The base URL of `node` (an id of the configuration, a URL, or host:port), or of the
/// configuration's first node.
pub(crate) fn base_url(config: &NodeConfig, node: Option<&str>) -> String {
    match node {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            url.trim_end_matches('/').to_string()
        }
        Some(id) => match config.node(id) {
            Ok(entry) => format!("http://{}", entry.http_addr),
            Err(_) => format!("http://{id}"),
        },
        None => format!("http://{}", config.nodes[0].http_addr),
    }
}

/// An HTTP client with `timeout` that presents an operator's admin token (see
/// [`crate::auth::operator_token`]), or the exit code to give up with.
pub(crate) fn client(config: &NodeConfig, timeout: Duration) -> Result<reqwest::Client, ExitCode> {
    let token = crate::auth::operator_token(config).map_err(|e| {
        eprintln!("troupe: {e}");
        ExitCode::from(exit::CONFIG)
    })?;
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value =
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| {
            eprintln!("troupe: cannot use the operator token: {e}");
            ExitCode::FAILURE
        })?;
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .timeout(timeout)
        .default_headers(headers)
        .build()
        .map_err(|e| {
            eprintln!("troupe: cannot build an HTTP client: {e}");
            ExitCode::FAILURE
        })
}

/// Sends `request` to `url` and reads a JSON answer; on failure, says why on stderr and gives
/// the exit code: 69 if the node cannot be reached, 1 otherwise.
pub(crate) async fn fetch_json(
    url: &str,
    request: reqwest::RequestBuilder,
) -> Result<Value, ExitCode> {
    match request.send().await {
        Ok(r) if r.status().is_success() => r.json().await.map_err(|e| {
            eprintln!("troupe: {url} answered with something that is not JSON: {e}");
            ExitCode::FAILURE
        }),
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            eprintln!("troupe: {url} answered {status}: {text}");
            Err(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("troupe: cannot reach {url}: {e}");
            Err(ExitCode::from(exit::UNAVAILABLE))
        }
    }
}

//! The load generator's HTTP client: every node's edge in turn, tokens per request, and each
//! answer sorted into what the run counts (a status and the API's `error.code`, or a transport
//! failure).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

/// The header that makes placing an order idempotent (`API.md`).
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// How an exchange ended.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// The node answered: status and JSON body (`Null` if not JSON).
    Http(u16, Value),
    /// No answer: connection refused or reset, or the client's deadline passed.
    Transport(String),
}

impl Answer {
    /// Whether the outcome is unknown or the node said to come back: the same request may be
    /// sent again (with the same idempotency key where it matters).
    pub(crate) fn retryable(&self) -> bool {
        match self {
            Self::Http(status, _) => matches!(status, 429 | 502 | 503 | 504),
            Self::Transport(_) => true,
        }
    }

    /// The key errors are counted under: the API's `error.code` (`http_<status>` if the body
    /// has none) or `transport`.
    pub(crate) fn error_key(&self) -> String {
        match self {
            Self::Http(status, body) => body["error"]["code"]
                .as_str()
                .map_or_else(|| format!("http_{status}"), str::to_string),
            Self::Transport(_) => "transport".to_string(),
        }
    }

    /// The answer for a person: status and body, or why there was none.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Http(status, body) => format!("{status} {body}"),
            Self::Transport(why) => format!("no answer: {why}"),
        }
    }
}

/// The cluster's edges, each asked in turn.
#[derive(Debug)]
pub(crate) struct Api {
    http: reqwest::Client,
    bases: Vec<String>,
    admin_token: String,
    next: AtomicUsize,
}

impl Api {
    /// A client for `bases` (`http://host:port`), with `timeout` per request.
    pub(crate) fn new(
        bases: Vec<String>,
        admin_token: String,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(!bases.is_empty(), "no node to send to");
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(Self {
            http,
            bases,
            admin_token,
            next: AtomicUsize::new(0),
        })
    }

    /// The administrator's token.
    pub(crate) fn admin(&self) -> &str {
        &self.admin_token
    }

    /// How many edges requests are spread across.
    pub(crate) fn num_nodes(&self) -> usize {
        self.bases.len()
    }

    /// Sends one request to the next edge in turn.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Answer {
        let n = self.next.fetch_add(1, Ordering::Relaxed) % self.bases.len();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.bases[n]));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header(IDEMPOTENCY_KEY, key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response.json().await.unwrap_or(Value::Null);
                Answer::Http(status, body)
            }
            Err(e) => Answer::Transport(e.to_string()),
        }
    }

    /// GET `path` as `token`.
    pub(crate) async fn get(&self, path: &str, token: &str) -> Answer {
        self.send(Method::GET, path, Some(token), None, None).await
    }

    /// POST `body` to `path` as `token`.
    pub(crate) async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Answer {
        self.send(Method::POST, path, token, Some(body), None).await
    }

    /// GET `path` as admin, retrying an unknown outcome a few times (reads have no effect):
    /// the JSON body of a 200, or the last answer.
    pub(crate) async fn read(&self, path: &str) -> Result<Value, Answer> {
        let mut last = Answer::Transport("not sent".into());
        for attempt in 0..4u64 {
            match self.get(path, &self.admin_token).await {
                Answer::Http(200, body) => return Ok(body),
                answer if answer.retryable() => last = answer,
                answer => return Err(answer),
            }
            tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_keyed_by_the_apis_code_or_transport() {
        let refused = Answer::Http(
            409,
            serde_json::json!({"error": {"code": "conflict", "message": "m"}}),
        );
        assert_eq!(refused.error_key(), "conflict");
        assert!(!refused.retryable());
        assert_eq!(Answer::Http(502, Value::Null).error_key(), "http_502");
        let lost = Answer::Transport("reset".into());
        assert_eq!(lost.error_key(), "transport");
        assert!(lost.retryable());
        assert!(Answer::Http(503, Value::Null).retryable());
        assert!(Answer::Http(504, Value::Null).retryable());
        assert!(!Answer::Http(404, Value::Null).retryable());
    }
}

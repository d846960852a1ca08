//! `[http]`: the edge's body limit and deadlines.
//!
//! ```toml
//! [http]
//! body_limit_bytes = 65536      # a larger body gets 413
//! request_timeout_ms = 10000    # a slower request gets 503 with Retry-After
//! shutdown_grace_ms = 10000     # a graceful shutdown's deadline
//! rate_limit_per_second = 0     # requests per second per client address to /api and /admin
//!                               # (0: no limit); beyond, 429 with Retry-After
//! rate_limit_burst = 0          # how many at once before the rate applies (0: one second's)
//! ```

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::check::{Checker, override_with, unwritten};
use super::{ConfigError, Tuning, ms};

fn default_body_limit_bytes() -> Spanned<u64> {
    unwritten(64 * 1024)
}
fn default_request_timeout_ms() -> Spanned<u64> {
    unwritten(10_000)
}
fn default_shutdown_grace_ms() -> Spanned<u64> {
    unwritten(10_000)
}
fn default_zero() -> Spanned<u64> {
    unwritten(0)
}

/// The HTTP edge's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// Deadline of one request.
    pub request_timeout: Duration,
    /// Deadline of a graceful shutdown.
    pub shutdown_grace: Duration,
    /// Requests per second per client address to `/api` and `/admin`, and the burst allowed
    /// (None: no limit).
    pub rate_limit: Option<(u32, u32)>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit_bytes: usize::try_from(default_body_limit_bytes().into_inner())
                .unwrap_or(usize::MAX),
            request_timeout: ms(default_request_timeout_ms().into_inner()),
            shutdown_grace: ms(default_shutdown_grace_ms().into_inner()),
            rate_limit: None,
        }
    }
}

/// `[http]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    #[serde(default = "default_body_limit_bytes")]
    body_limit_bytes: Spanned<u64>,
    #[serde(default = "default_request_timeout_ms")]
    request_timeout_ms: Spanned<u64>,
    #[serde(default = "default_shutdown_grace_ms")]
    shutdown_grace_ms: Spanned<u64>,
    #[serde(default = "default_zero")]
    rate_limit_per_second: Spanned<u64>,
    #[serde(default = "default_zero")]
    rate_limit_burst: Spanned<u64>,
}

impl Default for RawHttp {
    fn default() -> Self {
        Self {
            body_limit_bytes: default_body_limit_bytes(),
            request_timeout_ms: default_request_timeout_ms(),
            shutdown_grace_ms: default_shutdown_grace_ms(),
            rate_limit_per_second: default_zero(),
            rate_limit_burst: default_zero(),
        }
    }
}

impl RawHttp {
    /// Applies the command line's or the environment's overrides.
    pub(super) fn override_with(&mut self, tuning: &Tuning) {
        override_with(&mut self.body_limit_bytes, tuning.body_limit_bytes);
        override_with(&mut self.request_timeout_ms, tuning.request_timeout_ms);
        override_with(&mut self.shutdown_grace_ms, tuning.shutdown_grace_ms);
    }

    /// The validated section.
    pub(super) fn build_and_validate(
        &self,
        check: &Checker<'_>,
    ) -> Result<HttpSettings, ConfigError> {
        let body_limit = check.positive("http.body_limit_bytes", &self.body_limit_bytes)?;
        let request_timeout =
            check.positive("http.request_timeout_ms", &self.request_timeout_ms)?;
        let shutdown_grace = check.positive("http.shutdown_grace_ms", &self.shutdown_grace_ms)?;
        let most = |key: &str, v: &Spanned<u64>| -> Result<u32, ConfigError> {
            match u32::try_from(*v.get_ref()) {
                Ok(n) if n <= 1_000_000 => Ok(n),
                _ => check.err(key, &v.span(), "at most 1000000"),
            }
        };
        let per_second = most("http.rate_limit_per_second", &self.rate_limit_per_second)?;
        let burst = most("http.rate_limit_burst", &self.rate_limit_burst)?;
        let burst = if burst == 0 { per_second } else { burst };
        let rate_limit = (per_second > 0).then_some((per_second, burst));
        Ok(HttpSettings {
            body_limit_bytes: usize::try_from(body_limit).unwrap_or(usize::MAX),
            request_timeout: ms(request_timeout),
            shutdown_grace: ms(shutdown_grace),
            rate_limit,
        })
    }
}

//! `[http]`: the edge's body limit and deadlines.
//!
//! ```toml
//! [http]
//! body_limit_bytes = 65536      # a larger body gets 413
//! request_timeout_ms = 10000    # a slower request gets 503 with Retry-After
//! shutdown_grace_ms = 10000     # a graceful shutdown's deadline
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

/// The HTTP edge's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// Deadline of one request.
    pub request_timeout: Duration,
    /// Deadline of a graceful shutdown.
    pub shutdown_grace: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit_bytes: usize::try_from(default_body_limit_bytes().into_inner())
                .unwrap_or(usize::MAX),
            request_timeout: ms(default_request_timeout_ms().into_inner()),
            shutdown_grace: ms(default_shutdown_grace_ms().into_inner()),
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
}

impl Default for RawHttp {
    fn default() -> Self {
        Self {
            body_limit_bytes: default_body_limit_bytes(),
            request_timeout_ms: default_request_timeout_ms(),
            shutdown_grace_ms: default_shutdown_grace_ms(),
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
        Ok(HttpSettings {
            body_limit_bytes: usize::try_from(body_limit).unwrap_or(usize::MAX),
            request_timeout: ms(request_timeout),
            shutdown_grace: ms(shutdown_grace),
        })
    }
}

//! `[telemetry]`: where trace spans are exported.
//!
//! ```toml
//! [telemetry]
//! otlp_endpoint = "http://127.0.0.1:4318"   # OTLP over HTTP; unset: no export
//! ```
//!
//! `TROUPE_OTLP_ENDPOINT` (or `--otlp-endpoint`) wins over the file; an empty value turns
//! export off. The endpoint is the collector's base URL: spans go to `<endpoint>/v1/traces`
//! (a URL that already ends in `/v1/traces` is used as it is).

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::check::Checker;

/// `[telemetry]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTelemetry {
    #[serde(default)]
    otlp_endpoint: Option<Spanned<String>>,
    /// From `TROUPE_OTLP_ENDPOINT` or the flag, if given.
    #[serde(skip)]
    overridden: Option<String>,
}

impl RawTelemetry {
    /// Applies the command line's or the environment's override.
    pub(super) fn override_with(&mut self, endpoint: Option<&String>) {
        self.overridden = endpoint.cloned();
    }

    /// The validated section: the URL spans are posted to, if export is on.
    pub(super) fn build_and_validate(
        &self,
        check: &Checker<'_>,
    ) -> Result<Option<String>, ConfigError> {
        if let Some(endpoint) = &self.overridden {
            return traces_url(endpoint).map_err(|why| {
                ConfigError::new(format!(
                    "TROUPE_OTLP_ENDPOINT (or --otlp-endpoint) {endpoint:?}: {why}"
                ))
            });
        }
        let Some(endpoint) = &self.otlp_endpoint else {
            return Ok(None);
        };
        match traces_url(endpoint.get_ref()) {
            Ok(url) => Ok(url),
            Err(why) => check.err("telemetry.otlp_endpoint", &endpoint.span(), why),
        }
    }
}

/// The traces URL of a collector's base URL; None for an empty one (export off).
fn traces_url(endpoint: &str) -> Result<Option<String>, String> {
    let endpoint = endpoint.trim();
    if endpoint.is_empty() {
        return Ok(None);
    }
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return Err(
            "an http:// URL is needed (OTLP over HTTP, such as http://127.0.0.1:4318)".into(),
        );
    };
    if rest.is_empty() || rest.starts_with('/') || endpoint.chars().any(char::is_whitespace) {
        return Err("the URL names no host".into());
    }
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        Ok(Some(base.to_string()))
    } else {
        Ok(Some(format!("{base}/v1/traces")))
    }
}

#[cfg(test)]
mod tests {
    use super::traces_url;

    #[test]
    fn endpoints_become_traces_urls() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318").unwrap(),
            Some("http://127.0.0.1:4318/v1/traces".into())
        );
        assert_eq!(
            traces_url("http://c:4318/v1/traces/").unwrap(),
            Some("http://c:4318/v1/traces".into())
        );
        assert_eq!(traces_url("  ").unwrap(), None);
        assert!(traces_url("https://c:4318").is_err());
        assert!(traces_url("c:4318").is_err());
        assert!(traces_url("http://").is_err());
    }
}

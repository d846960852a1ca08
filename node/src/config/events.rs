//! `[events]`: the event bus.
//!
//! ```toml
//! [events]
//! max_attempts = 5              # refusals of an event by a subscriber before it goes to the
//!                               # dead letters (1..=100)
//! ```

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::check::{Checker, unwritten};

/// The most refusals that may be configured.
const MAX_ATTEMPTS: u64 = 100;

fn default_max_attempts() -> Spanned<u64> {
    unwritten(u64::from(troupe_runtime::events::bus::DEFAULT_MAX_ATTEMPTS))
}

/// `[events]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvents {
    #[serde(default = "default_max_attempts")]
    max_attempts: Spanned<u64>,
}

impl Default for RawEvents {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
        }
    }
}

impl RawEvents {
    /// The validated section: how many refusals send an event to the dead letters.
    pub(super) fn build_and_validate(&self, check: &Checker<'_>) -> Result<u32, ConfigError> {
        let n = check.positive("events.max_attempts", &self.max_attempts)?;
        if n > MAX_ATTEMPTS {
            return check.err(
                "events.max_attempts",
                &self.max_attempts.span(),
                format_args!("at most {MAX_ATTEMPTS}, got {n}"),
            );
        }
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

//! `[payments]`: the wallets.
//!
//! ```toml
//! [payments]
//! opening_balance_cents = 100000   # what a new user's wallet holds (0..=1000000000000)
//! ```

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::check::{Checker, unwritten};

/// The largest opening balance that may be configured, in cents.
const MAX_OPENING_CENTS: u64 = 1_000_000_000_000;

fn default_opening() -> Spanned<u64> {
    unwritten(troupe_actors::payments::OPENING_BALANCE_DEFAULT)
}

/// `[payments]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPayments {
    #[serde(default = "default_opening")]
    opening_balance_cents: Spanned<u64>,
}

impl Default for RawPayments {
    fn default() -> Self {
        Self {
            opening_balance_cents: default_opening(),
        }
    }
}

impl RawPayments {
    /// The validated section: a new wallet's balance, in cents.
    pub(super) fn build_and_validate(&self, check: &Checker<'_>) -> Result<u64, ConfigError> {
        let n = *self.opening_balance_cents.get_ref();
        if n > MAX_OPENING_CENTS {
            return check.err(
                "payments.opening_balance_cents",
                &self.opening_balance_cents.span(),
                format_args!("at most {MAX_OPENING_CENTS}, got {n}"),
            );
        }
        Ok(n)
    }
}

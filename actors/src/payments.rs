//! `wallets`: a wallet per user, by user id, holding integer cents that never go below zero.
//!
//! A wallet is opened once ([`Open`], idempotent), normally by the `user.created` subscription
//! with the configured opening balance ([`open_command`]). Admins [`Deposit`] into it (the edge
//! checks the role). Orders [`Charge`] it and, when they fail, [`Refund`] the charge; both are
//! idempotent by a key the caller supplies (the saga's order id and step), so a step retried
//! after a lost answer is applied once:
//!
//! - the same charge key with the same amount answers the first charge's receipt and takes
//!   nothing more; with another amount it is a [`PaymentError::KeyReused`] conflict;
//! - a charge over the balance is [`PaymentError::Declined`] (what the edge and the order saga
//!   call `payment_declined`) and changes nothing;
//! - a refund names the key of an earlier charge and gives its whole amount back, once; a key
//!   the wallet does not know is voided: nothing is given back, and a charge with it that
//!   arrives later is refused ([`PaymentError::KeyVoided`]), so a compensation that overtakes
//!   its charge never leaves money taken.
//!
//! A wallet remembers the keys of its last [`ledger::MAX_KEYS`] charges (see there for why that
//! is enough): the bound keeps every wallet's state small however long it lives.
//!
//! The plain functions that apply all this are in [`ledger`]; the commands only load, apply
//! and store.
//!
//! # Wiring the subscription
//!
//! A subscription's mapping is a plain `fn` pointer ([`troupe_runtime::entity::ToCommand`]),
//! which cannot capture the configured opening balance. The node declares a `fn` of its own
//! that reads the configured value and calls [`open_command`], for example:
//!
//! ```no_run
//! # async fn demo(runtime: &troupe_runtime::Runtime) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::OnceLock;
//! use troupe_actors::{ids::Id, payments, users};
//! use troupe_runtime::events::Event;
//!
//! static OPENING: OnceLock<u64> = OnceLock::new(); // set once from the node's configuration
//! fn open_wallet(event: &Event) -> Option<(Id, payments::Open)> {
//!     let opening = *OPENING.get().unwrap_or(&payments::OPENING_BALANCE_DEFAULT);
//!     payments::open_command(event, opening)
//! }
//! runtime.subscribe::<payments::Wallet, payments::Open>(
//!     payments::SUBSCRIPTION,
//!     users::USER_CREATED,
//!     open_wallet,
//! )?;
//! # Ok(()) }
//! ```

pub mod ledger;

use serde::{Deserialize, Serialize};
use troupe_runtime::entity::{Command, Commands, Context, DomainError, DomainKind, Entity};
use troupe_runtime::events::Event;

use crate::ids::{Id, now_ms};
use crate::users::{USER_CREATED, UserCreated};

pub use ledger::{Ledger, Receipt};

/// The opening balance of a new user's wallet unless configured otherwise, in cents.
pub const OPENING_BALANCE_DEFAULT: u64 = 100_000;
/// The name of the subscription that opens wallets on [`USER_CREATED`].
pub const SUBSCRIPTION: &str = "wallets-open";

/// What the wallets refuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PaymentError {
    /// A field is malformed or out of range.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field (`amount_cents`, `key`, `opening_balance_cents`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The wallet was never opened.
    #[error("wallet {0} does not exist")]
    NotFound(Id),
    /// The charge is more than the balance (`payment_declined`); nothing was taken.
    #[error(
        "payment declined: wallet {wallet} holds {balance_cents} cents, the charge is {amount_cents}"
    )]
    Declined {
        /// The wallet.
        wallet: Id,
        /// What it holds.
        balance_cents: u64,
        /// What was asked.
        amount_cents: u64,
    },
    /// The charge key was used before for another amount.
    #[error("key {key} was used for a charge of {amount_cents} cents, not this amount")]
    KeyReused {
        /// The key.
        key: String,
        /// The amount it was first used for.
        amount_cents: u64,
    },
    /// The key was voided by a refund before any charge with it (a compensation that overtook
    /// its charge): it can no longer charge.
    #[error("key {key} was refunded before it charged anything: it cannot charge now")]
    KeyVoided {
        /// The key.
        key: String,
    },
    /// The balance would pass [`ledger::MAX_BALANCE_CENTS`].
    #[error(
        "wallet {wallet} would hold more than {} cents",
        ledger::MAX_BALANCE_CENTS
    )]
    BalanceLimit {
        /// The wallet.
        wallet: Id,
    },
}

impl DomainError for PaymentError {
    fn kind(&self) -> DomainKind {
        match self {
            Self::Invalid { .. } => DomainKind::InvalidInput,
            Self::NotFound(_) => DomainKind::NotFound,
            Self::KeyReused { .. } | Self::KeyVoided { .. } => DomainKind::Conflict,
            Self::Declined { .. } | Self::BalanceLimit { .. } => DomainKind::Unprocessable,
        }
    }
}

/// A user's wallet: one per user id.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wallet;

impl Entity for Wallet {
    const NAME: &'static str = "wallets";
    type Id = Id;
    type State = Ledger;
    type Error = PaymentError;

    fn commands(commands: &mut Commands<Self>) {
        commands
            .add::<Open>()
            .add::<Deposit>()
            .add::<Charge>()
            .add::<Refund>()
            .add::<Balance>();
    }
}

/// Applies `apply` to a copy of the wallet's ledger and stores it if that succeeded.
fn change<T>(
    cx: &mut Context<'_, Wallet>,
    apply: impl FnOnce(&mut Ledger, &mut Context<'_, Wallet>, Id) -> Result<T, PaymentError>,
) -> Result<T, PaymentError> {
    let wallet = *cx.id();
    let mut ledger = cx.state().cloned().ok_or(PaymentError::NotFound(wallet))?;
    let before = ledger.clone();
    let answer = apply(&mut ledger, cx, wallet)?;
    // A repeat that changed nothing writes nothing.
    if ledger != before {
        cx.set(ledger);
    }
    Ok(answer)
}

/// Open the wallet with `opening_balance_cents`: answers the balance. An open wallet stays as
/// it is (the balance it holds is answered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Open {
    /// What a new wallet holds, in cents.
    pub opening_balance_cents: u64,
}

impl Command<Wallet> for Open {
    const NAME: &'static str = "open";
    const IDEMPOTENT: bool = true;
    type Reply = u64;

    fn handle(self, cx: &mut Context<'_, Wallet>) -> Result<u64, PaymentError> {
        if let Some(ledger) = cx.state() {
            return Ok(ledger.balance_cents);
        }
        let ledger = Ledger::open(self.opening_balance_cents, now_ms())?;
        let balance = ledger.balance_cents;
        cx.set(ledger);
        Ok(balance)
    }
}

/// Add `amount_cents` (> 0): answers the new balance. Not idempotent (no key): never sent
/// twice by the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deposit {
    /// How much, in cents.
    pub amount_cents: u64,
}

impl Command<Wallet> for Deposit {
    const NAME: &'static str = "deposit";
    type Reply = u64;

    fn handle(self, cx: &mut Context<'_, Wallet>) -> Result<u64, PaymentError> {
        change(cx, |ledger, _, wallet| {
            ledger.deposit(wallet, self.amount_cents)
        })
    }
}

/// Take `amount_cents` (> 0) once per `key`: see [`Ledger::charge`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    /// The caller's idempotency key (1 to [`ledger::MAX_KEY_BYTES`] bytes).
    pub key: String,
    /// How much, in cents.
    pub amount_cents: u64,
}

impl Command<Wallet> for Charge {
    const NAME: &'static str = "charge";
    const IDEMPOTENT: bool = true;
    type Reply = Receipt;

    fn handle(self, cx: &mut Context<'_, Wallet>) -> Result<Receipt, PaymentError> {
        change(cx, |ledger, book, wallet| {
            ledger.charge(book, wallet, &self.key, self.amount_cents)
        })
    }
}

/// Give back the whole of the charge made with `key`, once: see [`Ledger::refund`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    /// The key of the charge to give back.
    pub key: String,
}

impl Command<Wallet> for Refund {
    const NAME: &'static str = "refund";
    const IDEMPOTENT: bool = true;
    type Reply = Receipt;

    fn handle(self, cx: &mut Context<'_, Wallet>) -> Result<Receipt, PaymentError> {
        change(cx, |ledger, book, wallet| {
            ledger.refund(book, wallet, &self.key)
        })
    }
}

/// The balance, in cents, or [`PaymentError::NotFound`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance;

impl Command<Wallet> for Balance {
    const NAME: &'static str = "balance";
    const IDEMPOTENT: bool = true;
    type Reply = u64;

    fn handle(self, cx: &mut Context<'_, Wallet>) -> Result<u64, PaymentError> {
        cx.state()
            .map(|l| l.balance_cents)
            .ok_or(PaymentError::NotFound(*cx.id()))
    }
}

/// The command that opens the new user's wallet with `opening_balance_cents`, from a
/// [`USER_CREATED`] event; `None` for any other event (skipped).
pub fn open_command(event: &Event, opening_balance_cents: u64) -> Option<(Id, Open)> {
    if event.topic.as_str() != USER_CREATED {
        return None;
    }
    let created: UserCreated = event.decode().ok()?;
    Some((
        created.user_id,
        Open {
            opening_balance_cents,
        },
    ))
}

/// [`open_command`] with [`OPENING_BALANCE_DEFAULT`]: a mapping to subscribe as it is when the
/// opening balance is not configured.
pub fn open_on_user_created(event: &Event) -> Option<(Id, Open)> {
    open_command(event, OPENING_BALANCE_DEFAULT)
}

#[cfg(test)]
mod tests;

//! A wallet's state and the plain functions that change it: what the commands apply, kept
//! apart from the entity so that a property test can drive thousands of sequences of charges,
//! refunds and deposits without a store (the charges' records go to a [`Book`]: the wallet's
//! entries, or memory).

use serde::{Deserialize, Serialize};

use super::PaymentError;
use crate::ids::Id;
use crate::recent::{Book, Recent};

/// How many charge keys a wallet remembers: its last 10,000 charges. A key is asked again only
/// by a caller retrying a charge whose answer it lost (a saga step, which retries within
/// minutes) or refunding it (a saga's compensation, as soon as the order fails): for either to
/// find its key gone, the same wallet must have taken 10,000 other charges in between, which
/// is far beyond what one user does in minutes. Each charge is an entry of its own ([`Recent`]),
/// so the bound costs disk, not a rewrite per command.
pub const MAX_KEYS: usize = 10_000;
/// The longest charge key, in bytes (an order id with a step name fits many times over).
pub const MAX_KEY_BYTES: usize = 128;
/// The largest balance, in cents: 2^53 - 1, the largest integer a JSON client reading numbers
/// as doubles (JavaScript) still reads exactly.
pub const MAX_BALANCE_CENTS: u64 = (1 << 53) - 1;

/// What one wallet keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// What it holds, in cents: never below zero, never above [`MAX_BALANCE_CENTS`].
    pub balance_cents: u64,
    /// When it was opened, in milliseconds since the Unix epoch.
    pub opened_at_ms: u64,
    /// The counters of its last [`MAX_KEYS`] charges (see [`MAX_KEYS`] for why that is
    /// enough), each a record of its own in the wallet's [`Book`].
    charges: Recent,
}

/// The tag of the charges among the wallet's entries.
const CHARGES: u8 = b'c';

/// One applied charge, remembered by its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ChargeRecord {
    amount_cents: u64,
    /// The balance right after the charge: what a repeat of it answers.
    balance_after: u64,
    /// The balance right after its refund, once refunded.
    refunded_after: Option<u64>,
}

/// A charge or a refund, as applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The charge's key.
    pub key: String,
    /// The amount charged (or given back), in cents.
    pub amount_cents: u64,
    /// The balance right after it was applied.
    pub balance_cents: u64,
}

fn invalid(field: &str, reason: impl Into<String>) -> PaymentError {
    PaymentError::Invalid {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// `amount` if it is at least 1 cent and at most [`MAX_BALANCE_CENTS`].
fn positive(field: &str, amount: u64) -> Result<u64, PaymentError> {
    if amount == 0 {
        return Err(invalid(field, "must be greater than 0"));
    }
    if amount > MAX_BALANCE_CENTS {
        return Err(invalid(field, format!("at most {MAX_BALANCE_CENTS}")));
    }
    Ok(amount)
}

fn check_key(key: &str) -> Result<(), PaymentError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(invalid("key", format!("1 to {MAX_KEY_BYTES} bytes")));
    }
    Ok(())
}

impl Ledger {
    /// A wallet holding `opening_balance_cents` (0 allowed, at most [`MAX_BALANCE_CENTS`]).
    pub fn open(opening_balance_cents: u64, now_ms: u64) -> Result<Self, PaymentError> {
        if opening_balance_cents > MAX_BALANCE_CENTS {
            return Err(invalid(
                "opening_balance_cents",
                format!("at most {MAX_BALANCE_CENTS}"),
            ));
        }
        Ok(Self {
            balance_cents: opening_balance_cents,
            opened_at_ms: now_ms,
            charges: Recent::default(),
        })
    }

    /// How many charge keys it remembers.
    pub fn num_keys(&self) -> u64 {
        self.charges.len()
    }

    fn remember(&mut self, book: &mut impl Book, key: &str, record: ChargeRecord) {
        self.charges
            .remember(book, CHARGES, key, record, MAX_KEYS as u64);
    }

    /// Adds `amount_cents` (> 0): the new balance, or [`PaymentError::BalanceLimit`] if it
    /// would pass [`MAX_BALANCE_CENTS`].
    pub fn deposit(&mut self, wallet: Id, amount_cents: u64) -> Result<u64, PaymentError> {
        let amount = positive("amount_cents", amount_cents)?;
        let balance = self
            .balance_cents
            .checked_add(amount)
            .filter(|b| *b <= MAX_BALANCE_CENTS)
            .ok_or(PaymentError::BalanceLimit { wallet })?;
        self.balance_cents = balance;
        Ok(balance)
    }

    /// Takes `amount_cents` (> 0) once per `key`: a key seen before with the same amount
    /// answers what it answered then and takes nothing; with another amount it is
    /// [`PaymentError::KeyReused`]. More than the balance is [`PaymentError::Declined`], and
    /// nothing is taken or remembered (the same key may be charged again later).
    pub fn charge(
        &mut self,
        book: &mut impl Book,
        wallet: Id,
        key: &str,
        amount_cents: u64,
    ) -> Result<Receipt, PaymentError> {
        check_key(key)?;
        let amount = positive("amount_cents", amount_cents)?;
        if let Some(seen) = Recent::get::<ChargeRecord>(book, CHARGES, key) {
            if seen.amount_cents == 0 {
                return Err(PaymentError::KeyVoided {
                    key: key.to_string(),
                });
            }
            if seen.amount_cents != amount {
                return Err(PaymentError::KeyReused {
                    key: key.to_string(),
                    amount_cents: seen.amount_cents,
                });
            }
            return Ok(Receipt {
                key: key.to_string(),
                amount_cents: amount,
                balance_cents: seen.balance_after,
            });
        }
        let Some(balance) = self.balance_cents.checked_sub(amount) else {
            return Err(PaymentError::Declined {
                wallet,
                balance_cents: self.balance_cents,
                amount_cents: amount,
            });
        };
        self.balance_cents = balance;
        self.remember(
            book,
            key,
            ChargeRecord {
                amount_cents: amount,
                balance_after: balance,
                refunded_after: None,
            },
        );
        Ok(Receipt {
            key: key.to_string(),
            amount_cents: amount,
            balance_cents: balance,
        })
    }

    /// Gives back the whole of charge `key`, once: a repeat answers what the first refund
    /// answered. A key it does not remember is voided: nothing is given back (amount 0) and a
    /// later charge with it is [`PaymentError::KeyVoided`].
    pub fn refund(
        &mut self,
        book: &mut impl Book,
        wallet: Id,
        key: &str,
    ) -> Result<Receipt, PaymentError> {
        check_key(key)?;
        let Some(mut seen) = Recent::get::<ChargeRecord>(book, CHARGES, key) else {
            let balance = self.balance_cents;
            self.remember(
                book,
                key,
                ChargeRecord {
                    amount_cents: 0,
                    balance_after: balance,
                    refunded_after: Some(balance),
                },
            );
            return Ok(Receipt {
                key: key.to_string(),
                amount_cents: 0,
                balance_cents: self.balance_cents,
            });
        };
        let amount = seen.amount_cents;
        if let Some(after) = seen.refunded_after {
            return Ok(Receipt {
                key: key.to_string(),
                amount_cents: amount,
                balance_cents: after,
            });
        }
        let balance = self
            .balance_cents
            .checked_add(amount)
            .filter(|b| *b <= MAX_BALANCE_CENTS)
            .ok_or(PaymentError::BalanceLimit { wallet })?;
        self.balance_cents = balance;
        seen.refunded_after = Some(balance);
        Recent::update(book, CHARGES, key, seen);
        Ok(Receipt {
            key: key.to_string(),
            amount_cents: amount,
            balance_cents: balance,
        })
    }
}

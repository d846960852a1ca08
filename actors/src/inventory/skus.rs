//! `product-skus`: the uniqueness index of skus, one entity per sku, holding the product id
//! that owns it.
//!
//! Creating a product is three steps at the edge: [`ReserveSku`] (the sku for this product
//! id; a sku held by another product is a conflict), `Create` at the product, then
//! [`Confirm`]; if the creation fails, [`ReleaseSku`]. Each is idempotent for the same product
//! id, so any step may be sent again. A reservation that was never confirmed (the edge died
//! between the steps) stops blocking the sku after [`STALE_PENDING_MS`]: another product may
//! then take it over.

use serde::{Deserialize, Serialize};
use troupe_runtime::entity::{Command, Commands, Context, DomainError, DomainKind, Entity};

use super::validate_sku;
use crate::ids::{Id, now_ms};

/// How long an unconfirmed sku reservation blocks other products.
pub const STALE_PENDING_MS: u64 = 60_000;

/// The sku index entity, by sku.
#[derive(Debug, Clone, Copy, Default)]
pub struct Skus;

/// Who holds a sku.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuEntry {
    /// The product.
    pub product_id: Id,
    /// Whether the product was created (else the sku is only reserved).
    pub confirmed: bool,
    /// When it was reserved, in milliseconds since the Unix epoch.
    pub reserved_at_ms: u64,
}

impl SkuEntry {
    /// Whether another product may take the sku over at `now_ms`: only an unconfirmed
    /// reservation older than [`STALE_PENDING_MS`].
    pub fn taken_over_at(&self, now_ms: u64) -> bool {
        !self.confirmed && now_ms.saturating_sub(self.reserved_at_ms) >= STALE_PENDING_MS
    }
}

/// What the sku index refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum SkuError {
    /// The sku is malformed (400).
    #[error("sku: {0}")]
    Invalid(String),
    /// Another product holds the sku (409).
    #[error("sku {sku:?} belongs to product {product_id}")]
    Taken {
        /// The sku.
        sku: String,
        /// Who holds it.
        product_id: Id,
    },
    /// Nothing holds the sku for this product (404).
    #[error("sku {sku:?} is not reserved for product {product_id}")]
    NotReserved {
        /// The sku.
        sku: String,
        /// The product that asked.
        product_id: Id,
    },
}

impl DomainError for SkuError {
    fn kind(&self) -> DomainKind {
        match self {
            Self::Invalid(_) => DomainKind::InvalidInput,
            Self::Taken { .. } => DomainKind::Conflict,
            Self::NotReserved { .. } => DomainKind::NotFound,
        }
    }
}

impl Entity for Skus {
    const NAME: &'static str = "product-skus";
    type Id = String;
    type State = SkuEntry;
    type Error = SkuError;

    fn commands(commands: &mut Commands<Self>) {
        commands
            .add::<ReserveSku>()
            .add::<ReleaseSku>()
            .add::<Confirm>()
            .add::<Lookup>();
    }
}

fn check(sku: &str) -> Result<(), SkuError> {
    validate_sku(sku).map_err(|e| SkuError::Invalid(e.to_string()))
}

/// Reserve the sku for `product_id`: idempotent for the same product, a conflict for
/// another (unless its reservation is unconfirmed and stale). Answers the entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveSku {
    /// The product that wants the sku.
    pub product_id: Id,
}

impl Command<Skus> for ReserveSku {
    const NAME: &'static str = "reserve";
    const IDEMPOTENT: bool = true;
    type Reply = SkuEntry;

    fn handle(self, cx: &mut Context<'_, Skus>) -> Result<SkuEntry, SkuError> {
        check(cx.id())?;
        let now = now_ms();
        match cx.state().copied() {
            Some(entry) if entry.product_id == self.product_id => Ok(entry),
            Some(entry) if !entry.taken_over_at(now) => Err(SkuError::Taken {
                sku: cx.id().clone(),
                product_id: entry.product_id,
            }),
            _ => {
                let entry = SkuEntry {
                    product_id: self.product_id,
                    confirmed: false,
                    reserved_at_ms: now,
                };
                cx.set(entry);
                Ok(entry)
            }
        }
    }
}

/// Give the sku up if `product_id` holds it unconfirmed (its creation failed); a no-op
/// otherwise (idempotent; a confirmed sku stays with its product).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseSku {
    /// The product that reserved it.
    pub product_id: Id,
}

impl Command<Skus> for ReleaseSku {
    const NAME: &'static str = "release";
    const IDEMPOTENT: bool = true;
    type Reply = ();

    fn handle(self, cx: &mut Context<'_, Skus>) -> Result<(), SkuError> {
        check(cx.id())?;
        if let Some(entry) = cx.state()
            && entry.product_id == self.product_id
            && !entry.confirmed
        {
            cx.remove();
        }
        Ok(())
    }
}

/// The product was created: the sku is its for good. Idempotent; answers the entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirm {
    /// The product that reserved it.
    pub product_id: Id,
}

impl Command<Skus> for Confirm {
    const NAME: &'static str = "confirm";
    const IDEMPOTENT: bool = true;
    type Reply = SkuEntry;

    fn handle(self, cx: &mut Context<'_, Skus>) -> Result<SkuEntry, SkuError> {
        check(cx.id())?;
        match cx.state().copied() {
            Some(entry) if entry.product_id == self.product_id => {
                if !entry.confirmed {
                    let confirmed = SkuEntry {
                        confirmed: true,
                        ..entry
                    };
                    cx.set(confirmed);
                    return Ok(confirmed);
                }
                Ok(entry)
            }
            _ => Err(SkuError::NotReserved {
                sku: cx.id().clone(),
                product_id: self.product_id,
            }),
        }
    }
}

/// Who holds the sku, if anyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lookup;

impl Command<Skus> for Lookup {
    const NAME: &'static str = "lookup";
    const IDEMPOTENT: bool = true;
    type Reply = Option<SkuEntry>;

    fn handle(self, cx: &mut Context<'_, Skus>) -> Result<Option<SkuEntry>, SkuError> {
        check(cx.id())?;
        Ok(cx.state().copied())
    }
}

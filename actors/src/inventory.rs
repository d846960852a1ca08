//! `products`: the catalogue and its stock, one entity per product id, and `product-skus`
//! ([`Skus`]), the index that keeps each sku unique across the cluster.
//!
//! A product's `stock` is what is available to reserve now. The order saga takes stock with
//! [`Reserve`] under a key of its own choosing (the saga id and the step), gives it back with
//! [`Release`] when it compensates, and makes it final with [`Commit`] when the order is
//! confirmed. Every one of the three is idempotent by its key, so a step the saga sends again
//! after a timeout has no second effect:
//!
//! - `Reserve` of a key already held with the same quantity answers as the first did; with
//!   another quantity it is a [`InventoryError::KeyReused`] conflict. Stock never goes below
//!   zero: a reservation it cannot cover is [`InventoryError::OutOfStock`] (422) and takes
//!   nothing.
//! - `Release` of a held key returns its quantity to stock, once; releasing it again, or a
//!   key this product never saw, is a no-op answering 0 (so compensation is always safe to
//!   repeat). A key released before it was ever reserved (the reserve still in flight when
//!   the saga gave up) is remembered as released, and the late `Reserve` is refused with
//!   [`InventoryError::KeyReleased`] instead of taking stock no one will give back.
//! - `Commit` of a held key makes it final (the units are sold); again is a no-op.
//!
//! Bounds: a product keeps at most [`MAX_OPEN_RESERVATIONS`] held reservations (beyond that,
//! `Reserve` is [`InventoryError::TooManyReservations`], 503: try later) and the newest
//! [`MAX_SETTLED_RESERVATIONS`] settled (released or committed) ones, dropping the oldest
//! settled first. A key whose settled record was dropped is unknown again: a saga's resend
//! comes within its step deadline, long before ten thousand later reservations push it out.
//!
//! Each reservation is an entry of its own beside the product's state ([`Recent`]): a
//! command reads and writes the few records it touches, never the product's whole history.
//!
//! ```no_run
//! # async fn demo(runtime: &troupe_runtime::Runtime) -> Result<(), Box<dyn std::error::Error>> {
//! use troupe_actors::ids::Id;
//! use troupe_actors::inventory::{Create, Product, Reserve};
//!
//! let id = Id::new();
//! let product = runtime.entity::<Product>(id);
//! product
//!     .ask(Create { sku: "tea-1".into(), name: "Tea".into(), price_cents: 450, stock: 10 })
//!     .await?;
//! let held = product.ask(Reserve { key: "saga-1/reserve-0".into(), quantity: 2 }).await?;
//! assert_eq!(held.stock, 8);
//! # Ok(()) }
//! ```

mod reservations;
mod skus;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use troupe_runtime::entity::{Command, Commands, Context, DomainError, DomainKind, Entity};

use crate::ids::{Id, now_ms};
use crate::recent::Recent;

pub use reservations::{Commit, Release, Reserve, Reserved};
pub use skus::{
    Confirm, Lookup, ReleaseSku, ReserveSku, STALE_PENDING_MS, SkuEntry, SkuError, Skus,
};

/// The longest sku, in characters (`[A-Za-z0-9_-]`).
pub const MAX_SKU_CHARS: usize = 64;
/// The longest product name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The highest price, in cents: the largest integer every JSON client reads exactly (2^53 - 1,
/// as for wallet balances), so that a total of many items still fits in a `u64`.
pub const MAX_PRICE_CENTS: u64 = (1 << 53) - 1;
/// The most units a product can hold in stock (and the most one command can add or take).
pub const MAX_STOCK: u64 = 1_000_000_000;
/// The longest reservation key, in bytes.
pub const MAX_KEY_BYTES: usize = 200;
/// The most reservations a product holds open at once.
pub const MAX_OPEN_RESERVATIONS: usize = 10_000;
/// The most settled (released or committed) reservations a product remembers.
pub const MAX_SETTLED_RESERVATIONS: usize = 10_000;

/// The product entity, by product id.
#[derive(Debug, Clone, Copy, Default)]
pub struct Product;

/// What a product keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductState {
    /// Its sku, unique across the cluster (see [`Skus`]).
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Its price in cents (> 0).
    pub price_cents: u64,
    /// The units available to reserve now.
    pub stock: u64,
    /// The reservations it holds open now (each an entry of its own, with the settled ones
    /// it remembers, by key and by the order they settled).
    pub open: u64,
    /// The counters of the settled reservations it remembers.
    pub settled: Recent,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

/// One reservation by key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The units it took (0 for a key released before it was reserved).
    pub quantity: u64,
    /// Where it stands.
    pub status: ReservationStatus,
}

/// Where a reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReservationStatus {
    /// It holds its units out of stock.
    Held,
    /// Its units went back to stock (or it was released before it was reserved).
    Released,
    /// Its units are sold.
    Committed,
}

/// A product as callers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductView {
    /// Its id.
    pub id: Id,
    /// Its sku.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Its price in cents.
    pub price_cents: u64,
    /// The units available to reserve now.
    pub stock: u64,
}

impl ProductView {
    /// The view of product `id` in `state`.
    pub fn of(id: Id, state: &ProductState) -> Self {
        Self {
            id,
            sku: state.sku.clone(),
            name: state.name.clone(),
            price_cents: state.price_cents,
            stock: state.stock,
        }
    }
}

/// What inventory refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum InventoryError {
    /// A field is malformed or out of range (400).
    #[error("{field}: {why}")]
    Invalid {
        /// The field.
        field: String,
        /// What is wrong with it.
        why: String,
    },
    /// Well-formed but impossible: a zero price or quantity (422).
    #[error("{field}: {why}")]
    Unprocessable {
        /// The field.
        field: String,
        /// What is wrong with it.
        why: String,
    },
    /// No such product (404).
    #[error("product {0} does not exist")]
    NotFound(Id),
    /// A product with this id exists already (409).
    #[error("product {0} already exists")]
    AlreadyExists(Id),
    /// Not enough stock for the reservation (422); nothing was taken.
    #[error("product {product} has {available} in stock, {requested} requested")]
    OutOfStock {
        /// The product.
        product: Id,
        /// What it has.
        available: u64,
        /// What was asked.
        requested: u64,
    },
    /// The key was used before with another quantity (409).
    #[error("reservation key {key:?} of product {product} was used for {quantity} units")]
    KeyReused {
        /// The product.
        product: Id,
        /// The key.
        key: String,
        /// The quantity it holds.
        quantity: u64,
    },
    /// The key was released already and cannot reserve again (409).
    #[error("reservation key {key:?} of product {product} was released")]
    KeyReleased {
        /// The product.
        product: Id,
        /// The key.
        key: String,
    },
    /// The reservation was committed and cannot be released (409).
    #[error("reservation key {key:?} of product {product} is committed")]
    KeyCommitted {
        /// The product.
        product: Id,
        /// The key.
        key: String,
    },
    /// No reservation with this key to commit (404).
    #[error("product {product} has no reservation {key:?}")]
    NoReservation {
        /// The product.
        product: Id,
        /// The key.
        key: String,
    },
    /// The product holds too many open reservations; try later (503).
    #[error("product {0} holds {MAX_OPEN_RESERVATIONS} open reservations")]
    TooManyReservations(Id),
}

impl DomainError for InventoryError {
    fn kind(&self) -> DomainKind {
        match self {
            Self::Invalid { .. } => DomainKind::InvalidInput,
            Self::Unprocessable { .. } | Self::OutOfStock { .. } => DomainKind::Unprocessable,
            Self::NotFound(_) | Self::NoReservation { .. } => DomainKind::NotFound,
            Self::AlreadyExists(_)
            | Self::KeyReused { .. }
            | Self::KeyReleased { .. }
            | Self::KeyCommitted { .. } => DomainKind::Conflict,
            Self::TooManyReservations(_) => DomainKind::Unavailable,
        }
    }
}

fn invalid(field: &str, why: impl Into<String>) -> InventoryError {
    InventoryError::Invalid {
        field: field.to_string(),
        why: why.into(),
    }
}

fn unprocessable(field: &str, why: impl Into<String>) -> InventoryError {
    InventoryError::Unprocessable {
        field: field.to_string(),
        why: why.into(),
    }
}

/// Checks a sku: 1 to [`MAX_SKU_CHARS`] of `[A-Za-z0-9_-]`.
pub fn validate_sku(sku: &str) -> Result<(), InventoryError> {
    if sku.is_empty() || sku.len() > MAX_SKU_CHARS {
        return Err(invalid("sku", format!("1 to {MAX_SKU_CHARS} characters")));
    }
    if !sku
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(invalid("sku", "only letters, digits, '-' and '_'"));
    }
    Ok(())
}

/// Checks a price: more than 0 (else unprocessable), at most [`MAX_PRICE_CENTS`].
pub fn validate_price(price_cents: u64) -> Result<(), InventoryError> {
    if price_cents == 0 {
        return Err(unprocessable("price_cents", "must be more than 0"));
    }
    if price_cents > MAX_PRICE_CENTS {
        return Err(invalid("price_cents", format!("at most {MAX_PRICE_CENTS}")));
    }
    Ok(())
}

/// A product name trimmed, if it is 1 to [`MAX_NAME_CHARS`] characters with no control
/// characters and something visible: the rule of users' names
/// ([`crate::users::normalize_name`]), with its own length.
pub fn normalize_name(raw: &str) -> Result<String, InventoryError> {
    crate::users::display_name(raw, MAX_NAME_CHARS).map_err(|why| invalid("name", why))
}

fn validate_quantity(field: &str, quantity: u64) -> Result<(), InventoryError> {
    if quantity == 0 {
        return Err(unprocessable(field, "must be more than 0"));
    }
    if quantity > MAX_STOCK {
        return Err(invalid(field, format!("at most {MAX_STOCK}")));
    }
    Ok(())
}

fn validate_key(key: &str) -> Result<(), InventoryError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(invalid("key", format!("1 to {MAX_KEY_BYTES} bytes")));
    }
    Ok(())
}

impl Entity for Product {
    const NAME: &'static str = "products";
    type Id = Id;
    type State = ProductState;
    type Error = InventoryError;

    fn commands(commands: &mut Commands<Self>) {
        commands
            .add::<Create>()
            .add::<Get>()
            .add::<Restock>()
            .add::<Reserve>()
            .add::<Release>()
            .add::<Commit>();
    }
}

fn existing<'c>(cx: &'c mut Context<'_, Product>) -> Result<&'c mut ProductState, InventoryError> {
    let id = *cx.id();
    if cx.state().is_none() {
        return Err(InventoryError::NotFound(id));
    }
    cx.state_mut().ok_or(InventoryError::NotFound(id))
}

/// Create the product (its sku reserved in [`Skus`] first): answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Create {
    /// 1 to 64 of `[A-Za-z0-9_-]`.
    pub sku: String,
    /// 1 to 200 characters, trimmed here ([`normalize_name`]).
    pub name: String,
    /// More than 0, at most [`MAX_PRICE_CENTS`].
    pub price_cents: u64,
    /// Units available at first (0 allowed).
    pub stock: u64,
}

impl Command<Product> for Create {
    const NAME: &'static str = "create";
    type Reply = ProductView;

    fn handle(self, cx: &mut Context<'_, Product>) -> Result<ProductView, InventoryError> {
        validate_sku(&self.sku)?;
        let name = normalize_name(&self.name)?;
        validate_price(self.price_cents)?;
        if self.stock > MAX_STOCK {
            return Err(invalid("stock", format!("at most {MAX_STOCK}")));
        }
        if cx.state().is_some() {
            return Err(InventoryError::AlreadyExists(*cx.id()));
        }
        let state = ProductState {
            sku: self.sku,
            name,
            price_cents: self.price_cents,
            stock: self.stock,
            open: 0,
            settled: Recent::default(),
            created_at_ms: now_ms(),
        };
        let view = ProductView::of(*cx.id(), &state);
        cx.set(state);
        Ok(view)
    }
}

/// The product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Get;

impl Command<Product> for Get {
    const NAME: &'static str = "get";
    const IDEMPOTENT: bool = true;
    type Reply = ProductView;

    fn handle(self, cx: &mut Context<'_, Product>) -> Result<ProductView, InventoryError> {
        let id = *cx.id();
        cx.state()
            .map(|s| ProductView::of(id, s))
            .ok_or(InventoryError::NotFound(id))
    }
}

/// Add `quantity` (> 0) units to stock: answers the product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restock {
    /// More than 0.
    pub quantity: u64,
}

impl Command<Product> for Restock {
    const NAME: &'static str = "restock";
    type Reply = ProductView;

    fn handle(self, cx: &mut Context<'_, Product>) -> Result<ProductView, InventoryError> {
        validate_quantity("quantity", self.quantity)?;
        let id = *cx.id();
        let state = existing(cx)?;
        let stock = state.stock + self.quantity;
        if stock > MAX_STOCK {
            return Err(unprocessable(
                "quantity",
                format!("stock would exceed {MAX_STOCK}"),
            ));
        }
        state.stock = stock;
        Ok(ProductView::of(id, state))
    }
}

//! Reservations of a product's stock by key: [`Reserve`], [`Release`], [`Commit`] (see the
//! parent module's docs for what each promises and the bounds).

use serde::{Deserialize, Serialize};
use troupe_runtime::entity::{Command, Context};

use super::{
    InventoryError, MAX_OPEN_RESERVATIONS, MAX_SETTLED_RESERVATIONS, Product, ProductState,
    Reservation, ReservationStatus, existing, validate_key, validate_quantity,
};
use crate::recent::Recent;

/// What a reservation answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reserved {
    /// The units held under the key.
    pub quantity: u64,
    /// The product's price in cents, now.
    pub price_cents: u64,
    /// The stock left to reserve.
    pub stock: u64,
}

/// Hold `quantity` units under `key` (idempotent by key: see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reserve {
    /// The caller's key (the saga id and step), 1 to 200 bytes.
    pub key: String,
    /// More than 0.
    pub quantity: u64,
}

impl Command<Product> for Reserve {
    const NAME: &'static str = "reserve";
    const IDEMPOTENT: bool = true;
    type Reply = Reserved;

    fn handle(self, cx: &mut Context<'_, Product>) -> Result<Reserved, InventoryError> {
        validate_key(&self.key)?;
        validate_quantity("quantity", self.quantity)?;
        let product = *cx.id();
        let state = cx.state().ok_or(InventoryError::NotFound(product))?;
        let reply = |state: &ProductState| Reserved {
            quantity: self.quantity,
            price_cents: state.price_cents,
            stock: state.stock,
        };
        if let Some(held) = reservation(cx, &self.key) {
            return match held.status {
                ReservationStatus::Released => Err(InventoryError::KeyReleased {
                    product,
                    key: self.key,
                }),
                _ if held.quantity != self.quantity => Err(InventoryError::KeyReused {
                    product,
                    key: self.key,
                    quantity: held.quantity,
                }),
                // The same reservation again: nothing changes.
                _ => Ok(reply(state)),
            };
        }
        if state.stock < self.quantity {
            return Err(InventoryError::OutOfStock {
                product,
                available: state.stock,
                requested: self.quantity,
            });
        }
        if state.open >= MAX_OPEN_RESERVATIONS as u64 {
            return Err(InventoryError::TooManyReservations(product));
        }
        let state = existing(cx)?;
        state.stock -= self.quantity;
        state.open += 1;
        let reply = reply(state);
        let held = Reservation {
            quantity: self.quantity,
            status: ReservationStatus::Held,
        };
        Recent::hold(cx, RESERVATIONS, &self.key, held);
        Ok(reply)
    }
}

/// Give back what `key` holds (idempotent; an unknown key is remembered as released):
/// answers the units returned to stock by this command (0 when nothing was held).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The key the units were reserved under.
    pub key: String,
}

impl Command<Product> for Release {
    const NAME: &'static str = "release";
    const IDEMPOTENT: bool = true;
    type Reply = u64;

    fn handle(self, cx: &mut Context<'_, Product>) -> Result<u64, InventoryError> {
        validate_key(&self.key)?;
        let product = *cx.id();
        cx.state().ok_or(InventoryError::NotFound(product))?;
        let held = reservation(cx, &self.key);
        match held.map(|r| r.status) {
            Some(ReservationStatus::Released) => return Ok(0),
            Some(ReservationStatus::Committed) => {
                return Err(InventoryError::KeyCommitted {
                    product,
                    key: self.key,
                });
            }
            Some(ReservationStatus::Held) | None => {}
        }
        // An unknown key is remembered as released, holding nothing.
        let returned = held.map_or(0, |r| r.quantity);
        let state = existing(cx)?;
        state.stock += returned;
        if held.is_some() {
            state.open = state.open.saturating_sub(1);
        }
        settle(cx, self.key, returned, ReservationStatus::Released)?;
        Ok(returned)
    }
}

/// Make what `key` holds final (the order is confirmed): idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// The key the units were reserved under.
    pub key: String,
}

impl Command<Product> for Commit {
    const NAME: &'static str = "commit";
    const IDEMPOTENT: bool = true;
    type Reply = ();

    fn handle(self, cx: &mut Context<'_, Product>) -> Result<(), InventoryError> {
        validate_key(&self.key)?;
        let product = *cx.id();
        cx.state().ok_or(InventoryError::NotFound(product))?;
        let held = reservation(cx, &self.key);
        match held.map(|r| (r.status, r.quantity)) {
            Some((ReservationStatus::Committed, _)) => Ok(()),
            Some((ReservationStatus::Released, _)) => Err(InventoryError::KeyReleased {
                product,
                key: self.key,
            }),
            None => Err(InventoryError::NoReservation {
                product,
                key: self.key,
            }),
            Some((ReservationStatus::Held, quantity)) => {
                let state = existing(cx)?;
                state.open = state.open.saturating_sub(1);
                settle(cx, self.key, quantity, ReservationStatus::Committed)
            }
        }
    }
}

/// The tag of the reservations among the product's entries.
const RESERVATIONS: u8 = b'r';

/// Reservation `key`, if the product remembers it.
fn reservation(cx: &Context<'_, Product>, key: &str) -> Option<Reservation> {
    Recent::get(cx, RESERVATIONS, key)
}

/// Records `key` as settled with `status`, the newest of the settled reservations the
/// product remembers (the oldest beyond [`MAX_SETTLED_RESERVATIONS`] are forgotten).
fn settle(
    cx: &mut Context<'_, Product>,
    key: String,
    quantity: u64,
    status: ReservationStatus,
) -> Result<(), InventoryError> {
    let mut settled = existing(cx)?.settled;
    settled.remember(
        cx,
        RESERVATIONS,
        &key,
        Reservation { quantity, status },
        MAX_SETTLED_RESERVATIONS as u64,
    );
    existing(cx)?.settled = settled;
    Ok(())
}

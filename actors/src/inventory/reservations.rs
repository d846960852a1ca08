//! Reservations of a product's stock by key: [`Reserve`], [`Release`], [`Commit`] (see the
//! parent module's docs for what each promises and the bounds).

use serde::{Deserialize, Serialize};
use troupe_runtime::entity::{Command, Context};

use super::{
    InventoryError, MAX_OPEN_RESERVATIONS, MAX_SETTLED_RESERVATIONS, Product, ProductState,
    Reservation, ReservationStatus, existing, validate_key, validate_quantity,
};

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
        if let Some(held) = state.reservations.get(&self.key) {
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
        let open = state
            .reservations
            .values()
            .filter(|r| r.status == ReservationStatus::Held)
            .count();
        if open >= MAX_OPEN_RESERVATIONS {
            return Err(InventoryError::TooManyReservations(product));
        }
        let state = existing(cx)?;
        state.stock -= self.quantity;
        let seq = state.next_seq;
        state.next_seq += 1;
        state.reservations.insert(
            self.key.clone(),
            Reservation {
                quantity: self.quantity,
                status: ReservationStatus::Held,
                seq,
            },
        );
        Ok(reply(state))
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
        let state = cx.state().ok_or(InventoryError::NotFound(product))?;
        match state.reservations.get(&self.key).map(|r| r.status) {
            Some(ReservationStatus::Released) => return Ok(0),
            Some(ReservationStatus::Committed) => {
                return Err(InventoryError::KeyCommitted {
                    product,
                    key: self.key,
                });
            }
            Some(ReservationStatus::Held) | None => {}
        }
        let state = existing(cx)?;
        let seq = state.next_seq;
        state.next_seq += 1;
        let entry = state.reservations.entry(self.key).or_insert(Reservation {
            quantity: 0,
            status: ReservationStatus::Held,
            seq,
        });
        let returned = entry.quantity;
        entry.status = ReservationStatus::Released;
        entry.seq = seq;
        state.stock += returned;
        prune(state);
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
        let state = cx.state().ok_or(InventoryError::NotFound(product))?;
        match state.reservations.get(&self.key).map(|r| r.status) {
            Some(ReservationStatus::Committed) => Ok(()),
            Some(ReservationStatus::Released) => Err(InventoryError::KeyReleased {
                product,
                key: self.key,
            }),
            None => Err(InventoryError::NoReservation {
                product,
                key: self.key,
            }),
            Some(ReservationStatus::Held) => {
                let state = existing(cx)?;
                let seq = state.next_seq;
                state.next_seq += 1;
                if let Some(entry) = state.reservations.get_mut(&self.key) {
                    entry.status = ReservationStatus::Committed;
                    entry.seq = seq;
                }
                prune(state);
                Ok(())
            }
        }
    }
}

/// Drops the oldest settled reservations beyond [`MAX_SETTLED_RESERVATIONS`].
fn prune(state: &mut ProductState) {
    let mut settled: Vec<(u64, String)> = state
        .reservations
        .iter()
        .filter(|(_, r)| r.status != ReservationStatus::Held)
        .map(|(k, r)| (r.seq, k.clone()))
        .collect();
    if settled.len() <= MAX_SETTLED_RESERVATIONS {
        return;
    }
    settled.sort_unstable();
    let excess = settled.len() - MAX_SETTLED_RESERVATIONS;
    for (_, key) in settled.into_iter().take(excess) {
        state.reservations.remove(&key);
    }
}

//! `user-emails`: the index that keeps each email address to one user, across the cluster.
//!
//! Its id is the normalized address itself ([`super::normalize_email`]), so every command
//! about one address goes to the one shard that owns it, which decides in order. An address
//! is free (no state), reserved by a user id, or confirmed (its user exists). See the
//! registration protocol in [`super`]: reserve, create the user, confirm (or release if the
//! creation was refused).
//!
//! Every command is idempotent (asking twice does what asking once does), so a lost answer
//! can be asked again.
//!
//! # A registration that never finished
//!
//! If a node reserves an address and then cannot learn whether its user was created (the
//! user's shard down, every retry timed out), it must neither release the address (the user
//! may exist) nor confirm it, so the reservation stays unconfirmed and blocks the address. The
//! next registration of that address repairs it: when [`Reserve`] answers
//! [`UserError::EmailTaken`], the node reads the reservation ([`Holder`]); if it is unconfirmed
//! and older than [`RECLAIM_AFTER_MS`], it asks the holder's user entity whether it exists:
//!
//! - it exists: the node [`Confirm`]s the reservation for it (what the first registration
//!   could not finish) and answers 409;
//! - it does not: the node [`Reclaim`]s the address for the new user and goes on registering.
//!
//! The node must stop retrying a registration's `Create` well within [`RECLAIM_AFTER_MS`], so
//! that no `Create` of the old user can still arrive after its reservation was reclaimed.

use serde::{Deserialize, Serialize};
use troupe_runtime::entity::{Command, Commands, Context, Entity};

use super::{UserError, normalize_email};
use crate::ids::{Id, now_ms};

/// How old an unconfirmed reservation must be before [`Reclaim`] may take it over: far
/// longer than a registration's retries of `Create` may take (each ask has a deadline of
/// seconds).
pub const RECLAIM_AFTER_MS: u64 = 5 * 60 * 1000;

/// The email index: one entity per normalized address.
#[derive(Debug, Clone, Copy, Default)]
pub struct Emails;

/// Who holds an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The user it is reserved for.
    pub user_id: Id,
    /// Whether that user was created (then it is never released).
    pub confirmed: bool,
    /// When it was reserved, in milliseconds since the Unix epoch (to tell a stale
    /// reservation, whose registration never finished, from a fresh one).
    pub reserved_at_ms: u64,
}

impl Entity for Emails {
    const NAME: &'static str = "user-emails";
    type Id = String;
    type State = Reservation;
    type Error = UserError;

    fn commands(commands: &mut Commands<Self>) {
        commands
            .add::<Reserve>()
            .add::<Confirm>()
            .add::<Release>()
            .add::<Lookup>()
            .add::<Holder>()
            .add::<Reclaim>();
    }
}

/// The entity's id, if it is a normalized address (the node keys the index by
/// [`normalize_email`]; anything else is refused rather than indexed under a second spelling).
fn address(cx: &Context<'_, Emails>) -> Result<String, UserError> {
    let email = normalize_email(cx.id())?;
    if &email != cx.id() {
        return Err(UserError::Invalid {
            field: "email".into(),
            reason: "the index is keyed by the normalized address".into(),
        });
    }
    Ok(email)
}

/// Reserve the address for `user_id`: done if it is free or already reserved (or confirmed)
/// for the same user; [`UserError::EmailTaken`] if another user holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reserve {
    /// The user registering with this address.
    pub user_id: Id,
}

impl Command<Emails> for Reserve {
    const NAME: &'static str = "reserve";
    const IDEMPOTENT: bool = true;
    type Reply = ();

    fn handle(self, cx: &mut Context<'_, Emails>) -> Result<(), UserError> {
        let email = address(cx)?;
        match cx.state() {
            Some(held) if held.user_id == self.user_id => Ok(()),
            Some(_) => Err(UserError::EmailTaken(email)),
            None => {
                cx.set(Reservation {
                    user_id: self.user_id,
                    confirmed: false,
                    reserved_at_ms: now_ms(),
                });
                Ok(())
            }
        }
    }
}

/// Mark `user_id`'s reservation confirmed (its user was created): from then on it cannot be
/// released. Done again if already confirmed; [`UserError::EmailNotReserved`] if the address is
/// free, [`UserError::EmailTaken`] if another user holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirm {
    /// The user that holds the reservation.
    pub user_id: Id,
}

impl Command<Emails> for Confirm {
    const NAME: &'static str = "confirm";
    const IDEMPOTENT: bool = true;
    type Reply = ();

    fn handle(self, cx: &mut Context<'_, Emails>) -> Result<(), UserError> {
        let email = address(cx)?;
        match cx.state_mut() {
            Some(held) if held.user_id == self.user_id => {
                held.confirmed = true;
                Ok(())
            }
            Some(_) => Err(UserError::EmailTaken(email)),
            None => Err(UserError::EmailNotReserved(email)),
        }
    }
}

/// Free the address if `user_id` holds it unconfirmed (its registration failed). Nothing to do
/// if the address is free or held by another user (a release asked again after the address
/// was taken by someone else must not disturb them); [`UserError::EmailConfirmed`] if
/// `user_id` holds it confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The user whose reservation to drop.
    pub user_id: Id,
}

impl Command<Emails> for Release {
    const NAME: &'static str = "release";
    const IDEMPOTENT: bool = true;
    type Reply = ();

    fn handle(self, cx: &mut Context<'_, Emails>) -> Result<(), UserError> {
        let email = address(cx)?;
        match cx.state() {
            Some(held) if held.user_id == self.user_id && held.confirmed => {
                Err(UserError::EmailConfirmed(email))
            }
            Some(held) if held.user_id == self.user_id => {
                cx.remove();
                Ok(())
            }
            Some(_) | None => Ok(()),
        }
    }
}

/// The user that holds the address (confirmed or not), for login; `None` if it is free. A
/// reservation whose user was never created answers its id too: asking that user for its
/// credentials then finds no one, which login treats as a wrong email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lookup;

impl Command<Emails> for Lookup {
    const NAME: &'static str = "lookup";
    const IDEMPOTENT: bool = true;
    type Reply = Option<Id>;

    fn handle(self, cx: &mut Context<'_, Emails>) -> Result<Option<Id>, UserError> {
        Ok(cx.state().map(|held| held.user_id))
    }
}

/// The reservation of the address, if any (for the repair in the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder;

impl Command<Emails> for Holder {
    const NAME: &'static str = "holder";
    const IDEMPOTENT: bool = true;
    type Reply = Option<Reservation>;

    fn handle(self, cx: &mut Context<'_, Emails>) -> Result<Option<Reservation>, UserError> {
        Ok(cx.state().cloned())
    }
}

impl Reservation {
    /// Whether [`Reclaim`] may take it over at `now_ms`: unconfirmed and reserved at least
    /// [`RECLAIM_AFTER_MS`] before.
    pub fn is_reclaimable(&self, now_ms: u64) -> bool {
        !self.confirmed && now_ms.saturating_sub(self.reserved_at_ms) >= RECLAIM_AFTER_MS
    }
}

/// Take over an address left reserved by a registration that never finished (see the module
/// docs): done if the address is reserved for `stale_user_id`, unconfirmed, and older than
/// [`RECLAIM_AFTER_MS`] (or already reserved for `user_id`: a repeat). The caller checks first
/// that `stale_user_id`'s user does not exist. Otherwise [`UserError::EmailTaken`] (held by
/// someone else, confirmed, or too recent) or [`UserError::EmailNotReserved`] (free: reserve
/// it instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reclaim {
    /// The user registering now.
    pub user_id: Id,
    /// The user of the unfinished registration.
    pub stale_user_id: Id,
}

impl Command<Emails> for Reclaim {
    const NAME: &'static str = "reclaim";
    const IDEMPOTENT: bool = true;
    type Reply = ();

    fn handle(self, cx: &mut Context<'_, Emails>) -> Result<(), UserError> {
        let email = address(cx)?;
        if let Some(taken) = self.apply(cx.state(), &email, now_ms())? {
            cx.set(taken);
        }
        Ok(())
    }
}

impl Reclaim {
    /// What reclaiming does to `held` at `now_ms`: the new reservation to write, `None` if
    /// there is nothing to change (a repeat), or the refusal.
    pub fn apply(
        &self,
        held: Option<&Reservation>,
        email: &str,
        now_ms: u64,
    ) -> Result<Option<Reservation>, UserError> {
        match held {
            Some(held) if held.user_id == self.user_id => Ok(None),
            Some(held) if held.user_id == self.stale_user_id && held.is_reclaimable(now_ms) => {
                Ok(Some(Reservation {
                    user_id: self.user_id,
                    confirmed: false,
                    reserved_at_ms: now_ms,
                }))
            }
            Some(_) => Err(UserError::EmailTaken(email.to_string())),
            None => Err(UserError::EmailNotReserved(email.to_string())),
        }
    }
}

#[cfg(test)]
mod tests;

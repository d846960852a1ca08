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

use serde::{Deserialize, Serialize};
use troupe_runtime::entity::{Command, Commands, Context, Entity};

use super::{UserError, normalize_email};
use crate::ids::{Id, now_ms};

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
            .add::<Lookup>();
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

#[cfg(test)]
mod tests;

//! `users`: a profile and the credentials of each user, by user id, and [`Emails`], the index
//! that keeps each email address to one user across the whole cluster.
//!
//! A [`User`] is created once ([`Create`]) with an email, a name, a password hash and a role,
//! and read with [`Get`] (the profile) and [`Credentials`] (what login checks). The node hashes
//! passwords (Argon2id) before they get here: this module never sees a password, and keeps the
//! hash as an opaque string. Creating a user publishes [`UserCreated`] on [`USER_CREATED`]
//! (payments opens the user's wallet from it), in the same batch as the user.
//!
//! The entity checks its input again (defence in depth, the edge checks first): the email is
//! trimmed, lower-cased and NFC-normalized and must look like an address
//! ([`normalize_email`]); the name is trimmed and 1 to [`MAX_NAME_CHARS`] characters
//! ([`normalize_name`]). A refusal names the field.
//!
//! # Registration: keeping emails unique
//!
//! A user's shard is chosen by its id, so no shard sees every email: uniqueness is kept by the
//! [`Emails`] entity, whose id is the normalized email itself (one entity per address, so one
//! shard decides each address). The node registers a user in three steps:
//!
//! 1. pick a fresh id (`Id::new()`) and [`emails::Reserve`] the normalized email for it: a
//!    `Conflict` means another user holds the address (409 to the client);
//! 2. [`Create`] the user with that id;
//! 3. [`emails::Confirm`] the reservation (a confirmed address can no longer be released).
//!
//! If step 2 is refused (a domain error: nothing was created), the node [`emails::Release`]s
//! the reservation so the address is free again. If step 2's outcome is unknown (a timeout),
//! the node asks [`Create`] again with the same arguments: it is idempotent (the same id with
//! the same content answers the existing profile and publishes nothing new) until it gets a
//! definite answer; it must not release an address whose user may exist. A registration left
//! unfinished that way is repaired by the next registration of the same address (see
//! [`emails`]: [`emails::Holder`], then [`emails::Confirm`] or [`emails::Reclaim`]). Login
//! looks the address up with [`emails::Lookup`], then asks that user for its [`Credentials`].
//!
//! ```no_run
//! # async fn demo(runtime: &troupe_runtime::Runtime) -> Result<(), Box<dyn std::error::Error>> {
//! use troupe_actors::ids::Id;
//! use troupe_actors::users::{self, emails, Create, Emails, Role, User};
//!
//! let email = users::normalize_email(" Ada@Example.COM ")?;
//! let id = Id::new();
//! runtime.entity::<Emails>(email.clone()).ask(emails::Reserve { user_id: id }).await?;
//! let created = runtime
//!     .entity::<User>(id)
//!     .ask(Create { email: email.clone(), name: "Ada".into(), password_hash: "$argon2id$...".into(), role: Role::User })
//!     .await;
//! match created {
//!     Ok(_) => runtime.entity::<Emails>(email).ask(emails::Confirm { user_id: id }).await?,
//!     Err(e) if e.domain().is_some() => {
//!         runtime.entity::<Emails>(email).ask(emails::Release { user_id: id }).await?
//!     }
//!     Err(e) => return Err(e.into()), // unknown outcome: retry Create, never release
//! }
//! # Ok(()) }
//! ```

pub mod emails;

use serde::{Deserialize, Serialize};
use troupe_runtime::entity::{Command, Commands, Context, DomainError, DomainKind, Entity};

use crate::ids::{Id, now_ms};

pub use emails::Emails;

/// The topic a user's creation is published on.
pub const USER_CREATED: &str = "user.created";
/// The longest email address, in bytes (RFC 5321's path limit less its brackets).
pub const MAX_EMAIL_BYTES: usize = 254;
/// The longest name, in characters (Unicode scalar values, not bytes).
pub const MAX_NAME_CHARS: usize = 100;
/// The longest password hash kept, in bytes (an Argon2id PHC string is about 100).
pub const MAX_HASH_BYTES: usize = 1024;

/// What a user may do (in JSON and tokens: `user`, `admin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An ordinary user: their own profile, wallet, orders and notifications.
    User,
    /// An administrator: everything.
    Admin,
}

impl Role {
    /// The role as it appears in tokens and JSON (`user`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }
}

/// What a user entity keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The profile shown to clients.
    pub profile: Profile,
    /// The password's hash (opaque here: the node makes and checks it).
    pub password_hash: String,
    /// What the user may do.
    pub role: Role,
}

/// A user's public profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The user's id.
    pub id: Id,
    /// The email, normalized (trimmed, lower-cased).
    pub email: String,
    /// The name, trimmed.
    pub name: String,
    /// When the user was created, in milliseconds since the Unix epoch.
    pub created_at_ms: u64,
}

/// What [`USER_CREATED`] carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserCreated {
    /// The new user.
    pub user_id: Id,
    /// Their normalized email.
    pub email: String,
    /// When they were created, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// What the users and emails entities refuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum UserError {
    /// A field is malformed or out of range.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field (`email`, `name`, `password_hash`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A user with this id exists, with other content.
    #[error("user {0} already exists")]
    AlreadyExists(Id),
    /// No user has this id.
    #[error("user {0} does not exist")]
    NotFound(Id),
    /// The email is held by another user.
    #[error("email {0} is already registered")]
    EmailTaken(String),
    /// The email has no reservation to confirm.
    #[error("email {0} is not reserved")]
    EmailNotReserved(String),
    /// The email's reservation is confirmed: its user exists, so it cannot be released.
    #[error("email {0} belongs to a registered user and cannot be released")]
    EmailConfirmed(String),
}

impl UserError {
    fn invalid(field: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

impl DomainError for UserError {
    fn kind(&self) -> DomainKind {
        match self {
            Self::Invalid { .. } => DomainKind::InvalidInput,
            Self::NotFound(_) | Self::EmailNotReserved(_) => DomainKind::NotFound,
            Self::AlreadyExists(_) | Self::EmailTaken(_) | Self::EmailConfirmed(_) => {
                DomainKind::Conflict
            }
        }
    }
}

/// `raw` trimmed, lower-cased and in Unicode NFC (an accent typed as one character or as a
/// letter and a combining mark is the same address), if it looks like an email address:
/// exactly one `@` with something before it, a domain of dot-separated non-empty labels (at
/// least two), no whitespace or control characters, at most [`MAX_EMAIL_BYTES`] bytes.
pub fn normalize_email(raw: &str) -> Result<String, UserError> {
    let lower = raw.trim().to_lowercase();
    let email = icu_normalizer::ComposingNormalizerBorrowed::new_nfc()
        .normalize(&lower)
        .into_owned();
    let bad = |reason: &str| Err(UserError::invalid("email", reason));
    if email.is_empty() {
        return bad("must not be empty");
    }
    if email.len() > MAX_EMAIL_BYTES {
        return bad(&format!("at most {MAX_EMAIL_BYTES} bytes"));
    }
    if email
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || is_invisible(c))
    {
        // An invisible character would make a second account that looks like the first.
        return bad("must not contain whitespace, control or invisible characters");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return bad("must contain an @");
    };
    if domain.contains('@') {
        return bad("must contain exactly one @");
    }
    if local.is_empty() {
        return bad("needs a part before the @");
    }
    if !domain.contains('.') || domain.split('.').any(str::is_empty) {
        return bad("needs a domain with a dot, such as example.com");
    }
    Ok(email)
}

/// `raw` trimmed, if it is 1 to [`MAX_NAME_CHARS`] characters with no control characters and
/// something visible (the rule of `display_name`).
pub fn normalize_name(raw: &str) -> Result<String, UserError> {
    display_name(raw, MAX_NAME_CHARS).map_err(|reason| UserError::invalid("name", reason))
}

/// The one rule for names people read (users' and products'): `raw` trimmed of Unicode
/// whitespace, 1 to `max_chars` characters (Unicode scalar values, not bytes), no control
/// characters (NUL, ESC, DEL, newlines...), and at least one character that shows (not only
/// zero-width, joiner or direction marks). Otherwise, why not.
pub(crate) fn display_name(raw: &str, max_chars: usize) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > max_chars {
        return Err(format!("at most {max_chars} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    if name.chars().all(|c| c.is_whitespace() || is_invisible(c)) {
        return Err("must contain a visible character".into());
    }
    Ok(name.to_string())
}

/// Whether `c` shows nothing by itself: a zero-width space or joiner, a direction mark or
/// override, a soft hyphen, a variation selector, a byte order mark, a filler or tag.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{34f}' | '\u{61c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}'
        | '\u{180b}'..='\u{180f}'
        | '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}'
        | '\u{3164}' | '\u{feff}' | '\u{ffa0}'
        | '\u{fe00}'..='\u{fe0f}'
        | '\u{fff0}'..='\u{fff8}'
        | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0000}'..='\u{e0fff}')
}

/// A user: one per user id.
#[derive(Debug, Clone, Copy, Default)]
pub struct User;

impl Entity for User {
    const NAME: &'static str = "users";
    type Id = Id;
    type State = Account;
    type Error = UserError;

    fn commands(commands: &mut Commands<Self>) {
        commands.add::<Create>().add::<Get>().add::<Credentials>();
    }
}

/// Create the user: answers its profile, and publishes [`UserCreated`]. The same id with the
/// same content again answers the existing profile and publishes nothing (so a lost answer
/// can be asked again); with other content it is [`UserError::AlreadyExists`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Create {
    /// The email (normalized here again).
    pub email: String,
    /// The name (trimmed here again).
    pub name: String,
    /// The password's hash (non-empty, at most [`MAX_HASH_BYTES`]).
    pub password_hash: String,
    /// What the user may do.
    pub role: Role,
}

impl Command<User> for Create {
    const NAME: &'static str = "create";
    const IDEMPOTENT: bool = true;
    type Reply = Profile;

    fn handle(self, cx: &mut Context<'_, User>) -> Result<Profile, UserError> {
        let email = normalize_email(&self.email)?;
        let name = normalize_name(&self.name)?;
        if self.password_hash.is_empty() {
            return Err(UserError::invalid("password_hash", "must not be empty"));
        }
        if self.password_hash.len() > MAX_HASH_BYTES {
            return Err(UserError::invalid(
                "password_hash",
                format!("at most {MAX_HASH_BYTES} bytes"),
            ));
        }
        let id = *cx.id();
        if let Some(existing) = cx.state() {
            let same = existing.profile.email == email
                && existing.profile.name == name
                && existing.password_hash == self.password_hash
                && existing.role == self.role;
            return if same {
                Ok(existing.profile.clone())
            } else {
                Err(UserError::AlreadyExists(id))
            };
        }
        let profile = Profile {
            id,
            email,
            name,
            created_at_ms: now_ms(),
        };
        cx.set(Account {
            profile: profile.clone(),
            password_hash: self.password_hash,
            role: self.role,
        });
        cx.publish(
            USER_CREATED,
            &UserCreated {
                user_id: id,
                email: profile.email.clone(),
                at_ms: profile.created_at_ms,
            },
        );
        Ok(profile)
    }
}

/// The user's profile, or [`UserError::NotFound`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Get;

impl Command<User> for Get {
    const NAME: &'static str = "get";
    const IDEMPOTENT: bool = true;
    type Reply = Profile;

    fn handle(self, cx: &mut Context<'_, User>) -> Result<Profile, UserError> {
        cx.state()
            .map(|a| a.profile.clone())
            .ok_or(UserError::NotFound(*cx.id()))
    }
}

/// What login checks: the password hash and the role, or [`UserError::NotFound`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials;

impl Command<User> for Credentials {
    const NAME: &'static str = "credentials";
    const IDEMPOTENT: bool = true;
    type Reply = (String, Role);

    fn handle(self, cx: &mut Context<'_, User>) -> Result<(String, Role), UserError> {
        cx.state()
            .map(|a| (a.password_hash.clone(), a.role))
            .ok_or(UserError::NotFound(*cx.id()))
    }
}

#[cfg(test)]
mod tests;

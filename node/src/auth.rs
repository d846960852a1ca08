//! Authentication at the edge: who a request is from.
//!
//! Tokens are JWTs signed with HS256 under a key only the nodes know ([`token`]); a token says
//! who its holder is (`sub`, a user id) and what they may do (`role`). Every node checks them
//! on its own, with no call to another node: any node serves any request. Passwords are kept
//! only as Argon2id hashes ([`password`]).

pub mod password;
pub mod token;

pub use token::{Claims, Role, TokenError, Tokens};

use std::time::Duration;

use crate::config::{ConfigError, NodeConfig};

/// The issuer of this cluster's tokens.
pub const ISSUER: &str = "troupe";
/// The audience of this cluster's tokens: its API.
pub const AUDIENCE: &str = "troupe-api";
/// How long an access token lives.
pub const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// This cluster's tokens, keyed by its token key ([`crate::secrets::jwt_secret`]).
pub fn tokens(config: &NodeConfig) -> Result<Tokens, ConfigError> {
    let (secret, source) = crate::secrets::jwt_secret(config)?;
    tracing::debug!(?source, "token key loaded");
    Ok(Tokens::new(secret.as_bytes(), ISSUER, AUDIENCE, TOKEN_TTL))
}

/// An admin token for an operator's command (`troupe status`, `troupe bench`) run where the
/// token key is: from `TROUPE_JWT_SECRET` or the data directory's secrets, as the nodes have
/// it, so that the commands work with no extra step.
pub fn operator_token(config: &NodeConfig) -> Result<String, ConfigError> {
    tokens(config)?
        .issue("operator", Role::Admin)
        .map_err(|e| ConfigError::new(format!("cannot issue an operator token: {e}")))
}

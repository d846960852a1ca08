//! Authentication at the edge: who a request is from.
//!
//! Tokens are JWTs signed with HS256 under a key only the nodes know ([`token`]); a token says
//! who its holder is (`sub`, a user id) and what they may do (`role`). Every node checks them
//! on its own, with no call to another node: any node serves any request. Passwords are kept
//! only as Argon2id hashes ([`password`]).

pub mod password;
pub mod token;

pub use token::{Claims, Role, TokenError, Tokens};

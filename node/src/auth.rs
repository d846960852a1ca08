//! Authentication at the edge: who a request is from.
//!
//! Tokens are JWTs signed with HS256 under a key only the nodes know ([`token`]); a token says
//! who its holder is (`sub`, a user id) and what they may do (`role`). Every node checks them
//! on its own, with no call to another node: any node serves any request.

pub mod token;

pub use token::{Claims, Role, TokenError, Tokens};

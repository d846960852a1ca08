//! Password hashes: Argon2id, stored as PHC strings (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`)
//! that carry their own parameters, so that they can be raised later without breaking old
//! hashes.
//!
//! Parameters: 19 MiB of memory, 2 passes, 1 lane: the OWASP minimum for Argon2id. Measured on
//! the 2-core development machine: about 20-30 ms per hash in a release build, which is the
//! cost of a registration and of a login, paid on a blocking thread (never on the runtime's
//! workers).

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Memory per hash, in KiB.
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Passes over the memory.
pub const PASSES: u32 = 2;
/// Lanes.
pub const LANES: u32 = 1;

fn argon2() -> Argon2<'static> {
    // These parameters are within Argon2's bounds, so this cannot fail.
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None)
        .unwrap_or_else(|_| unreachable!("valid Argon2 parameters"));
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The hash of `password`, with a fresh random salt.
pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` is the one `stored` was made from (false for a stored string that is not
/// a hash at all).
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    // The parameters come from the stored string; the algorithm must be Argon2id.
    parsed.algorithm == argon2::ARGON2ID_IDENT
        && argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_password_verifies_against_its_hash_and_nothing_else_does() {
        let stored = hash("correct horse battery staple").unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify("correct horse battery staple", &stored));
        assert!(!verify("correct horse battery stapl", &stored));
        assert!(!verify("", &stored));
        assert!(!verify("correct horse battery staple", "not a hash"));
        // Two hashes of one password differ (each has its own salt).
        assert_ne!(stored, hash("correct horse battery staple").unwrap());
        // Unicode passwords are bytes like any other.
        let emoji = hash("пароль-🔑-密码").unwrap();
        assert!(verify("пароль-🔑-密码", &emoji));
    }
}

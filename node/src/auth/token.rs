//! Issuing and checking access tokens: JWTs, HS256 only, with `iss`, `aud`, `iat`, `exp`,
//! `sub` and `role`.
//!
//! A token is accepted only if it is signed with HS256 under this cluster's key, its issuer
//! and audience are this cluster's, it is not expired (beyond a small leeway for clocks that
//! disagree) and not issued in the future (same leeway), and every claim is there. Anything
//! else (`alg: none`, another algorithm, another key, a changed payload, a missing claim, a
//! `crit` header naming extensions, none of which this cluster knows) is
//! refused, and the caller is told only that the token is not valid: the client gets 401.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// How far clocks of the issuing and the checking node may disagree.
pub const LEEWAY: Duration = Duration::from_secs(30);

/// What a token's holder may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Their own user, wallet, orders and notifications.
    User,
    /// Everything.
    Admin,
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// What they may do.
    pub role: Role,
    /// Who issued it.
    pub iss: String,
    /// Whom it is for.
    pub aud: String,
    /// When it was issued (seconds since the Unix epoch).
    pub iat: u64,
    /// When it expires (seconds since the Unix epoch).
    pub exp: u64,
}

/// Why a token was refused (the client is told only that it is not valid).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Expired (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// Issued in the future (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// Anything else: malformed, wrong algorithm or key, tampered, wrong issuer or audience,
    /// a claim missing.
    #[error("the token is not valid: {0}")]
    Invalid(String),
}

/// Issues and checks this cluster's tokens.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Tokens {
    /// Tokens signed with `secret`, from `issuer` for `audience`, valid for `ttl`.
    pub fn new(secret: &[u8], issuer: &str, audience: &str, ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            ttl,
        }
    }

    /// How long a token lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A token for user `sub` with `role`, valid from now for the configured time.
    pub fn issue(&self, sub: &str, role: Role) -> Result<String, TokenError> {
        let iat = now_secs();
        self.issue_at(sub, role, iat, iat.saturating_add(self.ttl.as_secs()))
    }

    fn issue_at(&self, sub: &str, role: Role, iat: u64, exp: u64) -> Result<String, TokenError> {
        let claims = Claims {
            sub: sub.to_string(),
            role,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat,
            exp,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// The claims of `token`, if it is valid now (see the module docs).
    pub fn check(&self, token: &str) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid(e.to_string()),
            })?;
        // This cluster understands no extension: a token that names one critical is refused
        // (RFC 7515, 4.1.11).
        if data.header.crit.is_some() {
            return Err(TokenError::Invalid(
                "the token names critical extensions this cluster does not know".into(),
            ));
        }
        if data.claims.iat > now_secs().saturating_add(LEEWAY.as_secs()) {
            return Err(TokenError::NotYetValid);
        }
        // No token of this cluster lives longer than its configured lifetime.
        let lifetime = data.claims.exp.saturating_sub(data.claims.iat);
        if lifetime > self.ttl.as_secs().saturating_add(LEEWAY.as_secs()) {
            return Err(TokenError::Invalid(format!(
                "the token lives {lifetime} s, longer than this cluster's tokens"
            )));
        }
        Ok(data.claims)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(
            b"a-test-key-of-32-bytes-or-more!!",
            "troupe",
            "troupe-api",
            Duration::from_secs(900),
        )
    }

    /// `token` with its payload replaced by `payload` (JSON), signature kept.
    fn with_payload(token: &str, payload: &str) -> String {
        use base64_url as b64;
        let parts: Vec<&str> = token.split('.').collect();
        format!("{}.{}.{}", parts[0], b64::encode(payload), parts[2])
    }

    /// Minimal URL-safe base64 without padding, for forging tokens in tests.
    mod base64_url {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

        pub(super) fn encode(text: &str) -> String {
            let bytes = text.as_bytes();
            let mut out = String::new();
            for chunk in bytes.chunks(3) {
                let n = chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
                let chars = chunk.len() + 1;
                for i in 0..chars {
                    out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        }
    }

    #[test]
    fn a_token_issued_here_is_accepted_with_its_claims() {
        let t = tokens();
        let token = t.issue("u-1", Role::Admin).unwrap();
        let claims = t.check(&token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.role), ("u-1", Role::Admin));
        assert_eq!(
            (claims.iss.as_str(), claims.aud.as_str()),
            ("troupe", "troupe-api")
        );
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn every_forged_or_stale_token_is_refused() {
        let t = tokens();
        let now = now_secs();
        let good = t.issue("u-1", Role::User).unwrap();
        // alg: none, with the same claims and no signature.
        let header_none = base64_url::encode(r#"{"alg":"none","typ":"JWT"}"#);
        let payload = good.split('.').nth(1).unwrap();
        assert!(
            t.check(&format!("{header_none}.{payload}.")).is_err(),
            "alg none"
        );
        // Another key.
        let other = Tokens::new(
            b"another-key-of-32-bytes-or-more!",
            "troupe",
            "troupe-api",
            Duration::from_secs(900),
        );
        assert!(
            t.check(&other.issue("u-1", Role::Admin).unwrap()).is_err(),
            "wrong key"
        );
        // A tampered payload: the role raised, the signature kept.
        let raised = format!(
            r#"{{"sub":"u-1","role":"admin","iss":"troupe","aud":"troupe-api","iat":{now},"exp":{}}}"#,
            now + 900
        );
        assert!(t.check(&with_payload(&good, &raised)).is_err(), "tampered");
        // Expired, beyond the leeway; within it, still good.
        let expired = t
            .issue_at("u-1", Role::User, now - 1000, now - 31 - LEEWAY.as_secs())
            .unwrap();
        assert_eq!(t.check(&expired), Err(TokenError::Expired));
        let just = t.issue_at("u-1", Role::User, now - 900, now - 5).unwrap();
        assert!(t.check(&just).is_ok(), "within the leeway");
        // Issued in the future.
        let future = t
            .issue_at("u-1", Role::User, now + 3600, now + 3600 + 900)
            .unwrap();
        assert_eq!(t.check(&future), Err(TokenError::NotYetValid));
        // Another audience, another issuer.
        let aud = Tokens::new(
            b"a-test-key-of-32-bytes-or-more!!",
            "troupe",
            "elsewhere",
            Duration::from_secs(900),
        );
        assert!(
            t.check(&aud.issue("u-1", Role::User).unwrap()).is_err(),
            "wrong audience"
        );
        let iss = Tokens::new(
            b"a-test-key-of-32-bytes-or-more!!",
            "mallory",
            "troupe-api",
            Duration::from_secs(900),
        );
        assert!(
            t.check(&iss.issue("u-1", Role::User).unwrap()).is_err(),
            "wrong issuer"
        );
        // A claim missing (no exp), signed with the right key.
        let header = Header::new(Algorithm::HS256);
        let no_exp = jsonwebtoken::encode(
            &header,
            &serde_json::json!({"sub": "u-1", "role": "user", "iss": "troupe", "aud": "troupe-api", "iat": now}),
            &EncodingKey::from_secret(b"a-test-key-of-32-bytes-or-more!!"),
        )
        .unwrap();
        assert!(t.check(&no_exp).is_err(), "no exp");
        // Signed with the key but not valid before a time to come (nbf), or living far longer
        // than this cluster's tokens do.
        let signed = |claims: serde_json::Value| {
            jsonwebtoken::encode(
                &header,
                &claims,
                &EncodingKey::from_secret(b"a-test-key-of-32-bytes-or-more!!"),
            )
            .unwrap()
        };
        let not_before = signed(
            serde_json::json!({"sub": "u-1", "role": "user", "iss": "troupe",
            "aud": "troupe-api", "iat": now, "exp": now + 600, "nbf": now + 300}),
        );
        assert!(t.check(&not_before).is_err(), "nbf in the future");
        let forever = t.issue_at("u-1", Role::User, now, u64::MAX).unwrap();
        assert!(t.check(&forever).is_err(), "exp at the end of time");
        let century = t
            .issue_at("u-1", Role::User, now, now + 100 * 365 * 86_400)
            .unwrap();
        assert!(t.check(&century).is_err(), "a hundred years");
        // Signed with the key, but naming a critical extension this cluster does not know
        // (RFC 7515, 4.1.11: it must be refused).
        let mut critical = Header::new(Algorithm::HS256);
        critical.crit = Some(vec!["exp-ext".into()]);
        let claims = serde_json::json!({"sub": "u-1", "role": "user", "iss": "troupe",
            "aud": "troupe-api", "iat": now, "exp": now + 600});
        let with_crit = jsonwebtoken::encode(
            &critical,
            &claims,
            &EncodingKey::from_secret(b"a-test-key-of-32-bytes-or-more!!"),
        )
        .unwrap();
        assert!(t.check(&with_crit).is_err(), "crit");
        // Garbage.
        for junk in ["", "a.b", "a.b.c", "....", "Bearer x"] {
            assert!(t.check(junk).is_err(), "{junk:?}");
        }
    }
}

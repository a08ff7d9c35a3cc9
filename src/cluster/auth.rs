//! Credentials: random keys and tokens, argon2 hashing of secrets and the
//! admin password, and HTTP Basic parsing. Verification results are cached
//! in memory by the API so argon2 runs once per credential, not per request.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use rand::Rng;

/// Auth failures.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Hashing failed (bad parameters; never user input).
    #[error("cannot hash secret")]
    Hash,
}

/// `n` random characters from `[A-Za-z0-9]`.
pub fn random_token(n: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

/// An access key in Rancher's shape: 20 upper-case letters and digits.
pub fn access_key() -> String {
    random_token(20).to_ascii_uppercase()
}

/// argon2id cost of passwords people choose (the admin's): 19 MiB as
/// OWASP's first choice, 4 passes instead of its 2, so one login costs
/// ~70–120 ms on this 2-core machine (2 passes: ~50 ms) —
/// within the 50–200 ms a login may take, and twice the work per guess
/// for anyone holding a copy of the store. Requests with an API key do
/// not pay it: a verified credential is cached (see `api::access`).
pub const PASSWORD_COST: (u32, u32, u32) = (19 * 1024, 4, 1);

/// An argon2 PHC string for `secret` (a password: [`PASSWORD_COST`]).
pub fn hash(secret: &str) -> Result<String, AuthError> {
    let salt =
        SaltString::encode_b64(&rand::rng().random::<[u8; 16]>()).map_err(|_| AuthError::Hash)?;
    let (m, t, p) = PASSWORD_COST;
    let params = argon2::Params::new(m, t, p, None).map_err(|_| AuthError::Hash)?;
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AuthError::Hash)
}

/// An argon2 PHC string for a generated secret (API and agent keys).
///
/// Those secrets are 40 random characters (~238 bits), so brute force is
/// hopeless whatever the hash cost; light parameters (1 MiB, 2 passes)
/// keep registration fast and the server's memory flat — the default
/// 19 MiB per hash left hundreds of MB resident after 100 registrations.
/// Passwords chosen by people use [`hash`] with the full default cost.
pub fn hash_secret(secret: &str) -> Result<String, AuthError> {
    let params = argon2::Params::new(1024, 2, 1, None).map_err(|_| AuthError::Hash)?;
    let salt =
        SaltString::encode_b64(&rand::rng().random::<[u8; 16]>()).map_err(|_| AuthError::Hash)?;
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AuthError::Hash)
}

/// True when `secret` matches the PHC string `phc` (its own parameters).
pub fn verify(secret: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(secret.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// True when two secrets are equal, in time independent of where they
/// differ (the length may show).
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// `(user, password)` from an `Authorization: Basic …` value.
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let b64 = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// The `Authorization` header value for `(user, password)`.
pub fn basic_header(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_basic_round_trip() {
        let h = hash("s3cret").unwrap();
        assert!(verify("s3cret", &h));
        assert!(h.contains("m=19456,t=4,p=1"), "{h}");
        assert!(!verify("nope", &h));
        assert!(!verify("s3cret", "garbage"));
        let k = hash_secret("k3y").unwrap();
        assert!(k.contains("m=1024"));
        assert!(verify("k3y", &k));
        assert!(!verify("k3x", &k));
        let hv = basic_header("AK", "SK:x");
        assert_eq!(parse_basic(&hv), Some(("AK".into(), "SK:x".into())));
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(access_key().len(), 20);
    }
}

//! md5 password authentication from the stored hash: the client's answer
//! is `md5` + hex(md5(stored_hex || salt)), where stored_hex is what
//! `rolpassword` holds after `md5`, so the stored hash answers the
//! upstream's challenge as well as it checks the client's.

use md5::{Digest, Md5};

/// The answer to an `AuthenticationMD5Password` challenge with `salt`,
/// given the 32 hex digits of the stored hash (without the `md5` prefix).
pub fn answer(stored_hex: &str, salt: &[u8; 4]) -> String {
    let mut hasher = Md5::new();
    hasher.update(stored_hex.as_bytes());
    hasher.update(salt);
    let digest = hasher.finalize();
    let mut out = String::with_capacity(35);
    out.push_str("md5");
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// True when the client's `PasswordMessage` text answers `salt` for this hash.
pub fn check(stored_hex: &str, salt: &[u8; 4], given: &str) -> bool {
    super::scram::same(answer(stored_hex, salt).as_bytes(), given.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_hash_answers_as_the_password_does() {
        // What libpq computes from user "u" and password "p".
        let mut inner = Md5::new();
        inner.update(b"pu");
        let stored: String = inner
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let salt = [1, 2, 3, 4];
        let a = answer(&stored, &salt);
        assert!(a.starts_with("md5") && a.len() == 35);
        assert!(check(&stored, &salt, &a));
        assert!(!check(&stored, &[4, 3, 2, 1], &a));
    }
}

//! SCRAM-SHA-256 (RFC 5802, RFC 7677) pieces both legs share: the keys'
//! arithmetic on `ring`, nonces, and the attribute syntax of the messages.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::rand::SecureRandom;

/// The SASL mechanism without channel binding.
pub const SCRAM: &str = "SCRAM-SHA-256";
/// The SASL mechanism with `tls-server-end-point` channel binding.
pub const SCRAM_PLUS: &str = "SCRAM-SHA-256-PLUS";
/// The gs2 header of a PLUS exchange (the only binding type Postgres knows).
pub const PLUS_HEADER: &str = "p=tls-server-end-point,,";

/// `HMAC-SHA-256(key, message)`.
pub fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::hmac::sign(&key, message).as_ref());
    out
}

/// `SHA-256(data)`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
    out
}

/// `a XOR b` for two 32-byte values.
pub fn xor(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b)) {
        *o = x ^ y;
    }
    out
}

/// Equality whose time does not depend on where the inputs differ.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `n` random bytes from the OS; `None` when the OS has no randomness to give.
pub fn random(n: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; n];
    ring::rand::SystemRandom::new().fill(&mut out).ok()?;
    Some(out)
}

/// A fresh nonce: 18 random bytes in base64 (printable, no comma).
pub fn nonce() -> Option<String> {
    random(18).map(|b| STANDARD.encode(b))
}

/// Base64, as SCRAM writes binary values.
pub fn b64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Decodes base64, `None` when invalid.
pub fn unb64(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

/// The value of attribute `name` (`name=value`) at the front of `part`.
pub fn attribute(part: &str, name: char) -> Option<&str> {
    let mut chars = part.chars();
    if chars.next() != Some(name) || chars.next() != Some('=') {
        return None;
    }
    Some(&part[2..])
}

/// The signature over `auth_message` keyed by `key` (StoredKey gives the
/// ClientSignature, ServerKey the ServerSignature).
pub fn signature(key: &[u8], auth_message: &str) -> [u8; 32] {
    hmac(key, auth_message.as_bytes())
}

/// The keys of a password, as Postgres derives them (for tests and
/// `password_env` logins; the proxy never needs a password otherwise).
pub fn keys_from_password(password: &str, salt: &[u8], iterations: u32) -> ([u8; 32], [u8; 32]) {
    let mut salted = [0u8; 32];
    let rounds = std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        rounds,
        salt,
        password.as_bytes(),
        &mut salted,
    );
    let client_key = hmac(&salted, b"Client Key");
    (client_key, hmac(&salted, b"Server Key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7677_keys() {
        // RFC 7677, section 3: password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 rounds.
        let salt = unb64("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let (client_key, server_key) = keys_from_password("pencil", &salt, 4096);
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let stored = sha256(&client_key);
        let proof = xor(&client_key, &signature(&stored, auth));
        assert_eq!(b64(&proof), "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
        assert_eq!(
            b64(&signature(&server_key, auth)),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }
}

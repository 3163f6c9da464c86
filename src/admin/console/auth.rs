//! Who may log in to the admin console: `[[admin.users]]` with a SCRAM
//! verifier or a password from the environment, checked by SCRAM-SHA-256.

use crate::config::{AdminUser, Config, KeyError};
use async_trait::async_trait;
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramSecret};
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::{PgWireError, PgWireResult};
use std::collections::HashMap;
use tracing::warn;

/// Iterations used for passwords taken from the environment (Postgres' default).
const ENV_ITERATIONS: usize = 4096;

/// A parsed SCRAM-SHA-256 verifier (the proxy's own parser, shared with
/// `auth.mode = "proxy"`).
pub use crate::auth::secret::ScramSecret as Verifier;

/// The configuration check for `[[admin.users]]` (see
/// [`crate::config::Check`]): every `password` must be a verifier this
/// module can use, so `check-config` and a reload refuse a bad one.
pub fn check_config(config: &Config) -> Result<(), KeyError> {
    for user in &config.admin.users {
        if let Some(verifier) = &user.password {
            parse_verifier(verifier).map_err(|e| {
                KeyError::new(
                    "admin.users",
                    "password",
                    format!("user {:?}: {e}", user.name),
                )
            })?;
        }
    }
    Ok(())
}

/// Parses a verifier as Postgres stores it in `pg_authid.rolpassword`.
pub fn parse_verifier(text: &str) -> Result<Verifier, String> {
    crate::auth::secret::parse_scram(text).map_err(|e| {
        format!(
            "{e}; password must be a SCRAM-SHA-256 verifier as Postgres stores it \
             (SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>), never plain text: \
             use password_env for a password from the environment"
        )
    })
}

/// How one user proves who they are.
#[derive(Debug)]
enum Credential {
    Verifier(Verifier),
    /// Read at each login, so a rotated secret needs no restart.
    Env {
        var: String,
        salt: Vec<u8>,
    },
}

/// `[[admin.users]]` as a pgwire auth source.
#[derive(Debug)]
pub struct AdminUsers {
    users: HashMap<String, Credential>,
    /// Key for mock credentials: unknown users go through a whole SCRAM
    /// exchange and fail at the proof, as in Postgres, so that user names
    /// cannot be probed (the same name always gets the same salt).
    mock_key: Vec<u8>,
}

fn random_salt() -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut salt = vec![0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut salt).is_err() {
        // Without the OS RNG a fixed salt is still correct, only weaker
        // against precomputation; SCRAM nonces come from pgwire.
        salt = b"ddlguard-admin-salt".to_vec();
    }
    salt
}

impl AdminUsers {
    /// The users of a validated configuration (an invalid verifier, which
    /// validation rejects, is skipped).
    pub fn new(users: &[AdminUser]) -> AdminUsers {
        let mut map = HashMap::new();
        for u in users {
            let credential = match (&u.password, &u.password_env) {
                (Some(v), _) => match parse_verifier(v) {
                    Ok(v) => Credential::Verifier(v),
                    Err(_) => continue,
                },
                (None, Some(var)) => Credential::Env {
                    var: var.clone(),
                    salt: random_salt(),
                },
                (None, None) => continue,
            };
            map.insert(u.name.clone(), credential);
        }
        AdminUsers {
            users: map,
            mock_key: random_salt(),
        }
    }

    /// A credential nobody can satisfy, stable per user name.
    fn mock(&self, user: &str) -> ScramSecret {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.mock_key);
        let tag = ring::hmac::sign(&key, user.as_bytes());
        ScramSecret::Verifier {
            salt: tag.as_ref()[..16].to_vec(),
            iterations: ENV_ITERATIONS,
            stored_key: random_salt().repeat(2),
            server_key: random_salt().repeat(2),
        }
    }

    /// True when nobody can log in.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Unknown users, unset variables and wrong passwords all look alike to
/// the client: 28P01, as Postgres answers.
fn refused(user: &str) -> PgWireError {
    PgWireError::InvalidPassword(user.to_string())
}

#[async_trait]
impl AuthSource for AdminUsers {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        // Only SCRAM is offered; this path is never taken.
        Err(refused(login.user().unwrap_or_default()))
    }

    async fn get_scram_secret(&self, login: &LoginInfo) -> PgWireResult<(ScramSecret, Option<()>)> {
        let name = login.user().unwrap_or_default();
        match self.users.get(name) {
            Some(Credential::Verifier(v)) => Ok((
                ScramSecret::Verifier {
                    salt: v.salt.clone(),
                    iterations: v.iterations,
                    stored_key: v.stored_key.clone(),
                    server_key: v.server_key.clone(),
                },
                None,
            )),
            Some(Credential::Env { var, salt }) => {
                let password = std::env::var(var).ok().filter(|p| !p.is_empty());
                let Some(password) = password else {
                    warn!(
                        user = name,
                        "admin console login refused: {var} (admin.users password_env) is not set"
                    );
                    return Ok((self.mock(name), None));
                };
                let salted = gen_salted_password(&password, salt, ENV_ITERATIONS);
                Ok((
                    ScramSecret::verifier_from_salted_password(
                        salt.clone(),
                        salted,
                        ENV_ITERATIONS,
                    ),
                    None,
                ))
            }
            None => {
                warn!(
                    user = name,
                    "admin console login refused: no such user in [[admin.users]]"
                );
                Ok((self.mock(name), None))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifiers_parse_and_plain_text_is_refused() {
        // Shaped as Postgres stores one (16-byte salt, 32-byte keys).
        let v = "SCRAM-SHA-256$4096:Tn4f3JThqkQ/6wgfOWIsyw==$5MApVeN5mrb/9ePNJwrA3v9URX4DHAtMg7MZ8Ne+9SQ=:QbIhpYPvGWXbAq6Qk+uuhfwp+w1Y4ycZc2pLHl5hFeM=";
        let parsed = parse_verifier(v).unwrap();
        assert_eq!(parsed.iterations, 4096);
        assert_eq!(parsed.salt.len(), 16);
        let e = parse_verifier("secret").unwrap_err();
        assert!(e.contains("never plain text"), "{e}");
        assert!(parse_verifier("SCRAM-SHA-256$4096:!!$a:b").is_err());
    }
}

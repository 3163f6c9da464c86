//! SCRAM-SHA-256 towards the client, with `-PLUS` when the client leg is
//! TLS: the proxy plays the server from a stored verifier and, from the
//! client's proof, recovers the ClientKey (ClientKey = ClientProof XOR
//! ClientSignature, checked by H(ClientKey) == StoredKey), which is what
//! the upstream login needs. Pure: no I/O.

use super::scram::{self, PLUS_HEADER, SCRAM, SCRAM_PLUS};
use super::secret::ScramSecret;
use thiserror::Error;

/// Why the client's SCRAM exchange failed. Each maps to the SQLSTATE and
/// the words Postgres uses for the same failure.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ScramError {
    /// A message did not follow the SCRAM syntax.
    #[error("malformed SCRAM message")]
    Malformed(&'static str),
    /// The client picked a mechanism that was not offered.
    #[error("client selected an invalid SASL authentication mechanism")]
    Mechanism,
    /// "y": the client can bind but believes the server cannot, while this
    /// server offered `-PLUS` (a possible downgrade).
    #[error("SCRAM channel binding negotiation error")]
    Downgrade,
    /// The channel binding data does not match this connection.
    #[error("SCRAM channel binding check failed")]
    BindingCheck,
    /// The proof is wrong (wrong password, or an unknown user's mock).
    #[error("password authentication failed")]
    Proof,
}

impl ScramError {
    /// SQLSTATE, as Postgres reports the same failure.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ScramError::Proof => "28P01",
            _ => "08P01",
        }
    }

    /// Postgres' DETAIL for the failure, when it gives one.
    pub fn detail(&self) -> Option<&'static str> {
        match self {
            ScramError::Malformed(d) => Some(d),
            ScramError::Downgrade => Some("The client supports SCRAM channel binding but thinks the server does not.  However, this server does support channel binding."),
            _ => None,
        }
    }
}

/// The body of `AuthenticationSASL` (code 10 and the mechanism list):
/// `-PLUS` first when the client leg is TLS.
pub fn offer(client_tls: bool) -> Vec<u8> {
    let mut body = 10i32.to_be_bytes().to_vec();
    if client_tls {
        body.extend_from_slice(SCRAM_PLUS.as_bytes());
        body.push(0);
    }
    body.extend_from_slice(SCRAM.as_bytes());
    body.push(0);
    body.push(0);
    body
}

/// A SCRAM exchange after the client's first message.
pub struct ScramServer {
    secret: ScramSecret,
    /// The client's gs2 header plus, for `-PLUS`, the certificate hash:
    /// what `c=` must carry.
    binding: Vec<u8>,
    nonce: String,
    client_first_bare: String,
    server_first: String,
}

/// What a successful exchange gives.
pub struct Proven {
    /// The key the client holds, which logs in upstream.
    pub client_key: [u8; 32],
    /// `v=<ServerSignature>`, the client's proof that the proxy knew the verifier.
    pub server_final: String,
}

impl ScramServer {
    /// Reads the client-first message for `mechanism` and answers the
    /// server-first message. `end_point` is the hash of the proxy's own
    /// certificate when the client leg is TLS (`-PLUS` was offered).
    pub fn start(
        secret: ScramSecret,
        end_point: Option<&[u8]>,
        mechanism: &str,
        client_first: &[u8],
    ) -> Result<(ScramServer, String), ScramError> {
        let plus = match mechanism {
            SCRAM => false,
            SCRAM_PLUS if end_point.is_some() => true,
            _ => return Err(ScramError::Mechanism),
        };
        let text = std::str::from_utf8(client_first)
            .map_err(|_| ScramError::Malformed("The message is not valid UTF-8."))?;
        let (header, bare) = split_gs2(text)?;
        let mut binding = header.as_bytes().to_vec();
        match header.as_bytes().first() {
            Some(b'p') => {
                if header != PLUS_HEADER {
                    return Err(ScramError::Malformed(
                        "Unsupported SCRAM channel-binding type.",
                    ));
                }
                if !plus {
                    return Err(ScramError::Malformed("The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message includes channel binding data."));
                }
                binding.extend_from_slice(end_point.unwrap_or_default());
            }
            Some(b'y') if end_point.is_some() => return Err(ScramError::Downgrade),
            Some(b'y' | b'n') if plus => {
                return Err(ScramError::Malformed("The client selected SCRAM-SHA-256-PLUS, but the SCRAM message does not include channel binding data."))
            }
            Some(b'y' | b'n') => {}
            _ => {
                return Err(ScramError::Malformed(
                    "Unexpected channel-binding flag.",
                ))
            }
        }
        let mut parts = bare.split(',');
        parts
            .next()
            .and_then(|p| scram::attribute(p, 'n'))
            .ok_or(ScramError::Malformed("Expected attribute \"n\"."))?;
        let client_nonce = parts
            .next()
            .and_then(|p| scram::attribute(p, 'r'))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b)))
            .ok_or(ScramError::Malformed("Expected attribute \"r\"."))?;
        let server_nonce =
            scram::nonce().ok_or(ScramError::Malformed("Could not generate a nonce."))?;
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            scram::b64(&secret.salt),
            secret.iterations
        );
        let state = ScramServer {
            secret,
            binding,
            nonce,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
        };
        Ok((state, server_first))
    }

    /// Checks the client-final message and recovers the ClientKey.
    pub fn finish(self, client_final: &[u8]) -> Result<Proven, ScramError> {
        let text = std::str::from_utf8(client_final)
            .map_err(|_| ScramError::Malformed("The message is not valid UTF-8."))?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or(ScramError::Malformed(
            "Could not find proof in client-final-message.",
        ))?;
        let mut parts = without_proof.split(',');
        let binding = parts
            .next()
            .and_then(|p| scram::attribute(p, 'c'))
            .and_then(scram::unb64)
            .ok_or(ScramError::Malformed("Expected attribute \"c\"."))?;
        if !scram::same(&binding, &self.binding) {
            return Err(ScramError::BindingCheck);
        }
        let nonce = parts
            .next()
            .and_then(|p| scram::attribute(p, 'r'))
            .ok_or(ScramError::Malformed("Expected attribute \"r\"."))?;
        if nonce != self.nonce {
            return Err(ScramError::Malformed("Nonce does not match."));
        }
        let proof: [u8; 32] =
            scram::unb64(proof)
                .and_then(|p| p.try_into().ok())
                .ok_or(ScramError::Malformed(
                    "Malformed proof in client-final-message.",
                ))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let client_signature = scram::signature(&self.secret.stored_key, &auth_message);
        let client_key = scram::xor(&proof, &client_signature);
        if !scram::same(&scram::sha256(&client_key), &self.secret.stored_key) {
            return Err(ScramError::Proof);
        }
        let server_signature = scram::signature(&self.secret.server_key, &auth_message);
        Ok(Proven {
            client_key,
            server_final: format!("v={}", scram::b64(&server_signature)),
        })
    }
}

/// Splits `gs2-header` (flag, authzid, and the two commas) from the bare message.
fn split_gs2(text: &str) -> Result<(&str, &str), ScramError> {
    let first = text
        .find(',')
        .ok_or(ScramError::Malformed("Comma expected."))?;
    let rest = &text[first + 1..];
    let second = rest
        .find(',')
        .ok_or(ScramError::Malformed("Comma expected."))?;
    if second != 0 {
        return Err(ScramError::Malformed(
            "client uses authorization identity, but it is not supported",
        ));
    }
    let end = first + 2;
    Ok((&text[..end], &text[end..]))
}

/// A verifier no proof can satisfy, stable per user name (Postgres' mock
/// authentication): an unknown user goes through the whole exchange and
/// fails at the proof, like a wrong password, so names cannot be probed.
pub fn mock(user: &str, key: &[u8]) -> ScramSecret {
    let tag = scram::hmac(key, user.as_bytes());
    let unreachable = scram::hmac(key, &tag);
    ScramSecret {
        salt: tag[..16].to_vec(),
        iterations: 4096,
        // No ClientKey hashes to this: it is a MAC, not a digest.
        stored_key: unreachable.to_vec(),
        server_key: unreachable.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(password: &str) -> (ScramSecret, [u8; 32]) {
        let salt = b"0123456789abcdef".to_vec();
        let (client_key, server_key) = scram::keys_from_password(password, &salt, 4096);
        let s = ScramSecret {
            salt,
            iterations: 4096,
            stored_key: scram::sha256(&client_key).to_vec(),
            server_key: server_key.to_vec(),
        };
        (s, client_key)
    }

    /// A client's final message for `password` after `server_first`.
    fn client_final(password: &str, bare: &str, server_first: &str, c: &[u8]) -> String {
        let salt = scram::unb64(
            server_first
                .split(",s=")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap(),
        )
        .unwrap();
        let (client_key, _) = scram::keys_from_password(password, &salt, 4096);
        let nonce = &server_first[2..server_first.find(',').unwrap()];
        let without = format!("c={},r={nonce}", scram::b64(c));
        let auth = format!("{bare},{server_first},{without}");
        let proof = scram::xor(
            &client_key,
            &scram::signature(&scram::sha256(&client_key), &auth),
        );
        format!("{without},p={}", scram::b64(&proof))
    }

    #[test]
    fn the_right_proof_yields_the_client_key() {
        let (s, key) = secret("pw");
        let (server, first) = ScramServer::start(s, None, SCRAM, b"n,,n=,r=abc").unwrap();
        let fin = client_final("pw", "n=,r=abc", &first, b"n,,");
        let proven = server.finish(fin.as_bytes()).unwrap();
        assert_eq!(proven.client_key, key);
        assert!(proven.server_final.starts_with("v="));
    }

    #[test]
    fn a_wrong_password_or_an_unknown_user_fails_at_the_proof() {
        let (s, _) = secret("pw");
        let (server, first) = ScramServer::start(s, None, SCRAM, b"n,,n=,r=abc").unwrap();
        let fin = client_final("nope", "n=,r=abc", &first, b"n,,");
        assert_eq!(server.finish(fin.as_bytes()).err(), Some(ScramError::Proof));
        let m = mock("ghost", b"key");
        assert_eq!(m, mock("ghost", b"key"), "the same name gets the same salt");
        let (server, first) = ScramServer::start(m, None, SCRAM, b"n,,n=,r=abc").unwrap();
        let fin = client_final("", "n=,r=abc", &first, b"n,,");
        assert_eq!(server.finish(fin.as_bytes()).err(), Some(ScramError::Proof));
    }

    /// A -PLUS exchange where the client binds to `bound` and the proxy's certificate hashes to `cert`.
    fn plus(s: &ScramSecret, cert: &[u8], bound: &[u8]) -> Result<Proven, ScramError> {
        let first_msg = b"p=tls-server-end-point,,n=,r=x";
        let (server, first) = ScramServer::start(s.clone(), Some(cert), SCRAM_PLUS, first_msg)?;
        let mut c = PLUS_HEADER.as_bytes().to_vec();
        c.extend_from_slice(bound);
        let fin = client_final("pw", "n=,r=x", &first, &c);
        server.finish(fin.as_bytes())
    }

    #[test]
    fn channel_binding_is_checked_and_a_downgrade_refused() {
        let (s, key) = secret("pw");
        let cert = [7u8; 32];
        assert_eq!(plus(&s, &cert, &cert).unwrap().client_key, key);
        // Another certificate's hash (a man in the middle) fails.
        assert_eq!(
            plus(&s, &cert, &[8u8; 32]).err(),
            Some(ScramError::BindingCheck)
        );
        let e = ScramServer::start(s.clone(), Some(&cert), SCRAM, b"y,,n=,r=x").err();
        assert_eq!(e, Some(ScramError::Downgrade));
        // Without TLS, "y" is fine and PLUS is not on offer.
        assert!(ScramServer::start(s.clone(), None, SCRAM, b"y,,n=,r=x").is_ok());
        let e = ScramServer::start(s, None, SCRAM_PLUS, b"p=tls-server-end-point,,n=,r=x").err();
        assert_eq!(e, Some(ScramError::Mechanism));
    }
}

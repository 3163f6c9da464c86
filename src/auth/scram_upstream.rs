//! SCRAM-SHA-256 towards the upstream with the ClientKey recovered from the
//! client's proof instead of a password (StoredKey = H(ClientKey), the proof
//! is ClientKey XOR HMAC(StoredKey, AuthMessage)), `-PLUS` on the
//! upstream's certificate when that leg is TLS and the server offers it.
//! The server's signature is checked with the verifier's ServerKey. Pure:
//! no I/O.

use super::scram::{self, PLUS_HEADER, SCRAM, SCRAM_PLUS};
use thiserror::Error;

/// Why the upstream's SCRAM exchange could not go on.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UpstreamScramError {
    /// The server offers no mechanism this client speaks.
    #[error("the upstream offers no SCRAM-SHA-256 mechanism ({0})")]
    NoMechanism(String),
    /// A server message did not follow the SCRAM syntax or changed the nonce.
    #[error("the upstream sent a malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The server's signature does not match the verifier: it is not the
    /// server the verifier came from.
    #[error("the upstream's SCRAM server signature does not match the verifier read through the service login")]
    ServerSignature,
    /// No randomness for the nonce.
    #[error("no randomness available for a SCRAM nonce")]
    Random,
}

/// The client side of one upstream SCRAM exchange.
pub struct ScramClient {
    client_key: [u8; 32],
    server_key: Vec<u8>,
    nonce: String,
    binding: Vec<u8>,
    client_first_bare: String,
    auth_message: String,
}

/// The mechanism names in an `AuthenticationSASL` body (after the code).
pub fn mechanisms(list: &[u8]) -> Vec<String> {
    list.split(|&b| b == 0)
        .filter(|m| !m.is_empty())
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect()
}

impl ScramClient {
    /// Picks the mechanism from the server's `offered` list and builds the
    /// client-first message. `end_point` is the upstream certificate's hash
    /// when the upstream leg is TLS.
    pub fn start(
        client_key: [u8; 32],
        server_key: Vec<u8>,
        offered: &[String],
        end_point: Option<Vec<u8>>,
    ) -> Result<(ScramClient, &'static str, String), UpstreamScramError> {
        let has = |m: &str| offered.iter().any(|o| o == m);
        let (mechanism, header, cbind) = match end_point {
            Some(hash) if has(SCRAM_PLUS) => (SCRAM_PLUS, PLUS_HEADER, hash),
            // TLS, but no -PLUS offered: "y", as libpq says it.
            Some(_) if has(SCRAM) => (SCRAM, "y,,", Vec::new()),
            None if has(SCRAM) => (SCRAM, "n,,", Vec::new()),
            _ => return Err(UpstreamScramError::NoMechanism(offered.join(", "))),
        };
        let nonce = scram::nonce().ok_or(UpstreamScramError::Random)?;
        let client_first_bare = format!("n=,r={nonce}");
        let mut binding = header.as_bytes().to_vec();
        binding.extend_from_slice(&cbind);
        let first = format!("{header}{client_first_bare}");
        Ok((
            ScramClient {
                client_key,
                server_key,
                nonce,
                binding,
                client_first_bare,
                auth_message: String::new(),
            },
            mechanism,
            first,
        ))
    }

    /// Answers the server-first message with the client-final message.
    pub fn respond(&mut self, server_first: &[u8]) -> Result<String, UpstreamScramError> {
        let text = std::str::from_utf8(server_first)
            .map_err(|_| UpstreamScramError::Malformed("not UTF-8"))?;
        let nonce = text
            .split(',')
            .next()
            .and_then(|p| scram::attribute(p, 'r'))
            .filter(|n| n.starts_with(&self.nonce) && n.len() > self.nonce.len())
            .ok_or(UpstreamScramError::Malformed("nonce"))?;
        let without_proof = format!("c={},r={nonce}", scram::b64(&self.binding));
        self.auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let stored_key = scram::sha256(&self.client_key);
        let proof = scram::xor(
            &self.client_key,
            &scram::signature(&stored_key, &self.auth_message),
        );
        Ok(format!("{without_proof},p={}", scram::b64(&proof)))
    }

    /// Checks the server-final message (`v=<ServerSignature>`).
    pub fn verify(&self, server_final: &[u8]) -> Result<(), UpstreamScramError> {
        let text = std::str::from_utf8(server_final)
            .map_err(|_| UpstreamScramError::Malformed("not UTF-8"))?;
        let signature = text
            .split(',')
            .next()
            .and_then(|p| scram::attribute(p, 'v'))
            .and_then(scram::unb64)
            .ok_or(UpstreamScramError::Malformed("server-final-message"))?;
        let expected = scram::signature(&self.server_key, &self.auth_message);
        if scram::same(&signature, &expected) {
            Ok(())
        } else {
            Err(UpstreamScramError::ServerSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::scram_server::ScramServer;
    use super::super::secret::ScramSecret;
    use super::*;

    /// The proxy's client side against its own server side: the upstream
    /// accepts the recovered key and the server's signature verifies.
    #[test]
    fn the_client_key_logs_in_with_and_without_binding() {
        let salt = b"saltsaltsaltsalt".to_vec();
        let (client_key, server_key) = scram::keys_from_password("pw", &salt, 4096);
        let secret = ScramSecret {
            salt,
            iterations: 4096,
            stored_key: scram::sha256(&client_key).to_vec(),
            server_key: server_key.to_vec(),
        };
        let cert = vec![3u8; 32];
        let offered = vec![SCRAM_PLUS.to_string(), SCRAM.to_string()];
        for end_point in [None, Some(cert.clone())] {
            let (mut client, mech, first) =
                ScramClient::start(client_key, server_key.to_vec(), &offered, end_point.clone())
                    .unwrap();
            let (server, server_first) =
                ScramServer::start(secret.clone(), end_point.as_deref(), mech, first.as_bytes())
                    .unwrap();
            let fin = client.respond(server_first.as_bytes()).unwrap();
            let proven = server.finish(fin.as_bytes()).unwrap();
            assert_eq!(proven.client_key, client_key);
            client.verify(proven.server_final.as_bytes()).unwrap();
            assert_eq!(
                client.verify(b"v=AAAA"),
                Err(UpstreamScramError::ServerSignature)
            );
        }
        let only_plus = vec![SCRAM_PLUS.to_string()];
        assert!(ScramClient::start(client_key, vec![], &only_plus, None).is_err());
    }
}

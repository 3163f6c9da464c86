//! rustls configurations: the acceptor towards clients and the connector
//! towards the upstream, with libpq's `sslmode` semantics.

use super::settings::{UpstreamConfig, UpstreamTls};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{self, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Why TLS material could not be loaded.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A certificate file is missing, unreadable or holds no certificate.
    #[error("cannot load certificates from {path}: {reason}")]
    Certs { path: PathBuf, reason: String },
    /// The private key file is missing, unreadable or holds no key.
    #[error("cannot load private key from {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    /// rustls refused the combination (e.g. the key does not match the certificate).
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
}

impl TlsError {
    /// True when the private key, not the certificate, is at fault.
    pub fn is_key(&self) -> bool {
        matches!(self, TlsError::Key { .. })
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(crypto::ring::default_provider())
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::Certs {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate found".into()));
    }
    Ok(certs)
}

/// Builds the client-facing TLS acceptor from PEM files.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    Ok(acceptor_and_end_point(cert, key)?.0)
}

/// The acceptor and the `tls-server-end-point` hash of the certificate it
/// serves, from one read of the file (a certificate rotated between two
/// reads would make every SCRAM-SHA-256-PLUS login fail its binding check).
pub fn acceptor_and_end_point(cert: &Path, key: &Path) -> Result<(TlsAcceptor, Vec<u8>), TlsError> {
    let certs = load_certs(cert)?;
    let bound = end_point(&certs[0]);
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    // As Postgres 17: a client that offers ALPN must offer "postgresql";
    // direct TLS (no SSLRequest) requires it.
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), bound))
}

/// The ALPN protocol name of Postgres (PostgreSQL 17, `sslnegotiation=direct`).
pub const ALPN: &[u8] = b"postgresql";

/// The `tls-server-end-point` hash of a DER certificate: the certificate
/// hashed with its signature's hash algorithm, SHA-256 for MD5, SHA-1 and
/// anything else unknown (RFC 5929 section 4.1, as Postgres computes it).
pub fn end_point(der: &[u8]) -> Vec<u8> {
    let algorithm = match signature_oid(der) {
        Some(oid) if SHA384_OIDS.contains(&oid) => &ring::digest::SHA384,
        Some(oid) if SHA512_OIDS.contains(&oid) => &ring::digest::SHA512,
        _ => &ring::digest::SHA256,
    };
    ring::digest::digest(algorithm, der).as_ref().to_vec()
}

/// sha384WithRSAEncryption, ecdsa-with-SHA384.
const SHA384_OIDS: [&[u8]; 2] = [
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c],
    &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
];
/// sha512WithRSAEncryption, ecdsa-with-SHA512.
const SHA512_OIDS: [&[u8]; 2] = [
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d],
    &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],
];

/// The OID of `Certificate.signatureAlgorithm` (after `tbsCertificate`).
fn signature_oid(der: &[u8]) -> Option<&[u8]> {
    let (_, cert, _) = der_element(der)?;
    let (_, _tbs, rest) = der_element(cert)?;
    let (_, algorithm, _) = der_element(rest)?;
    let (tag, oid, _) = der_element(algorithm)?;
    (tag == 0x06).then_some(oid)
}

/// One DER element: (tag, contents, what follows).
fn der_element(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *data.first()?;
    let first = *data.get(1)?;
    let (len, start) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let bytes = data.get(2..2 + n)?;
        (
            bytes.iter().fold(0usize, |a, b| (a << 8) | *b as usize),
            2 + n,
        )
    };
    let end = start.checked_add(len)?;
    Some((tag, data.get(start..end)?, data.get(end..)?))
}

/// Builds the upstream TLS connector for `upstream.tls` and `upstream.ca_file`.
pub fn connector(upstream: &UpstreamConfig) -> Result<TlsConnector, TlsError> {
    Ok(TlsConnector::from(client_config(upstream)?))
}

/// The rustls client configuration for `upstream.tls` and
/// `upstream.ca_file` (libpq's `sslmode` and `sslrootcert`).
pub fn client_config(upstream: &UpstreamConfig) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider();
    let roots = match &upstream.ca_file {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in load_certs(path)? {
                roots.add(cert).map_err(|e| TlsError::Certs {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            }
            Some(Arc::new(roots))
        }
        None => None,
    };
    // libpq: with a root certificate, `require` behaves like `verify-ca`.
    let verifier: Arc<dyn ServerCertVerifier> = match (upstream.tls, roots) {
        (UpstreamTls::VerifyFull, Some(roots)) => {
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?
        }
        (UpstreamTls::VerifyCa | UpstreamTls::Require, Some(roots)) => Arc::new(ChainOnly(
            WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?,
        )),
        _ => Arc::new(Unverified(provider.clone())),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The name the upstream certificate is checked against (`verify-full`) and sent as SNI.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_string()).map_err(|e| {
        TlsError::Rustls(rustls::Error::General(format!(
            "upstream host {host:?} is not a valid TLS server name: {e}"
        )))
    })
}

/// `verify-ca`: the chain must lead to the CA, the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`/`require` without a CA: encryption without authentication, as libpq.
/// Handshake signatures are still checked.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(alg).unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_end_point_hash_follows_the_signature_algorithm() {
        let p256 = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
        assert_eq!(
            end_point(&p256),
            ring::digest::digest(&ring::digest::SHA256, &p256).as_ref()
        );
        let p384 = self_signed(&rcgen::PKCS_ECDSA_P384_SHA384);
        assert_eq!(
            end_point(&p384),
            ring::digest::digest(&ring::digest::SHA384, &p384).as_ref()
        );
        // Not a certificate: SHA-256 of whatever it is, never a panic.
        assert_eq!(end_point(b"\x30\x85").len(), 32);
    }
}

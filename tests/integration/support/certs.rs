//! Test-only TLS material generated at run time with rcgen: a CA and a server
//! certificate for `localhost` / 127.0.0.1. Nothing here is committed.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::path::{Path, PathBuf};

/// Paths of a generated CA certificate and a server certificate + key.
#[derive(Clone, Debug)]
pub struct TestCerts {
    /// PEM CA certificate that signed `cert`.
    pub ca: PathBuf,
    /// PEM server certificate for localhost and 127.0.0.1.
    pub cert: PathBuf,
    /// PEM private key of `cert` (mode 0600).
    pub key: PathBuf,
}

impl TestCerts {
    /// Generates a fresh CA and server certificate into `dir`.
    pub fn generate(dir: &Path, common_name: &str) -> TestCerts {
        std::fs::create_dir_all(dir).unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{common_name} test CA"));
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let certs = TestCerts {
            ca: dir.join("ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        };
        std::fs::write(&certs.ca, ca.pem()).unwrap();
        std::fs::write(&certs.cert, cert.pem()).unwrap();
        std::fs::write(&certs.key, key.serialize_pem()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&certs.key, std::fs::Permissions::from_mode(0o600)).unwrap();
        certs
    }
}

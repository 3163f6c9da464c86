//! A cluster that only takes SCRAM over TLS from the network (`hostssl ...
//! scram-sha-256`, md5 for the md5 user), with the service login and the
//! verifier lookup function of `auth.mode = "proxy"` installed, shared by
//! the tests of this binary that need it.

use super::certs::TestCerts;
use super::cluster::Cluster;
use super::proxy::TestProxy;
use ddlguard::config::{AuthMode, UpstreamTls};
use std::process::Command;
use std::sync::OnceLock;

/// The service login that reads verifiers.
pub const SERVICE: (&str, &str) = ("ddlguard_svc", "service secret");
/// Environment variable holding [`SERVICE`]'s password for the proxy.
pub const SERVICE_ENV: &str = "DDLGUARD_TEST_SERVICE_PASSWORD";

const HBA: &str = "\
local all all trust
host all postgres 127.0.0.1/32 trust
hostssl all md5user 127.0.0.1/32 md5
hostssl all all 127.0.0.1/32 scram-sha-256
";

/// The SCRAM-over-TLS cluster, started once.
pub fn scram_cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let cluster = Cluster::start_with_hba("scram", HBA);
        cluster.psql_admin(&format!(
            "SET password_encryption = 'scram-sha-256'; CREATE ROLE {} LOGIN PASSWORD '{}';",
            SERVICE.0, SERVICE.1
        ));
        cluster.psql_admin(&ddlguard::auth::lookup::lookup_sql(SERVICE.0));
        // SAFETY of the environment: set once, before any proxy reads it.
        std::env::set_var(SERVICE_ENV, SERVICE.1);
        cluster
    })
}

/// The proxy's own certificate for the client leg (a CA of its own),
/// generated into a folder named after the test.
pub fn proxy_certs(name: &str) -> TestCerts {
    let dir = std::env::temp_dir().join(format!("ddlguard-test-{}-{name}", std::process::id()));
    TestCerts::generate(&dir, "ddlguard")
}

/// A proxy in `auth.mode = "proxy"` with TLS on both legs in front of
/// [`scram_cluster`]; `adjust` changes the configuration further.
pub async fn proxy_mode(
    certs: &TestCerts,
    adjust: impl FnOnce(&mut ddlguard::config::Config),
) -> TestProxy {
    let cluster = scram_cluster();
    TestProxy::start_with(cluster, |c| {
        c.auth.mode = AuthMode::Proxy;
        c.upstream.tls = UpstreamTls::Require;
        c.upstream.user = Some(SERVICE.0.into());
        c.upstream.password_env = Some(SERVICE_ENV.into());
        c.server.tls_cert = Some(certs.cert.clone());
        c.server.tls_key = Some(certs.key.clone());
        adjust(c);
    })
    .await
}

/// Runs psql with a full conninfo string; Ok(stdout) or Err(stderr).
pub fn psql(
    cluster: &Cluster,
    conninfo: &str,
    password: Option<&str>,
    sql: &str,
) -> Result<String, String> {
    let mut cmd = Command::new(cluster.tool("psql"));
    cmd.args([
        "-X",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        conninfo,
        "-c",
        sql,
    ]);
    cmd.env_remove("PGSSLMODE");
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let out = cmd.output().expect("run psql");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

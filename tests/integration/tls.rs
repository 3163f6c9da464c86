//! TLS towards clients (rustls acceptor) and every `upstream.tls` mode.

use crate::support::cluster::SCRAM_USER;
use crate::support::scram_cluster::{proxy_certs, psql};
use crate::support::{Cluster, TestProxy};
use ddlguard::config::UpstreamTls;

const UPSTREAM_SSL: &str = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_can_use_tls_to_the_proxy() {
    let cluster = Cluster::shared();
    let certs = proxy_certs("client-tls");
    let proxy = TestProxy::start_with(cluster, |c| {
        c.server.tls_cert = Some(certs.cert.clone());
        c.server.tls_key = Some(certs.key.clone());
    })
    .await;
    let port = proxy.addr.port();
    // verify-full: the client checks the proxy's certificate and host name.
    let conninfo = format!(
        "host=localhost port={port} user=postgres dbname=postgres sslmode=verify-full sslrootcert={}",
        certs.ca.display()
    );
    assert_eq!(
        psql(cluster, &conninfo, None, "SELECT 40 + 2").unwrap(),
        "42"
    );
    // Checking the client leg from the client's side: psql reports the cipher.
    let info = psql(cluster, &conninfo, None, "\\conninfo").unwrap();
    assert!(info.contains("SSL connection"), "{info}");
    // A client that does not want TLS still gets in.
    let plain = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=disable");
    assert_eq!(psql(cluster, &plain, None, "SELECT 1").unwrap(), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_certificate_the_proxy_declines_tls() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start(cluster).await;
    let port = proxy.addr.port();
    let require =
        format!("host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=require");
    let err = psql(cluster, &require, None, "SELECT 1").unwrap_err();
    assert!(err.contains("does not support SSL"), "{err}");
    let prefer = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=prefer");
    assert_eq!(psql(cluster, &prefer, None, "SELECT 1").unwrap(), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_over_client_tls_with_a_plain_upstream() {
    // libpq over TLS without -PLUS on offer says "y" (channel binding supported,
    // server seems not to): accepted by a server whose own connection is plain.
    let cluster = Cluster::shared();
    let certs = proxy_certs("scram-tls");
    let proxy = TestProxy::start_with(cluster, |c| {
        c.server.tls_cert = Some(certs.cert.clone());
        c.server.tls_key = Some(certs.key.clone());
        c.upstream.tls = UpstreamTls::Disable;
    })
    .await;
    let conninfo = format!(
        "host=127.0.0.1 port={} user={} dbname=postgres sslmode=require",
        proxy.addr.port(),
        SCRAM_USER.0
    );
    let user = psql(
        cluster,
        &conninfo,
        Some(SCRAM_USER.1),
        "SELECT current_user",
    )
    .unwrap();
    assert_eq!(user, SCRAM_USER.0);
    // channel_binding=require cannot be satisfied through a TLS-terminating proxy.
    let strict = format!("{conninfo} channel_binding=require");
    assert!(psql(cluster, &strict, Some(SCRAM_USER.1), "SELECT 1").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_modes_behave_like_sslmode() {
    let cluster = Cluster::shared();
    let plain = |port: u16| {
        format!("host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=disable")
    };

    for (mode, ca, host, want) in [
        (UpstreamTls::Disable, None, "127.0.0.1", "f"),
        (UpstreamTls::Prefer, None, "127.0.0.1", "t"),
        (UpstreamTls::Require, None, "127.0.0.1", "t"),
        (
            UpstreamTls::VerifyCa,
            Some(cluster.certs.ca.clone()),
            "127.0.0.1",
            "t",
        ),
        (
            UpstreamTls::VerifyFull,
            Some(cluster.certs.ca.clone()),
            "localhost",
            "t",
        ),
        (
            UpstreamTls::VerifyFull,
            Some(cluster.certs.ca.clone()),
            "127.0.0.1",
            "t",
        ),
    ] {
        let proxy = TestProxy::start_with(cluster, |c| {
            c.upstream.tls = mode;
            c.upstream.ca_file = ca.clone();
            c.upstream.host = host.to_string();
        })
        .await;
        let got = psql(cluster, &plain(proxy.addr.port()), None, UPSTREAM_SSL)
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert_eq!(got, want, "{mode:?} via {host}");
    }

    // A CA that did not sign the server's certificate is refused.
    let other = proxy_certs("wrong-ca");
    for mode in [
        UpstreamTls::VerifyCa,
        UpstreamTls::VerifyFull,
        UpstreamTls::Require,
    ] {
        let proxy = TestProxy::start_with(cluster, |c| {
            c.upstream.tls = mode;
            c.upstream.ca_file = Some(other.ca.clone());
        })
        .await;
        let err = psql(cluster, &plain(proxy.addr.port()), None, "SELECT 1").unwrap_err();
        assert!(
            err.contains("TLS handshake with upstream"),
            "{mode:?}: {err}"
        );
        assert!(
            err.contains(&format!("127.0.0.1:{}", cluster.port)),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_fails_against_a_server_without_tls() {
    // A server without TLS: a ddlguard without a certificate answers 'N' to
    // SSLRequest exactly as such a Postgres does.
    let plain_proxy = TestProxy::start(Cluster::shared()).await;
    let proxy = TestProxy::start_with(Cluster::shared(), |c| {
        c.upstream.port = plain_proxy.addr.port();
        c.upstream.tls = UpstreamTls::Require;
    })
    .await;
    let conn = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=disable",
        proxy.addr.port()
    );
    let err = psql(Cluster::shared(), &conn, None, "SELECT 1").unwrap_err();
    assert!(err.contains("does not accept TLS"), "{err}");
    assert!(err.contains("upstream.tls"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_with_tls_on_both_legs_needs_channel_binding_disabled() {
    // Pins the documented limit (README, "Known limits"): the server rejects
    // libpq's "y" flag on its own TLS connection; channel_binding=disable works.
    let cluster = Cluster::shared();
    let certs = proxy_certs("scram-both");
    let proxy = TestProxy::start_with(cluster, |c| {
        c.server.tls_cert = Some(certs.cert.clone());
        c.server.tls_key = Some(certs.key.clone());
        c.upstream.tls = UpstreamTls::Require;
    })
    .await;
    let conninfo = format!(
        "host=127.0.0.1 port={} user={} dbname=postgres sslmode=require",
        proxy.addr.port(),
        SCRAM_USER.0
    );
    let err = psql(cluster, &conninfo, Some(SCRAM_USER.1), "SELECT 1").unwrap_err();
    assert!(err.contains("channel binding"), "{err}");
    let disabled = format!("{conninfo} channel_binding=disable");
    let user = psql(
        cluster,
        &disabled,
        Some(SCRAM_USER.1),
        "SELECT current_user",
    )
    .unwrap();
    assert_eq!(user, SCRAM_USER.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_console_over_tls_uses_scram_channel_binding() {
    std::env::set_var("DDLGUARD_TEST_TLS_ADMIN_PASSWORD", "tls-admin-pw");
    let cluster = Cluster::shared();
    let certs = proxy_certs("console-tls");
    let proxy = TestProxy::start_with(cluster, |c| {
        c.server.tls_cert = Some(certs.cert.clone());
        c.server.tls_key = Some(certs.key.clone());
        c.admin.users = vec![ddlguard::config::AdminUser {
            name: "admin".into(),
            password: None,
            password_env: Some("DDLGUARD_TEST_TLS_ADMIN_PASSWORD".into()),
        }];
    })
    .await;
    let port = proxy.addr.port();
    let conninfo = |binding: &str| {
        format!(
            "host=localhost port={port} user=admin dbname=ddlguard sslmode=verify-full sslrootcert={} channel_binding={binding}",
            certs.ca.display()
        )
    };
    // `require` fails unless the server offers SCRAM-SHA-256-PLUS and the
    // binding to the proxy's certificate checks out.
    let out = psql(
        cluster,
        &conninfo("require"),
        Some("tls-admin-pw"),
        "SHOW RULES",
    )
    .unwrap();
    assert!(out.contains("create-index-nonconcurrent|rewrite"), "{out}");
    let out = psql(
        cluster,
        &conninfo("disable"),
        Some("tls-admin-pw"),
        "SHOW CONFIG",
    )
    .unwrap();
    assert!(out.contains("admin.database|ddlguard|reload"), "{out}");
    let err = psql(cluster, &conninfo("prefer"), Some("wrong"), "SHOW RULES").unwrap_err();
    assert!(err.contains("password authentication failed"), "{err}");
}

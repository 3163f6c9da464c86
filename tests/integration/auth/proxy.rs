//! `auth.mode = "proxy"` with TLS on both legs in front of a Postgres that
//! takes only SCRAM (md5 for one user) over TLS: the clients libpq and
//! tokio-postgres use by default, channel binding required or not, get in;
//! failures read as Postgres words them and are counted; the verifier cache
//! follows a password change; cancel keys are the server's own.

use crate::support::certs::TestCerts;
use crate::support::cluster::{MD5_USER, SCRAM_USER};
use crate::support::scram_cluster::{proxy_certs, proxy_mode, psql, scram_cluster};
use crate::support::TestProxy;
use ddlguard::config::{AuthMode, UpstreamConfig, UpstreamTls};
use ddlguard::net::pg_tls::RustlsMake;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// "user ssl" of the session as the upstream sees it.
const WHO: &str =
    "SELECT current_user || ' ' || ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

/// A rustls client trusting the proxy's CA; `alpn` offers "postgresql".
pub fn client_tls(certs: &TestCerts, alpn: bool) -> RustlsMake {
    let verify = UpstreamConfig {
        host: "localhost".into(),
        tls: UpstreamTls::VerifyFull,
        ca_file: Some(certs.ca.clone()),
        ..UpstreamConfig::default()
    };
    let mut config = (*ddlguard::net::tls::client_config(&verify).unwrap()).clone();
    if alpn {
        config.alpn_protocols = vec![b"postgresql".to_vec()];
    }
    RustlsMake::new(Arc::new(config))
}

/// Connects with tokio-postgres over TLS (`extra` adds conninfo keys).
pub async fn tp_login(
    proxy: &TestProxy,
    certs: &TestCerts,
    user: &str,
    password: &str,
    extra: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let conn = format!(
        "host=localhost port={} user={user} password='{password}' dbname=postgres sslmode=require {extra}",
        proxy.addr.port()
    );
    let alpn = extra.contains("sslnegotiation=direct");
    let (client, connection) = tokio_postgres::connect(&conn, client_tls(certs, alpn)).await?;
    tokio::spawn(connection);
    Ok(client)
}

fn conninfo(proxy: &TestProxy, user: &str, extra: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user={user} dbname=postgres {extra}",
        proxy.addr.port()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_gets_in_over_tls_both_legs_with_channel_binding_as_it_likes() {
    let cluster = scram_cluster();
    let certs = proxy_certs("auth-psql");
    let proxy = proxy_mode(&certs, |_| {}).await;
    let (user, pw) = SCRAM_USER;
    let verify = format!(
        "sslmode=verify-full host=localhost sslrootcert={} channel_binding=require",
        certs.ca.display()
    );
    for extra in [
        // A plain client leg: SCRAM without binding there, -PLUS upstream.
        "sslmode=disable",
        "sslmode=require",
        "sslmode=require channel_binding=require",
        verify.as_str(),
    ] {
        let got = psql(cluster, &conninfo(&proxy, user, extra), Some(pw), WHO);
        assert_eq!(got.as_deref(), Ok("scramuser true"), "{extra}");
    }
    // The same setup relayed (passthrough) is what issue 16 reported: the
    // client's signed "y" flag meets a server that sees TLS.
    let relayed = proxy_mode(&certs, |c| c.auth.mode = AuthMode::Passthrough).await;
    let err = psql(
        cluster,
        &conninfo(&relayed, user, "sslmode=require"),
        Some(pw),
        WHO,
    )
    .unwrap_err();
    assert!(err.contains("channel binding"), "{err}");
    let got = psql(
        cluster,
        &conninfo(&relayed, user, "sslmode=require channel_binding=disable"),
        Some(pw),
        WHO,
    );
    assert_eq!(
        got.as_deref(),
        Ok("scramuser true"),
        "passthrough still relays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_with_required_channel_binding_and_an_md5_user() {
    scram_cluster();
    let certs = proxy_certs("auth-tp");
    let proxy = proxy_mode(&certs, |_| {}).await;
    let client = tp_login(
        &proxy,
        &certs,
        SCRAM_USER.0,
        SCRAM_USER.1,
        "channel_binding=require",
    )
    .await
    .unwrap();
    let row = client.query_one(WHO, &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "scramuser true");
    let client = tp_login(&proxy, &certs, MD5_USER.0, MD5_USER.1, "")
        .await
        .unwrap();
    let row = client.query_one(WHO, &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "md5user true");
    let got = psql(
        scram_cluster(),
        &conninfo(&proxy, MD5_USER.0, "sslmode=require"),
        Some(MD5_USER.1),
        "SELECT current_user",
    );
    assert_eq!(got.as_deref(), Ok("md5user"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_and_unknown_users_fail_alike_and_are_counted() {
    scram_cluster();
    let certs = proxy_certs("auth-fail");
    let proxy = proxy_mode(&certs, |_| {}).await;
    let before = proxy
        .handle
        .counters()
        .auth_failures
        .load(Ordering::Relaxed);
    for (user, password) in [
        (SCRAM_USER.0, "wrong"),
        (MD5_USER.0, "wrong"),
        ("nosuchuser", "whatever"),
    ] {
        let err = tp_login(&proxy, &certs, user, password, "").await.err();
        let err = err.unwrap_or_else(|| panic!("{user} got in with a wrong password"));
        let db = err.as_db_error().unwrap_or_else(|| panic!("{user}: {err}"));
        assert_eq!(db.code().code(), "28P01", "{user}");
        assert_eq!(
            db.message(),
            format!("password authentication failed for user \"{user}\"")
        );
    }
    let err = psql(
        scram_cluster(),
        &conninfo(&proxy, "nosuchuser", "sslmode=require"),
        Some("x"),
        "SELECT 1",
    )
    .unwrap_err();
    assert!(
        err.contains("password authentication failed for user \"nosuchuser\""),
        "{err}"
    );
    let after = proxy
        .handle
        .counters()
        .auth_failures
        .load(Ordering::Relaxed);
    assert_eq!(after - before, 4);
    let metrics = ddlguard::admin::metrics::render(&proxy.handle).unwrap();
    assert!(
        metrics.contains(&format!("ddlguard_auth_failures_total {after}")),
        "{metrics}"
    );
    // And the proxy goes on serving.
    assert!(tp_login(&proxy, &certs, SCRAM_USER.0, SCRAM_USER.1, "")
        .await
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_password_refreshes_the_cached_verifier() {
    let cluster = scram_cluster();
    cluster.psql_admin("DROP ROLE IF EXISTS rotuser");
    cluster.psql_admin(
        "SET password_encryption = 'scram-sha-256'; CREATE ROLE rotuser LOGIN PASSWORD 'one'",
    );
    let certs = proxy_certs("auth-rotate");
    let proxy = proxy_mode(&certs, |c| {
        c.auth.cache_ttl = ddlguard::config::HumanDuration(Duration::from_secs(3600));
    })
    .await;
    assert!(tp_login(&proxy, &certs, "rotuser", "one", "").await.is_ok());
    cluster.psql_admin("ALTER ROLE rotuser PASSWORD 'two'");
    // The cached verifier is the old one: at most the first login with
    // the new password fails, and it makes the proxy read the verifier again.
    if let Err(e) = tp_login(&proxy, &certs, "rotuser", "two", "").await {
        let code = e.as_db_error().map(|d| d.code().code().to_string());
        assert_eq!(code.as_deref(), Some("28P01"), "{e}");
    }
    let client = tp_login(&proxy, &certs, "rotuser", "two", "")
        .await
        .expect("the new password works once the verifier was read again");
    let row = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "rotuser");
    assert!(tp_login(&proxy, &certs, "rotuser", "one", "")
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_reaches_the_backend_the_client_was_told_about() {
    scram_cluster();
    let certs = proxy_certs("auth-cancel");
    let proxy = proxy_mode(&certs, |_| {}).await;
    let client = tp_login(&proxy, &certs, SCRAM_USER.0, SCRAM_USER.1, "")
        .await
        .unwrap();
    let token = client.cancel_token();
    let tls = client_tls(&certs, false);
    let sleeper = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(60)").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    token.cancel_query(tls).await.unwrap();
    let result = tokio::time::timeout(Duration::from_secs(20), sleeper)
        .await
        .expect("the cancel landed")
        .unwrap();
    let err = result.expect_err("the sleep was cancelled");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err}");
}

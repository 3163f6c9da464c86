//! Authentication. Here: relayed both ways (passthrough, and proxy mode
//! without a service login): trust, password, md5 and SCRAM work without
//! the proxy knowing any password, and failures are the server's own.
//! `proxy`: ddlguard authenticates clients itself (TLS both legs, channel
//! binding); `direct_tls`: PostgreSQL 17's `sslnegotiation=direct`;
//! `fallback`: proxy mode before the lookup function exists.

use crate::support::cluster::{MD5_USER, PASSWORD_USER, SCRAM_USER};
use crate::support::{Cluster, TestProxy};
use tokio_postgres::NoTls;

async fn login(
    proxy: &TestProxy,
    user: &str,
    password: &str,
) -> Result<String, tokio_postgres::Error> {
    let conn = format!(
        "host=127.0.0.1 port={} user={user} password='{password}' dbname=postgres sslmode=disable",
        proxy.addr.port()
    );
    let (client, connection) = tokio_postgres::connect(&conn, NoTls).await?;
    tokio::spawn(connection);
    let row = client.query_one("SELECT current_user::text", &[]).await?;
    Ok(row.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_password_method_authenticates_through_the_proxy() {
    let cluster = Cluster::shared();
    // Upstream over TLS (the cluster has ssl = on): SCRAM-SHA-256-PLUS is
    // offered by the server and must be hidden from the client.
    let proxy = TestProxy::start(cluster).await;
    assert_eq!(login(&proxy, "postgres", "").await.unwrap(), "postgres");
    for (user, password) in [MD5_USER, SCRAM_USER, PASSWORD_USER] {
        assert_eq!(login(&proxy, user, password).await.unwrap(), user, "{user}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_gets_the_servers_28p01() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start(cluster).await;
    for (user, _) in [MD5_USER, SCRAM_USER, PASSWORD_USER] {
        let err = login(&proxy, user, "wrong").await.unwrap_err();
        let db = err.as_db_error().unwrap_or_else(|| panic!("{user}: {err}"));
        assert_eq!(db.code().code(), "28P01", "{user}: {err}");
        assert!(
            db.message().contains(user),
            "the server's message: {}",
            db.message()
        );
    }
    // And the proxy goes on serving.
    assert_eq!(
        login(&proxy, SCRAM_USER.0, SCRAM_USER.1).await.unwrap(),
        SCRAM_USER.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_works_with_upstream_tls_disabled_too() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start_with(cluster, |c| {
        c.upstream.tls = ddlguard::config::UpstreamTls::Disable;
    })
    .await;
    assert_eq!(
        login(&proxy, SCRAM_USER.0, SCRAM_USER.1).await.unwrap(),
        SCRAM_USER.0
    );
    assert_eq!(
        login(&proxy, MD5_USER.0, MD5_USER.1).await.unwrap(),
        MD5_USER.0
    );
}

mod direct_tls;
mod fallback;
mod own_connections;
mod proxy;

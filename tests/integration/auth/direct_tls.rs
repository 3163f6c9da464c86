//! PostgreSQL 17's `sslnegotiation=direct`: TLS from the first byte, with
//! the ALPN protocol `postgresql`; without ALPN the proxy refuses, as
//! Postgres does. (psql 17 is not installable here; tokio-postgres speaks
//! direct negotiation the same way.)

use super::proxy::tp_login;
use crate::support::cluster::SCRAM_USER;
use crate::support::scram_cluster::{proxy_certs, proxy_mode, scram_cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tls_with_alpn_is_accepted_and_without_it_refused() {
    scram_cluster();
    let certs = proxy_certs("auth-direct");
    let proxy = proxy_mode(&certs, |_| {}).await;
    let (user, pw) = SCRAM_USER;
    let client = tp_login(
        &proxy,
        &certs,
        user,
        pw,
        "sslnegotiation=direct channel_binding=require",
    )
    .await
    .unwrap();
    let row = client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), user);
    // The same client without ALPN: the handshake is refused after TLS.
    let conn = format!(
        "host=localhost port={} user={user} password='{pw}' dbname=postgres sslmode=require sslnegotiation=direct",
        proxy.addr.port()
    );
    let no_alpn = super::proxy::client_tls(&certs, false);
    let err = tokio_postgres::connect(&conn, no_alpn).await.err();
    assert!(err.is_some(), "direct TLS without ALPN got in");
    // The SSLRequest way still works after both.
    assert!(tp_login(&proxy, &certs, user, pw, "").await.is_ok());
}

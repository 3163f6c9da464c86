//! The proxy's own connections follow libpq's TLS settings: the
//! `postgres://` usage store by `sslmode` / `sslrootcert` in its URL, with
//! SCRAM channel binding over TLS, against a server that takes this user
//! only over TLS.

use crate::support::scram_cluster::{proxy_certs, scram_cluster, SERVICE};
use ddlguard::usage::store::{Store, StoreSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_usage_store_speaks_tls_as_its_url_says() {
    let cluster = scram_cluster();
    cluster.psql_admin("DROP DATABASE IF EXISTS store_tls WITH (FORCE)");
    cluster.psql_admin(&format!("CREATE DATABASE store_tls OWNER {}", SERVICE.0));
    let url = |host: &str, query: &str| {
        format!(
            "postgres://{}:service%20secret@{host}:{}/store_tls?{query}",
            SERVICE.0, cluster.port
        )
    };
    let ca = cluster.certs.ca.display().to_string();
    for query in [
        // libpq's default sslmode (prefer) finds TLS on offer.
        String::new(),
        "sslmode=require&channel_binding=require".to_string(),
        format!("sslmode=verify-full&sslrootcert={ca}&channel_binding=require"),
    ] {
        let spec = StoreSpec::Postgres(url("localhost", &query));
        let opened = Store::open(&spec).await;
        assert!(opened.is_ok(), "{query}: {:?}", opened.err());
    }
    // Plain text is what pg_hba refuses this user: the store did use TLS above.
    let spec = StoreSpec::Postgres(url("localhost", "sslmode=disable"));
    let err = Store::open(&spec).await.err().expect("plain text refused");
    assert!(err.to_string().contains("pg_hba.conf"), "{err}");
    // verify-ca checks the chain: another CA's root is refused.
    let other = proxy_certs("store-other-ca").ca.display().to_string();
    let spec = StoreSpec::Postgres(url(
        "localhost",
        &format!("sslmode=verify-ca&sslrootcert={other}"),
    ));
    let err = Store::open(&spec).await.err().expect("unknown CA refused");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

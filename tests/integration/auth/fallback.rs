//! `auth.mode = "proxy"` before the lookup function exists: sessions are
//! relayed as in passthrough, and the log gives the SQL to create it.

use crate::support::cluster::SCRAM_USER;
use crate::support::scram_cluster::{psql, scram_cluster, SERVICE, SERVICE_ENV};
use crate::support::spawn::free_port;
use crate::support::BinProxy;
use std::time::{Duration, Instant};

#[test]
fn without_the_lookup_function_sessions_are_relayed_and_the_log_says_what_to_create() {
    let cluster = scram_cluster();
    let port = free_port();
    let dir = std::env::temp_dir().join(format!(
        "ddlguard-test-{}-auth-fallback",
        std::process::id()
    ));
    // template1 has no ddlguard.user_lookup.
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[upstream]\nport = {}\ntls = \"require\"\nuser = \"{}\"\npassword_env = \"{SERVICE_ENV}\"\n\n[auth]\nmode = \"proxy\"\ndatabase = \"template1\"\n\n[usage]\nstore = \"memory\"\n\n[admin]\nhttp_listen = \"\"\n",
        cluster.port, SERVICE.0
    );
    let proxy = BinProxy::spawn(&dir, port, &config);
    let conninfo = format!(
        "host=127.0.0.1 port={port} user={} dbname=postgres sslmode=disable",
        SCRAM_USER.0
    );
    let got = psql(
        cluster,
        &conninfo,
        Some(SCRAM_USER.1),
        "SELECT current_user",
    );
    assert_eq!(got.as_deref(), Ok(SCRAM_USER.0));
    let want = format!(
        "GRANT EXECUTE ON FUNCTION ddlguard.user_lookup(text) TO {};",
        SERVICE.0
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !proxy.log().contains(&want) {
        assert!(
            Instant::now() < deadline,
            "no SQL in the log:\n{}",
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = proxy.log();
    assert!(
        log.contains("CREATE OR REPLACE FUNCTION ddlguard.user_lookup"),
        "{log}"
    );
    assert!(log.contains("database \"template1\""), "{log}");
}

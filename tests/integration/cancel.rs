//! Cancel requests land where the client meant them: the proxy closes the
//! client's cancel connection only after Postgres closed the forwarded one,
//! so a client that waits for that close (as libpq, psycopg and asyncpg do)
//! never sees its cancel hit the next statement.

use crate::support::raw::{query, RawClient};
use crate::support::{Cluster, TestProxy};
use ddlguard::wire::messages::error_fields;
use ddlguard::wire::startup::cancel_request;
use std::time::Duration;

/// Runs one simple query on `raw` and returns the SQLSTATE it failed with.
async fn run(raw: &mut RawClient, sql: &str) -> Option<String> {
    raw.send(&query(sql)).await;
    let mut code = None;
    loop {
        let (tag, body) = raw.read_message().await.expect("reply to the query");
        match tag {
            b'E' => code = Some(error_fields(&body).code),
            b'Z' => return code,
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_of_an_idle_session_never_cancels_the_next_statement() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start(cluster).await;
    let port = proxy.addr.port();
    let (mut session, seen) = RawClient::login_with(port, 196_608, &[]).await;
    let key = seen
        .iter()
        .find(|(tag, _)| *tag == b'K')
        .map(|(_, body)| body.clone())
        .expect("BackendKeyData relayed");
    let mut cancelled = 0;
    for _ in 0..200 {
        // What PQcancel does: send the request, wait for the server's close.
        let mut canceller = RawClient::connect(port).await;
        canceller.send(&cancel_request(&key)).await;
        assert!(
            canceller.closed_within(Duration::from_secs(15)).await,
            "the proxy closes the cancel connection"
        );
        match run(&mut session, "SELECT pg_sleep(0.02)").await.as_deref() {
            None => {}
            Some("57014") => cancelled += 1,
            Some(other) => panic!("unexpected error {other}"),
        }
    }
    assert_eq!(
        cancelled, 0,
        "a cancel acknowledged while the session was idle hit the next statement"
    );
    // The session is still usable.
    assert_eq!(run(&mut session, "SELECT 1").await, None);
}

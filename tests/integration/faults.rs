//! Faults end one session with a clear error; the proxy and the other
//! sessions go on.

use crate::support::raw::{query, RawClient};
use crate::support::spawn::free_port;
use crate::support::{connect, Cluster, TestProxy};
use std::time::Duration;
use tokio_postgres::NoTls;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_gets_08001_naming_the_address() {
    let cluster = Cluster::shared();
    let dead_port = free_port();
    let proxy = TestProxy::start_with(cluster, |c| c.upstream.port = dead_port).await;
    let err = tokio_postgres::connect(&proxy.conn("postgres"), NoTls)
        .await
        .err()
        .expect("connection must fail");
    let db = err.as_db_error().expect("an ErrorResponse from the proxy");
    assert_eq!(db.code().code(), "08001");
    assert!(
        db.message().contains(&format!("127.0.0.1:{dead_port}")),
        "{}",
        db.message()
    );
    assert!(db.hint().unwrap_or("").contains("[upstream]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_restart_ends_sessions_and_new_ones_work_after() {
    let cluster = Cluster::start_new("restart");
    let proxy = TestProxy::start(&cluster).await;
    let before = proxy.connect("postgres").await;
    before.query_one("SELECT 1", &[]).await.unwrap();
    cluster.stop();
    let err = before.query_one("SELECT 1", &[]).await.unwrap_err();
    // Postgres's own 57P01 on fast shutdown, or the proxy's 08006 if the
    // socket just closed: either way a clear error, not a hang.
    assert!(err.is_closed() || err.code().is_some(), "{err}");
    let refused = tokio_postgres::connect(&proxy.conn("postgres"), NoTls)
        .await
        .err()
        .unwrap();
    assert_eq!(refused.as_db_error().unwrap().code().code(), "08001");
    cluster.start();
    let after = proxy.connect("postgres").await;
    let one: i32 = after.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_ends_only_that_session() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start(cluster).await;
    let bystander = proxy.connect("postgres").await;
    let mut raw = RawClient::login(proxy.addr.port()).await;
    // Length 2 is below the 4 bytes of the length field itself.
    raw.send(b"Q\0\0\0\x02").await;
    let (code, message) = raw.read_error().await.expect("an ErrorResponse");
    assert_eq!(code, "08P01");
    assert!(message.contains("invalid message length"), "{message}");
    assert!(raw.closed_within(Duration::from_secs(10)).await);
    let one: i32 = bystander.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_ends_that_session_with_08p01() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start_with(cluster, |c| c.server.max_message_size.0 = 4096).await;
    let (via, connection) = tokio_postgres::connect(&proxy.conn("postgres"), NoTls)
        .await
        .unwrap();
    let conn_task = tokio::spawn(connection);
    let small: String = via
        .query_one("SELECT repeat('a', 100)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(small.len(), 100);
    // Results are not limited, only client messages.
    let big: String = via
        .query_one("SELECT repeat('a', 100000)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(big.len(), 100_000);
    let long = format!("SELECT '{}'", "x".repeat(10_000));
    let err = via.simple_query(&long).await.unwrap_err();
    assert!(conn_task.await.unwrap().is_err(), "the session ends");
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("not an ErrorResponse: {err:?}"));
    assert_eq!(db.code().code(), "08P01");
    assert!(
        db.message().contains("max_message_size"),
        "{}",
        db.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_message_types_are_relayed_for_the_server_to_judge() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start(cluster).await;
    let mut raw = RawClient::login(proxy.addr.port()).await;
    raw.send(b"y\0\0\0\x04").await;
    let (code, message) = raw.read_error().await.expect("the server's error");
    assert_eq!(code, "08P01");
    assert!(
        message.contains("invalid frontend message type 121"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_queries_and_pipelined_simple_queries_work() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start(cluster).await;
    let mut raw = RawClient::login(proxy.addr.port()).await;
    let mut batch = Vec::new();
    for i in 0..50 {
        batch.extend(query(&format!("SELECT {i}")));
    }
    raw.send(&batch).await;
    let mut ready = 0;
    while ready < 50 {
        let (tag, _) = raw.read_message().await.expect("reply");
        assert_ne!(tag, b'E');
        if tag == b'Z' {
            ready += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_answers_53300() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start_with(cluster, |c| c.server.max_client_connections = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(proxy.connect("postgres").await);
    }
    let err = tokio_postgres::connect(&proxy.conn("postgres"), NoTls)
        .await
        .err()
        .unwrap();
    let db = err.as_db_error().expect("ErrorResponse");
    assert_eq!(db.code().code(), "53300");
    assert!(db.hint().unwrap_or("").contains("max_client_connections"));
    drop(held.pop());
    // The freed slot is reusable once the proxy has seen the close.
    let mut ok = None;
    for _ in 0..100 {
        if let Ok((c, conn)) = tokio_postgres::connect(&proxy.conn("postgres"), NoTls).await {
            tokio::spawn(conn);
            ok = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = ok.expect("a slot frees up");
    c.query_one("SELECT 1", &[]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_after_the_startup_timeout() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start_with(cluster, |c| {
        c.server.startup_timeout.0 = Duration::from_millis(500)
    })
    .await;
    let mut silent = RawClient::connect(proxy.addr.port()).await;
    assert!(silent.closed_within(Duration::from_secs(15)).await);
    // A startup packet that declares a length Postgres would refuse.
    let mut bad = RawClient::connect(proxy.addr.port()).await;
    bad.send(&[0, 1, 0, 0, 0, 3, 0, 0]).await;
    assert!(bad.closed_within(Duration::from_secs(15)).await);
    let ok = connect(&proxy.conn("postgres")).await;
    ok.query_one("SELECT 1", &[]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_raw_message_gets_08p01() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start_with(cluster, |c| c.server.max_message_size.0 = 4096).await;
    let mut raw = RawClient::login(proxy.addr.port()).await;
    raw.send(&query(&format!("SELECT '{}'", "x".repeat(10_000))))
        .await;
    let (code, message) = raw.read_error().await.expect("an ErrorResponse");
    assert_eq!(code, "08P01");
    assert!(message.contains("max_message_size"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_3_2_and_unknown_options_get_the_servers_negotiation() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start(cluster).await;
    // Protocol 3.2 (PostgreSQL 18's) with a protocol extension option: a 15
    // server answers NegotiateProtocolVersion, relayed as it sent it.
    let (_raw, via) =
        RawClient::login_with(proxy.addr.port(), 196_610, &[("_pq_.test_option", "on")]).await;
    let (_raw, direct) =
        RawClient::login_with(cluster.port, 196_610, &[("_pq_.test_option", "on")]).await;
    let negotiate = |seen: &[(u8, Vec<u8>)]| seen.iter().find(|(t, _)| *t == b'v').cloned();
    let v = negotiate(&via).expect("NegotiateProtocolVersion through the proxy");
    assert_eq!(Some(v.clone()), negotiate(&direct));
    assert!(String::from_utf8_lossy(&v.1).contains("_pq_.test_option"));
    // BackendKeyData and ParameterStatus arrive as the server sent them.
    let statuses = |seen: &[(u8, Vec<u8>)]| {
        seen.iter()
            .filter(|(t, _)| *t == b'S')
            .map(|(_, b)| b.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(statuses(&via), statuses(&direct));
    assert_eq!(via.iter().filter(|(t, _)| *t == b'K').count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gssenc_and_ssl_requests_are_declined_without_certificates() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start(cluster).await;
    let mut raw = RawClient::connect(proxy.addr.port()).await;
    for code in [80_877_104u32, 80_877_103] {
        let mut packet = 8u32.to_be_bytes().to_vec();
        packet.extend_from_slice(&code.to_be_bytes());
        raw.send(&packet).await;
        let mut answer = [0u8; 1];
        use tokio::io::AsyncReadExt;
        raw.stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"N", "request {code}");
    }
    // The same connection then starts a normal session.
    raw.send(&ddlguard::wire::startup::build_startup(
        196_608,
        &[("user", "postgres"), ("database", "postgres")],
    ))
    .await;
    loop {
        let (tag, _) = raw.read_message().await.expect("startup reply");
        assert_ne!(tag, b'E');
        if tag == b'Z' {
            break;
        }
    }
    raw.send(&query("SELECT 1")).await;
    let (tag, _) = raw.read_message().await.unwrap();
    assert_eq!(tag, b'T');
}

/// The lines `cluster`'s server log holds for backend `pid`, once one of
/// them contains `wanted` (or after 15 s).
async fn server_log_of(cluster: &Cluster, pid: u32, wanted: &str) -> String {
    let tag = format!("[{pid}] ");
    let mut lines = String::new();
    for _ in 0..150 {
        let log = std::fs::read_to_string(cluster.dir.join("postgres.log")).unwrap_or_default();
        lines = log
            .lines()
            .filter(|l| l.contains(&tag))
            .collect::<Vec<_>>()
            .join("\n");
        if lines.contains(wanted) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_vanishing_during_copy_from_stdin_gets_copy_fail_upstream() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("faults_copy_vanish");
    let proxy = TestProxy::start(cluster).await;
    let (mut raw, seen) =
        RawClient::login_with(proxy.addr.port(), 196_608, &[("database", &db)]).await;
    let key = seen
        .iter()
        .find(|(tag, _)| *tag == b'K')
        .map(|(_, body)| body.clone())
        .expect("BackendKeyData relayed");
    let pid = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    raw.send(&query("CREATE TABLE vanish (a int)")).await;
    while raw.read_message().await.expect("reply").0 != b'Z' {}
    raw.send(&query("COPY vanish FROM STDIN")).await;
    let (tag, _) = raw.read_message().await.expect("CopyInResponse");
    assert_eq!(tag, b'G');
    let row = b"1\n";
    let mut data = vec![b'd'];
    data.extend_from_slice(&(row.len() as u32 + 4).to_be_bytes());
    data.extend_from_slice(row);
    raw.send(&data).await;
    drop(raw);

    let log = server_log_of(cluster, pid, "COPY from stdin failed").await;
    assert!(
        log.contains(ddlguard::proxy::COPY_ABANDONED),
        "the server saw ddlguard's CopyFail:\n{log}"
    );
    assert!(
        !log.contains("unexpected message type"),
        "no Terminate inside the COPY:\n{log}"
    );
    let direct = connect(&cluster.direct_conn(&db)).await;
    let rows: i64 = direct
        .query_one("SELECT count(*) FROM vanish", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 0, "the abandoned COPY stored nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_startup_packets_get_an_error_response_then_a_clean_close() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start(cluster).await;
    let port = proxy.addr.port();
    // (packet, expected SQLSTATE, words of the message)
    let mut oversized = 100_000u32.to_be_bytes().to_vec();
    oversized.extend_from_slice(&[0u8; 20_000]);
    let no_user = ddlguard::wire::startup::build_startup(196_608, &[("database", "postgres")]);
    let mut unterminated = ddlguard::wire::startup::build_startup(196_608, &[("user", "x")]);
    unterminated.truncate(unterminated.len() - 2);
    let len = unterminated.len() as u32;
    unterminated[..4].copy_from_slice(&len.to_be_bytes());
    let cases: [(&[u8], &str, &str); 3] = [
        (&oversized, "08P01", "length"),
        (&no_user, "28000", "user name"),
        (&unterminated, "08P01", "unterminated"),
    ];
    for (packet, code, words) in cases {
        let mut raw = RawClient::connect(port).await;
        raw.send(packet).await;
        let (got, message) = raw
            .read_error()
            .await
            .unwrap_or_else(|| panic!("an ErrorResponse for the {words} case, not a reset"));
        assert_eq!(got, code, "{message}");
        assert!(message.contains(words), "{message}");
        assert!(raw.closed_within(Duration::from_secs(10)).await);
    }
    // The proxy goes on.
    proxy
        .connect("postgres")
        .await
        .query_one("SELECT 1", &[])
        .await
        .unwrap();
}

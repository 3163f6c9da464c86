//! The relay is transparent: results, errors, pipelining, COPY, notifications,
//! cancel and session identity match a direct connection.

use crate::support::{connect, Cluster, TestProxy};
use futures_util::future::join_all;
use std::time::{Duration, Instant};
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, NoTls};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_of_many_types_round_trip_like_direct() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("relay_types");
    let proxy = TestProxy::start(cluster).await;
    let via = proxy.connect(&db).await;
    let direct = connect(&cluster.direct_conn(&db)).await;

    let sql = "SELECT $1::int2, $2::int4, $3::int8, $4::float4, $5::float8, $6::text, \
               $7::bytea, $8::bool, $9::int4[], $10::text, $11::varchar, $12::oid";
    let blob: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let arr = vec![1i32, -2, 3, i32::MAX];
    let none: Option<String> = None;
    let params: [&(dyn ToSql + Sync); 12] = [
        &i16::MIN,
        &i32::MAX,
        &i64::MIN,
        &1.5f32,
        &std::f64::consts::PI,
        &"h\u{e9}llo \u{1F600} 'quoted' \"x\"",
        &blob,
        &true,
        &arr,
        &none,
        &"varchar",
        &42u32,
    ];
    for client in [&via, &direct] {
        let row = client.query_one(sql, &params).await.unwrap();
        assert_eq!(row.get::<_, i16>(0), i16::MIN);
        assert_eq!(row.get::<_, i32>(1), i32::MAX);
        assert_eq!(row.get::<_, i64>(2), i64::MIN);
        assert_eq!(row.get::<_, f32>(3), 1.5);
        assert_eq!(row.get::<_, f64>(4), std::f64::consts::PI);
        assert_eq!(row.get::<_, &str>(5), "h\u{e9}llo \u{1F600} 'quoted' \"x\"");
        assert_eq!(row.get::<_, Vec<u8>>(6), blob);
        assert!(row.get::<_, bool>(7));
        assert_eq!(row.get::<_, Vec<i32>>(8), arr);
        assert_eq!(row.get::<_, Option<String>>(9), None);
        assert_eq!(row.get::<_, &str>(10), "varchar");
        assert_eq!(row.get::<_, u32>(11), 42);
    }
    // Text-format results of the simple protocol are byte-identical.
    let q = "SELECT now()::date::text, 1::numeric / 3, '{\"a\": [1, 2]}'::jsonb, interval '1 day 2 hours', NULL";
    let rows = |msgs: Vec<tokio_postgres::SimpleQueryMessage>| -> Vec<Vec<Option<String>>> {
        msgs.into_iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect())
                }
                _ => None,
            })
            .collect()
    };
    let a = rows(via.simple_query(q).await.unwrap());
    let b = rows(direct.simple_query(q).await.unwrap());
    assert_eq!(a.len(), 1);
    assert_eq!(a, b);
    assert_eq!(a[0][4], None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_result_arrives_intact() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start(cluster).await;
    let via = proxy.connect("postgres").await;
    // 100,000 rows of 1,000 bytes each, every row distinct.
    let sql =
        "SELECT i, md5(i::text) || repeat(chr(65 + i % 26), 968) FROM generate_series(1, 100000) i";
    let rows = via.query(sql, &[]).await.unwrap();
    assert_eq!(rows.len(), 100_000);
    let mut total = 0usize;
    for (n, row) in rows.iter().enumerate() {
        let i: i32 = row.get(0);
        let s: &str = row.get(1);
        assert_eq!(i as usize, n + 1);
        assert_eq!(s.len(), 1000);
        assert_eq!(s.as_bytes()[999], b'A' + (i % 26) as u8);
        total += s.len();
    }
    assert_eq!(total, 100_000_000);
    // The same digest as Postgres computes over the same rows.
    let digest_sql = "SELECT md5(string_agg(md5(i::text) || repeat(chr(65 + i % 26), 968), '' ORDER BY i)) FROM generate_series(1, 100000) i";
    let server_digest: String = via.query_one(digest_sql, &[]).await.unwrap().get(0);
    let direct = connect(&cluster.direct_conn("postgres")).await;
    let direct_digest: String = direct.query_one(digest_sql, &[]).await.unwrap().get(0);
    assert_eq!(server_digest, direct_digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_of_1000_statements_keeps_order() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start(cluster).await;
    let via = proxy.connect("postgres").await;
    let stmt = via
        .prepare("SELECT $1::int4 * 2, pg_backend_pid()")
        .await
        .unwrap();
    // All 1000 Bind/Execute/Sync go out before the first result is read.
    let futures = (0..1000i32).map(|i| {
        let via = &via;
        let stmt = &stmt;
        async move { via.query_one(stmt, &[&i]).await }
    });
    let results = join_all(futures).await;
    let pid: i32 = via
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    for (i, row) in results.into_iter().enumerate() {
        let row = row.unwrap();
        assert_eq!(row.get::<_, i32>(0), i as i32 * 2);
        assert_eq!(
            row.get::<_, i32>(1),
            pid,
            "one backend for the whole session"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_inside_a_transaction_then_rollback() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start(cluster).await;
    let via = proxy.connect("postgres").await;
    via.batch_execute("BEGIN").await.unwrap();
    let err = via.query("SELECT 1 / 0", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "22012");
    let err = via.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(
        err.code().unwrap().code(),
        "25P02",
        "the transaction is in state E: {err}"
    );
    via.batch_execute("ROLLBACK").await.unwrap();
    let one: i32 = via.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    // A failing statement in the simple protocol inside a multi-statement batch.
    let err = via
        .batch_execute("BEGIN; SELECT 1; SELECT * FROM no_such_table; COMMIT")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01");
    via.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_out_of_a_million_rows() {
    use bytes::Bytes;
    use futures_util::{SinkExt, StreamExt};
    let cluster = Cluster::shared();
    let db = cluster.create_db("relay_copy");
    let proxy = TestProxy::start(cluster).await;
    let via = proxy.connect(&db).await;
    let direct = connect(&cluster.direct_conn(&db)).await;
    via.batch_execute("CREATE TABLE t (id int, payload text)")
        .await
        .unwrap();

    let mut sent = Vec::with_capacity(40 << 20);
    for i in 0..1_000_000u32 {
        sent.extend_from_slice(
            format!("{i}\trow-{:08x}\n", i.wrapping_mul(2_654_435_761)).as_bytes(),
        );
    }
    let sink = via
        .copy_in("COPY t (id, payload) FROM STDIN")
        .await
        .unwrap();
    futures_util::pin_mut!(sink);
    for chunk in sent.chunks(64 * 1024) {
        sink.send(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    let n = sink.finish().await.unwrap();
    assert_eq!(n, 1_000_000);

    let mut via_out = Vec::new();
    let stream = via
        .copy_out("COPY (SELECT * FROM t ORDER BY id) TO STDOUT")
        .await
        .unwrap();
    futures_util::pin_mut!(stream);
    while let Some(chunk) = stream.next().await {
        via_out.extend_from_slice(&chunk.unwrap());
    }
    let mut direct_out = Vec::new();
    let stream = direct
        .copy_out("COPY (SELECT * FROM t ORDER BY id) TO STDOUT")
        .await
        .unwrap();
    futures_util::pin_mut!(stream);
    while let Some(chunk) = stream.next().await {
        direct_out.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(via_out.len(), sent.len());
    assert!(
        via_out == sent,
        "COPY OUT through the proxy differs from what was copied in"
    );
    assert!(via_out == direct_out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_notify_between_two_clients_carries_the_real_pid() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start(cluster).await;
    let (listener, mut connection) = tokio_postgres::connect(&proxy.conn("postgres"), NoTls)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(msg) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let Ok(AsyncMessage::Notification(n)) = msg {
                let _ = tx.send(n);
            }
        }
    });
    listener
        .batch_execute("LISTEN ddlguard_test")
        .await
        .unwrap();
    let notifier = proxy.connect("postgres").await;
    let notifier_pid: i32 = notifier
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    notifier
        .batch_execute("NOTIFY ddlguard_test, 'hello through the proxy'")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("notification arrives")
        .unwrap();
    assert_eq!(n.channel(), "ddlguard_test");
    assert_eq!(n.payload(), "hello through the proxy");
    assert_eq!(
        n.process_id(),
        notifier_pid,
        "the notifying backend's real pid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_reaches_the_running_query() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start(cluster).await;
    let via = proxy.connect("postgres").await;
    let token = via.cancel_token();
    let started = Instant::now();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await
    });
    let err = via.query("SELECT pg_sleep(30)", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "57014", "{err}");
    canceller.await.unwrap().unwrap();
    // Not a timing assertion: without a working cancel this takes 30 s.
    assert!(started.elapsed() < Duration::from_secs(15));
    let one: i32 = via.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1, "the session goes on after the cancel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_mid_query_cancels_it_upstream() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start(cluster).await;
    let (via, connection) = tokio_postgres::connect(&proxy.conn("postgres"), NoTls)
        .await
        .unwrap();
    let conn_task = tokio::spawn(connection);
    via.batch_execute("SET application_name = 'disconnect_mid_query'")
        .await
        .unwrap();
    let sleeper = tokio::spawn(async move {
        let _ = via.query("SELECT pg_sleep(60)", &[]).await;
    });
    let direct = connect(&cluster.direct_conn("postgres")).await;
    let count = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'disconnect_mid_query' AND state = 'active'";
    wait_for(&direct, count, 1).await;
    // Drop the client's socket while the query runs.
    conn_task.abort();
    sleeper.abort();
    let gone =
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'disconnect_mid_query'";
    wait_for(&direct, gone, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_options_and_reset_behave_as_direct() {
    let cluster = Cluster::shared();
    let proxy = TestProxy::start(cluster).await;
    let conn = format!(
        "{} options='-c work_mem=1234kB' application_name=opts_app",
        proxy.conn("postgres")
    );
    let via = connect(&conn).await;
    let get = |sql: &'static str| {
        let via = &via;
        async move { via.query_one(sql, &[]).await.unwrap().get::<_, String>(0) }
    };
    assert_eq!(get("SHOW work_mem").await, "1234kB");
    via.batch_execute("SET work_mem = '8MB'").await.unwrap();
    assert_eq!(get("SHOW work_mem").await, "8MB");
    via.batch_execute("RESET work_mem").await.unwrap();
    assert_eq!(
        get("SHOW work_mem").await,
        "1234kB",
        "RESET returns to the startup value"
    );
    assert_eq!(
        get("SELECT current_setting('application_name')").await,
        "opts_app"
    );
    // Temp tables live as long as the client's session: one backend throughout.
    via.batch_execute("CREATE TEMP TABLE scratch (x int); INSERT INTO scratch VALUES (7)")
        .await
        .unwrap();
    let x: i32 = via
        .query_one("SELECT x FROM scratch", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(x, 7);
}

/// Polls `sql` (returning one bigint) directly until it equals `want`.
pub async fn wait_for(client: &tokio_postgres::Client, sql: &str, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n: i64 = client.query_one(sql, &[]).await.unwrap().get(0);
        if n == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql} stayed at {n}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

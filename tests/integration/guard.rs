//! Guarded execution of DDL through the proxy: a DDL that needs a strong
//! lock waits outside the lock queue while an old transaction holds its
//! table (so other sessions are not stuck behind it), names the blocker,
//! and leaves the client's own settings as they were.

use crate::support::items::{items_db, open_reader};
use crate::support::notices::with_notices;
use crate::support::{Cluster, TestProxy};
use std::time::Duration;
use tokio_postgres::Client;

/// Statements the proxy ran under guarded execution, from `/metrics`.
fn guarded(proxy: &TestProxy) -> u64 {
    proxy
        .metric(r#"ddlguard_gate_statements_total{outcome="guarded"} "#)
        .unwrap_or(0)
}

async fn setup(name: &str) -> (&'static Cluster, String, Client) {
    items_db(name, 100).await
}

/// A direct session of `app` that read `items` in a transaction it keeps
/// open (a report, a forgotten psql): it holds ACCESS SHARE until it ends.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_waits_outside_the_lock_queue_for_an_old_transaction_and_names_it() {
    let (cluster, db, _direct) = setup("guard_preflight").await;
    let proxy = TestProxy::start(cluster).await;
    let blocker = open_reader(cluster, &db, "nightly_report").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (migrator, notices) =
        with_notices(&format!("{} application_name=migrator", proxy.conn(&db))).await;
    let alter = tokio::spawn(async move {
        migrator
            .batch_execute("ALTER TABLE items ADD COLUMN note text")
            .await
    });
    // While the DDL waits, it is not in the lock queue: readers go on.
    let reader = proxy.connect(&db).await;
    for _ in 0..3 {
        // Straight to Postgres this read would queue behind the ALTER until
        // the old transaction ends (never, in this test).
        let read = reader.query_one("SELECT count(*) FROM items", &[]);
        let n: i64 = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("a reader is not queued behind the waiting DDL")
            .unwrap()
            .get(0);
        assert_eq!(n, 100);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        !alter.is_finished(),
        "the DDL waits for the old transaction"
    );
    let waiting: Vec<String> = notices.lock().unwrap().clone();
    assert!(
        waiting
            .iter()
            .any(|n| n.contains("outside the lock queue") && n.contains("nightly_report")),
        "the client is told whom it waits for: {waiting:?}"
    );
    blocker.batch_execute("COMMIT").await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), alter)
        .await
        .expect("the DDL goes ahead once the blocker ended")
        .unwrap()
        .unwrap();
    let columns: i64 = reader
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'note'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(columns, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_lock_timeout_is_as_it_was_after_guarded_ddl() {
    let (cluster, db, _direct) = setup("guard_settings").await;
    let proxy = TestProxy::start(cluster).await;
    let client = proxy.connect(&db).await;
    let lock_timeout = |rows: Vec<tokio_postgres::SimpleQueryMessage>| {
        rows.into_iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .unwrap()
    };
    client
        .batch_execute("SET lock_timeout = '5s'")
        .await
        .unwrap();
    client
        .batch_execute("ALTER TABLE items ADD COLUMN a int")
        .await
        .unwrap();
    let after = lock_timeout(client.simple_query("SHOW lock_timeout").await.unwrap());
    assert_eq!(after, "5s");
    // Inside a transaction block: SET LOCAL stays for the transaction, the
    // session value comes back after it.
    client
        .batch_execute("BEGIN; SET LOCAL lock_timeout = '7s'")
        .await
        .unwrap();
    client
        .batch_execute("ALTER TABLE items ADD COLUMN b int")
        .await
        .unwrap();
    let inside = lock_timeout(client.simple_query("SHOW lock_timeout").await.unwrap());
    client.batch_execute("COMMIT").await.unwrap();
    let outside = lock_timeout(client.simple_query("SHOW lock_timeout").await.unwrap());
    assert_eq!((inside.as_str(), outside.as_str()), ("7s", "5s"));
    // A failing DDL inside a transaction leaves it failed, as Postgres does.
    client.batch_execute("BEGIN").await.unwrap();
    let err = client
        .batch_execute("ALTER TABLE items ADD COLUMN a int")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42701");
    let aborted = client.batch_execute("SELECT 1").await.unwrap_err();
    assert_eq!(aborted.code().unwrap().code(), "25P02");
    client.batch_execute("ROLLBACK").await.unwrap();
    // The settings came back because the DDL ran guarded, not because it
    // ran unguarded: three ALTERs held and run by the proxy.
    assert_eq!(guarded(&proxy), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_that_run_out_give_55p03_naming_the_blocker_and_a_transaction_stays_usable() {
    let (cluster, db, _direct) = setup("guard_retries").await;
    let proxy = TestProxy::start_with(cluster, |c| {
        c.policy.lock_timeout = ddlguard::config::HumanDuration(Duration::from_millis(100));
        c.policy.max_attempts = 3;
        c.policy.retry_backoff_max = ddlguard::config::HumanDuration(Duration::from_millis(200));
        // No pre-flight: the attempts themselves meet the blocker.
        c.policy.preflight_wait = ddlguard::config::HumanDuration(Duration::ZERO);
    })
    .await;
    let blocker = open_reader(cluster, &db, "long_reader").await;

    let (migrator, notices) = with_notices(&proxy.conn(&db)).await;
    let err = migrator
        .batch_execute("ALTER TABLE items ADD COLUMN c1 int")
        .await
        .unwrap_err();
    let e = err.as_db_error().expect("an ErrorResponse");
    assert_eq!(e.code().code(), "55P03");
    assert!(e.message().contains("3 attempts"), "{}", e.message());
    assert!(
        e.detail().is_some_and(|d| d.contains("long_reader")),
        "the blocker is named: {e:?}"
    );
    let retries = notices.lock().unwrap().clone();
    assert_eq!(
        retries.iter().filter(|n| n.contains("retrying")).count(),
        2,
        "a notice between attempts: {retries:?}"
    );

    // Inside a transaction block, a retry starts from a savepoint: the
    // transaction is still usable when the blocker goes away mid-way. A
    // proxy with many attempts, so the outcome does not depend on timing.
    let patient = TestProxy::start_with(cluster, |c| {
        c.policy.lock_timeout = ddlguard::config::HumanDuration(Duration::from_millis(100));
        c.policy.max_attempts = 200;
        c.policy.retry_backoff_max = ddlguard::config::HumanDuration(Duration::from_millis(100));
        c.policy.preflight_wait = ddlguard::config::HumanDuration(Duration::ZERO);
    })
    .await;
    let migrator = patient.connect(&db).await;
    migrator
        .batch_execute("BEGIN; INSERT INTO items VALUES (1000, 'mine')")
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        blocker.batch_execute("COMMIT").await.unwrap();
    });
    migrator
        .batch_execute("ALTER TABLE items ADD COLUMN c2 int")
        .await
        .expect("a later attempt succeeds once the blocker has gone");
    migrator.batch_execute("COMMIT").await.unwrap();
    release.await.unwrap();
    let (rows, columns): (i64, i64) = {
        let r = migrator
            .query_one(
                "SELECT (SELECT count(*) FROM items WHERE id = 1000), \
                 (SELECT count(*) FROM information_schema.columns WHERE table_name = 'items' AND column_name IN ('c1', 'c2'))",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(
        (rows, columns),
        (1, 1),
        "the insert and c2 committed, c1 never ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarded_ddl_after_a_large_query_or_an_extended_copy_is_answered() {
    let (cluster, db, _direct) = setup("guard_after_copy").await;
    let proxy = TestProxy::start(cluster).await;
    let via = proxy.connect(&db).await;
    // A Query larger than one read (it arrives in several pieces).
    via.batch_execute(&format!("SELECT length('{}')", "x".repeat(200_000)))
        .await
        .unwrap();
    let alter = via.batch_execute("ALTER TABLE items ADD COLUMN a1 int");
    tokio::time::timeout(Duration::from_secs(20), alter)
        .await
        .expect("the guarded DDL is answered after a large Query")
        .unwrap();
    // COPY FROM STDIN on the extended protocol: the Sync sent behind the
    // Execute reaches a server in copy-in mode, which drops it.
    {
        use futures_util::SinkExt;
        let sink = via.copy_in("COPY items (id, v) FROM STDIN").await.unwrap();
        let mut sink = Box::pin(sink);
        sink.send(bytes::Bytes::from_static(b"1000\tx\n"))
            .await
            .unwrap();
        sink.as_mut().finish().await.unwrap();
    }
    let alter = via.batch_execute("ALTER TABLE items ADD COLUMN a2 int");
    tokio::time::timeout(Duration::from_secs(20), alter)
        .await
        .expect("the guarded DDL is answered after an extended-protocol COPY")
        .unwrap();
    assert_eq!(
        via.query_one("SELECT count(*) FROM items", &[])
            .await
            .unwrap()
            .get::<_, i64>(0),
        101
    );
    // Both ALTERs went through guarded execution (a relay that stopped
    // holding them would pass the checks above).
    assert_eq!(guarded(&proxy), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_steps_of_a_rewrite_that_take_a_strong_lock_are_guarded_too() {
    let (cluster, db, direct) = setup("guard_rewrite_steps").await;
    let proxy = TestProxy::start(cluster).await;
    let blocker = open_reader(cluster, &db, "open_report").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // add-check-validating: ADD ... NOT VALID (ACCESS EXCLUSIVE), then VALIDATE.
    let (migrator, notices) = with_notices(&proxy.conn(&db)).await;
    let alter = tokio::spawn(async move {
        migrator
            .batch_execute("ALTER TABLE items ADD CONSTRAINT id_positive CHECK (id > 0)")
            .await
    });
    let reader = proxy.connect(&db).await;
    for _ in 0..3 {
        let read = reader.query_one("SELECT count(*) FROM items", &[]);
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("a reader is not queued behind the rewrite's first step")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        !alter.is_finished(),
        "the step waits for the old transaction"
    );
    assert!(
        notices
            .lock()
            .unwrap()
            .iter()
            .any(|n| n.contains("outside the lock queue") && n.contains("open_report")),
        "{:?}",
        notices.lock().unwrap()
    );
    blocker.batch_execute("COMMIT").await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), alter)
        .await
        .expect("the rewrite finishes once the blocker ended")
        .unwrap()
        .unwrap();
    let valid: bool = direct
        .query_one(
            "SELECT convalidated FROM pg_constraint WHERE conname = 'id_positive'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(valid, "the check ends validated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_while_the_ddl_waits_in_pre_flight_ends_it() {
    let (cluster, db, direct) = setup("guard_cancel").await;
    let proxy = TestProxy::start(cluster).await;
    let blocker = open_reader(cluster, &db, "slow_report").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (migrator, notices) = with_notices(&proxy.conn(&db)).await;
    let token = migrator.cancel_token();
    let alter = tokio::spawn(async move {
        let r = migrator
            .batch_execute("ALTER TABLE items ADD COLUMN never int")
            .await;
        (r, migrator)
    });
    // Once it waits (the notice came), the user gives up.
    for _ in 0..100 {
        if notices
            .lock()
            .unwrap()
            .iter()
            .any(|n| n.contains("outside the lock queue"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    token.cancel_query(tokio_postgres::NoTls).await.unwrap();
    let (result, migrator) = tokio::time::timeout(Duration::from_secs(20), alter)
        .await
        .expect("the cancel ends the wait, long before the blocker does")
        .unwrap();
    let err = result.expect_err("cancelled");
    assert_eq!(err.code().unwrap().code(), "57014", "{err}");
    // The statement never ran, even after the blocker is gone, and the
    // session goes on.
    blocker.batch_execute("COMMIT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let columns: i64 = direct
        .query_one(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'never'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(columns, 0);
    assert_eq!(
        migrator
            .query_one("SELECT 1", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
}

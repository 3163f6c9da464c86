//! DDL sent with the extended protocol (Parse/Bind/Execute/Sync, as most
//! drivers send a statement) is held at its Execute like a simple Query:
//! rewrites run their safe sequence, strong-lock DDL runs guarded, and the
//! client gets the replies the protocol owes it, in order.

use crate::support::items::{count, items_db, open_reader, valid_index};
use crate::support::notices::with_notices;
use crate::support::raw::{message, parse_bind_execute, sync, RawClient};
use crate::support::TestProxy;
use ddlguard::config::HumanDuration;
use ddlguard::wire::messages::error_fields;
use std::time::Duration;

/// Reads replies until `readies` ReadyForQuery messages came; returns a
/// line per message (`C tag`, `E code`, `N message`, or the type).
async fn replies(raw: &mut RawClient, readies: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut ready = 0;
    while ready < readies {
        let (tag, body) = raw.read_message().await.expect("a reply");
        seen.push(match tag {
            b'C' => format!("C {}", String::from_utf8_lossy(&body[..body.len() - 1])),
            b'E' => format!("E {}", error_fields(&body).code),
            b'N' => format!("N {}", error_fields(&body).message),
            b'Z' => {
                ready += 1;
                format!("Z {}", body[0] as char)
            }
            other => (other as char).to_string(),
        });
    }
    seen
}

fn without_notices(seen: &[String]) -> Vec<&str> {
    seen.iter()
        .filter(|s| !s.starts_with("N "))
        .map(String::as_str)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_create_index_is_rewritten_and_answered_as_the_protocol_owes() {
    let (cluster, db, direct) = items_db("ext_rewrite", 50).await;
    let proxy = TestProxy::start(cluster).await;

    // tokio-postgres: Parse/Describe/Sync, then Bind/Execute/Sync.
    let (client, notices) = with_notices(&proxy.conn(&db)).await;
    let n = client
        .execute("CREATE INDEX items_v ON items (v)", &[])
        .await
        .expect("answered as CREATE INDEX");
    assert_eq!(n, 0);
    assert_eq!(valid_index(&direct, "items_v").await, 1);
    let seen = notices.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|n| n.contains("step 2/2 done") && n.contains("CONCURRENTLY")),
        "the index was built by the safe sequence: {seen:?}"
    );

    // One batch, then a pipelined query: every reply in its place.
    let mut raw = RawClient::login_db(proxy.addr.port(), &db).await;
    let mut batch = parse_bind_execute("CREATE UNIQUE INDEX items_id_v ON items (id, v)");
    // Describe the portal before its Execute, as JDBC does.
    let execute = batch.split_off(batch.len() - 10);
    batch.extend(message(b'D', &[b"P\0"]));
    batch.extend(execute);
    batch.extend(sync());
    batch.extend(parse_bind_execute("SELECT count(*) FROM items"));
    batch.extend(sync());
    raw.send(&batch).await;
    let seen = replies(&mut raw, 2).await;
    assert_eq!(
        without_notices(&seen),
        [
            "1",
            "2",
            "n",
            "C CREATE INDEX",
            "Z I",
            "1",
            "2",
            "D",
            "C SELECT 1",
            "Z I"
        ],
        "{seen:?}"
    );
    assert_eq!(valid_index(&direct, "items_id_v").await, 1);

    // A rewrite sharing its batch with another statement cannot run its
    // sequence there: refused, and the batch fails as Postgres would.
    let mut batch = parse_bind_execute("CREATE INDEX items_late ON items (v)");
    batch.extend(parse_bind_execute("SELECT 1"));
    batch.extend(sync());
    raw.send(&batch).await;
    let seen = replies(&mut raw, 1).await;
    assert_eq!(without_notices(&seen), ["1", "2", "E 55000", "Z I"]);
    assert_eq!(
        count(
            &direct,
            "SELECT count(*) FROM pg_class WHERE relname = 'items_late'"
        )
        .await,
        0
    );

    // A failing Bind before the held Execute: the error, and the Execute
    // never runs.
    let sql = b"CREATE INDEX items_never ON items (v)\0";
    let mut batch = message(b'P', &[b"ci\0", sql, &0u16.to_be_bytes()]);
    // Bind of the statement with one parameter it does not take.
    let one = 1u16.to_be_bytes();
    batch.extend(message(
        b'B',
        &[
            b"\0",
            b"ci\0",
            &0u16.to_be_bytes(),
            &one,
            &1u32.to_be_bytes(),
            b"x",
            &0u16.to_be_bytes(),
        ],
    ));
    batch.extend(message(b'E', &[b"\0", &0u32.to_be_bytes()]));
    batch.extend(sync());
    raw.send(&batch).await;
    let seen = replies(&mut raw, 1).await;
    assert_eq!(without_notices(&seen), ["1", "E 08P01", "Z I"]);
    assert_eq!(
        count(
            &direct,
            "SELECT count(*) FROM pg_class WHERE relname = 'items_never'"
        )
        .await,
        0
    );
}

/// A direct session of `app` that read `items` in a transaction it keeps
/// open: it holds ACCESS SHARE until it ends.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_ddl_runs_guarded_and_leaves_the_clients_settings_as_they_were() {
    let (cluster, db, _direct) = items_db("ext_guard", 50).await;
    let proxy = TestProxy::start_with(cluster, |c| {
        c.policy.lock_timeout = HumanDuration(Duration::from_millis(100));
        c.policy.max_attempts = 3;
        c.policy.retry_backoff_max = HumanDuration(Duration::from_millis(200));
        c.policy.preflight_wait = HumanDuration(Duration::ZERO);
    })
    .await;
    let (migrator, notices) = with_notices(&proxy.conn(&db)).await;
    migrator
        .batch_execute("SET lock_timeout = '5s'")
        .await
        .unwrap();
    let blocker = open_reader(cluster, &db, "ext_long_reader").await;
    let err = migrator
        .execute("ALTER TABLE items ADD COLUMN c1 int", &[])
        .await
        .unwrap_err();
    let e = err.as_db_error().expect("an ErrorResponse");
    assert_eq!(e.code().code(), "55P03", "{e:?}");
    assert!(e.message().contains("3 attempts"), "{}", e.message());
    assert!(
        e.detail().is_some_and(|d| d.contains("ext_long_reader")),
        "the blocker is named: {e:?}"
    );
    assert_eq!(
        notices
            .lock()
            .unwrap()
            .iter()
            .filter(|n| n.contains("retrying"))
            .count(),
        2
    );
    // The session goes on, with its own lock_timeout.
    let shown: String = migrator
        .query_one("SHOW lock_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(shown, "5s");

    // Inside a transaction block, through a prepared statement: the retry
    // starts from a savepoint and the transaction stays usable.
    let patient = TestProxy::start_with(cluster, |c| {
        c.policy.lock_timeout = HumanDuration(Duration::from_millis(100));
        c.policy.max_attempts = 200;
        c.policy.retry_backoff_max = HumanDuration(Duration::from_millis(100));
        c.policy.preflight_wait = HumanDuration(Duration::ZERO);
    })
    .await;
    let mut via = crate::support::connect(&patient.conn(&db)).await;
    let tx = via.transaction().await.unwrap();
    tx.execute("INSERT INTO items VALUES (1000, 'mine')", &[])
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        blocker.batch_execute("COMMIT").await.unwrap();
    });
    tx.execute("ALTER TABLE items ADD COLUMN c2 int", &[])
        .await
        .expect("a later attempt succeeds once the blocker has gone");
    tx.commit().await.unwrap();
    release.await.unwrap();
    let r = via
        .query_one(
            "SELECT (SELECT count(*) FROM items WHERE id = 1000), \
             (SELECT count(*) FROM information_schema.columns WHERE table_name = 'items' AND column_name IN ('c1', 'c2'))",
            &[],
        )
        .await
        .unwrap();
    let (rows, columns): (i64, i64) = (r.get(0), r.get(1));
    assert_eq!((rows, columns), (1, 1));
    let metrics = ddlguard::admin::metrics::render(&patient.handle).unwrap();
    assert!(
        metrics.contains(r#"ddlguard_gate_statements_total{outcome="guarded"} 1"#),
        "the prepared ALTER ran guarded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_statement_is_judged_again_where_it_runs() {
    let (cluster, db, direct) = items_db("ext_rejudge", 50).await;
    let proxy = TestProxy::start_with(cluster, |c| {
        c.policy.in_transaction = ddlguard::policy::InTransaction::AfterCommit;
    })
    .await;
    let mut client = crate::support::connect(&proxy.conn(&db)).await;
    // Prepared while idle (a rewrite), executed inside a transaction block:
    // refused there, and the transaction is failed as after an error.
    let stmt = client
        .prepare("CREATE INDEX items_later ON items (v)")
        .await
        .unwrap();
    let tx = client.transaction().await.unwrap();
    let err = tx.execute(&stmt, &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "55000", "{err:?}");
    let aborted = tx.execute("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(aborted.code().unwrap().code(), "25P02");
    tx.rollback().await.unwrap();
    assert_eq!(
        count(
            &direct,
            "SELECT count(*) FROM pg_class WHERE relname = 'items_later'"
        )
        .await,
        0
    );
    // Prepared inside a transaction (deferred there), executed when idle:
    // the safe sequence runs at once.
    let tx = client.transaction().await.unwrap();
    let stmt = tx
        .prepare("CREATE INDEX items_idle ON items (v)")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    client.execute(&stmt, &[]).await.unwrap();
    assert_eq!(valid_index(&direct, "items_idle").await, 1);
}

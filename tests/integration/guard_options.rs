//! The optional parts of guarded execution: long builds exempt from the
//! client's statement_timeout, a growing lock-timeout schedule, and ending
//! blockers that sit idle in transaction.

use crate::support::items::items_db;
use crate::support::notices::with_notices;
use crate::support::{connect, TestProxy};
use ddlguard::config::HumanDuration;
use std::time::Duration;

fn ms(n: u64) -> HumanDuration {
    HumanDuration(Duration::from_millis(n))
}

/// The text of `SHOW name` on `client`.
async fn show(client: &tokio_postgres::Client, name: &str) -> String {
    client
        .query_one(&format!("SHOW {name}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_builds_run_without_the_clients_statement_timeout() {
    let (cluster, db, direct) = items_db("guard_build_timeout", 40).await;
    // An index whose build takes about 0.4 s: each row sleeps 10 ms.
    direct
        .batch_execute(
            "CREATE FUNCTION slow_id(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_sleep(0.01); RETURN $1; END $$",
        )
        .await
        .unwrap();
    let build = "CREATE INDEX CONCURRENTLY items_slow ON items (slow_id(id))";
    // Straight to Postgres, the client's statement_timeout stops the build.
    direct
        .batch_execute("SET statement_timeout = '100ms'")
        .await
        .unwrap();
    let err = direct.batch_execute(build).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "57014");
    direct
        .batch_execute("RESET statement_timeout; DROP INDEX IF EXISTS items_slow")
        .await
        .unwrap();

    let proxy = TestProxy::start_with(cluster, |c| c.policy.small_table_rows = 0).await;
    let via = proxy.connect(&db).await;
    via.batch_execute("SET statement_timeout = '100ms'")
        .await
        .unwrap();
    via.batch_execute(build)
        .await
        .expect("the build is exempt from the client's statement_timeout");
    // A rewrite's CONCURRENTLY step likewise.
    via.batch_execute("CREATE INDEX items_slow2 ON items (slow_id(id))")
        .await
        .expect("the rewritten build is exempt too");
    assert_eq!(show(&via, "statement_timeout").await, "100ms");
    let valid: i64 = direct
        .query_one(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE c.relname IN ('items_slow', 'items_slow2') AND i.indisvalid",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(valid, 2);
    // Other statements keep the client's limit.
    let err = via.batch_execute("SELECT pg_sleep(1)").await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "57014");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_in_transaction_blocker_is_ended_when_configured_and_a_schedule_is_followed() {
    let (cluster, db, _direct) = items_db("guard_terminate", 20).await;
    let blocker = connect(&format!(
        "{} application_name=forgotten_psql",
        cluster.direct_conn(&db)
    ))
    .await;
    blocker
        .batch_execute("BEGIN; SELECT count(*) FROM items;")
        .await
        .unwrap();
    // Off by default: the attempts run out, with the schedule's timeouts.
    let strict = TestProxy::start_with(cluster, |c| {
        c.policy.lock_timeout_schedule = vec![ms(50), ms(100)];
        c.policy.max_attempts = 3;
        c.policy.retry_backoff_max = ms(50);
        c.policy.preflight_wait = ms(0);
    })
    .await;
    let via = strict.connect(&db).await;
    let err = via
        .batch_execute("ALTER TABLE items ADD COLUMN x int")
        .await
        .unwrap_err();
    let e = err.as_db_error().unwrap();
    assert_eq!(e.code().code(), "55P03");
    assert!(
        e.message().contains("3 attempts of 100ms at most"),
        "{}",
        e.message()
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let ending = TestProxy::start_with(cluster, |c| {
        c.policy.lock_timeout = ms(100);
        c.policy.max_attempts = 5;
        c.policy.retry_backoff_max = ms(50);
        c.policy.preflight_wait = ms(0);
        c.policy.terminate_idle_blockers_after = Some(ms(200));
    })
    .await;
    let (migrator, notices) = with_notices(&ending.conn(&db)).await;
    migrator
        .batch_execute("ALTER TABLE items ADD COLUMN x int")
        .await
        .expect("the blocker is ended and a later attempt succeeds");
    let seen = notices.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|n| n.contains("ended pid") && n.contains("forgotten_psql")),
        "{seen:?}"
    );
    assert!(
        blocker.batch_execute("SELECT 1").await.is_err(),
        "the blocker's session was ended"
    );
    let metrics = ddlguard::admin::metrics::render(&ending.handle).unwrap();
    assert!(
        metrics.contains("ddlguard_guard_terminated_blockers_total 1"),
        "{metrics}"
    );
}

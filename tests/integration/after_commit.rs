//! `policy.in_transaction = "after-commit"`: a statement whose safe
//! sequence cannot run inside the client's transaction block is answered
//! as if it ran, and its sequence runs right after the transaction commits,
//! before the COMMIT is answered. A migration run the unsafe way by a
//! tool-style transaction (psql --single-transaction) ends with the safe
//! schema; with the default (`block`) it ends with a clear refusal and
//! nothing changed.

use crate::support::items::{count, items_db, valid_index};
use crate::support::notices::with_notices;
use crate::support::TestProxy;
use ddlguard::policy::InTransaction;
use std::process::Command;
use tokio_postgres::Client;

async fn relation_exists(direct: &Client, name: &str) -> bool {
    count(
        direct,
        &format!("SELECT count(*) FROM pg_class WHERE relname = '{name}'"),
    )
    .await
        > 0
}

fn after_commit(c: &mut ddlguard::config::Config) {
    c.policy.in_transaction = InTransaction::AfterCommit;
    c.policy.small_table_rows = 0;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_safe_sequence_runs_after_commit_and_is_dropped_on_rollback() {
    let (cluster, db, direct) = items_db("after_commit", 50).await;
    let proxy = TestProxy::start_with(cluster, after_commit).await;
    let (client, notices) = with_notices(&proxy.conn(&db)).await;

    // Simple protocol, as psql sends a migration file.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute("CREATE INDEX items_v ON items (v)")
        .await
        .expect("answered as if it ran");
    client
        .batch_execute("INSERT INTO items VALUES (1000, 'in the migration')")
        .await
        .unwrap();
    assert!(
        !relation_exists(&direct, "items_v").await,
        "nothing is built inside the transaction"
    );
    client.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        valid_index(&direct, "items_v").await,
        1,
        "built after COMMIT"
    );
    let seen = notices.lock().unwrap().clone();
    let deferred = seen.iter().position(|n| n.contains("deferred until"));
    let finished = seen
        .iter()
        .position(|n| n.contains("after COMMIT") && n.contains("finished"));
    assert!(
        matches!((deferred, finished), (Some(d), Some(f)) if d < f),
        "the client is told when it is deferred and how it ended: {seen:?}"
    );
    assert!(seen.iter().any(|n| n.contains("CONCURRENTLY")), "{seen:?}");
    assert_eq!(
        count(&direct, "SELECT count(*) FROM items WHERE id = 1000").await,
        1
    );

    // Rolled back: the sequence does not run, and the client is told.
    notices.lock().unwrap().clear();
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute("CREATE INDEX items_rolled_back ON items (v)")
        .await
        .unwrap();
    client.batch_execute("ROLLBACK").await.unwrap();
    assert!(!relation_exists(&direct, "items_rolled_back").await);
    let seen = notices.lock().unwrap().clone();
    assert!(
        seen.iter().any(|n| n.contains("did not run")),
        "the client hears the deferred sequence was dropped: {seen:?}"
    );

    // Extended protocol inside a driver's transaction (tokio-postgres).
    let mut via = crate::support::connect(&proxy.conn(&db)).await;
    let tx = via.transaction().await.unwrap();
    tx.execute("CREATE UNIQUE INDEX items_id_v ON items (id, v)", &[])
        .await
        .unwrap();
    tx.execute("INSERT INTO items VALUES (1001, 'x')", &[])
        .await
        .unwrap();
    assert!(!relation_exists(&direct, "items_id_v").await);
    tx.commit().await.unwrap();
    assert_eq!(valid_index(&direct, "items_id_v").await, 1);

    let metrics = ddlguard::admin::metrics::render(&proxy.handle).unwrap();
    assert!(
        metrics.contains(r#"ddlguard_gate_statements_total{outcome="deferred"} 3"#),
        "{metrics}"
    );
    // The DDL log has each deferral (with the rule that asked for it) and
    // each sequence run after a COMMIT, with its outcome.
    let events = proxy.handle.ddl_log().events();
    let of = |action: &str| {
        events
            .iter()
            .filter(|e| e.notes.action == action)
            .map(|e| (e.target.clone().unwrap_or_default(), e.error.clone()))
            .collect::<Vec<_>>()
    };
    let deferred = of("deferred");
    assert_eq!(deferred.len(), 3, "{events:?}");
    assert!(events
        .iter()
        .filter(|e| e.notes.action == "deferred")
        .all(|e| e
            .notes
            .rules
            .iter()
            .any(|r| r.rule == "create-index-nonconcurrent")));
    let mut ran = of("after-commit");
    ran.sort();
    assert_eq!(
        ran,
        [
            ("items_id_v".to_string(), None),
            ("items_v".to_string(), None)
        ],
        "the rolled-back one never ran"
    );
}

/// Runs `file` with psql `--single-transaction` through `port`, as a
/// migration tool would; returns (success, stderr).
fn psql_migration(
    cluster: &crate::support::Cluster,
    port: u16,
    db: &str,
    file: &std::path::Path,
) -> (bool, String) {
    let out = Command::new(cluster.tool("psql"))
        .args(["-X", "-v", "ON_ERROR_STOP=1", "--single-transaction"])
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
        ])
        .arg("-f")
        .arg(file)
        .env("PGSSLMODE", "disable")
        .output()
        .expect("run psql");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_migration_in_one_transaction_ends_safe_or_refused() {
    let (cluster, db, direct) = items_db("after_commit_psql", 200).await;
    direct
        .batch_execute("CREATE TABLE owners (id int PRIMARY KEY); INSERT INTO owners VALUES (1)")
        .await
        .unwrap();
    let dir = tempdir("after_commit_psql");
    let file = dir.join("001_owner.sql");
    std::fs::write(
        &file,
        "ALTER TABLE items ADD COLUMN owner_id int;\n\
         CREATE INDEX items_owner ON items (owner_id);\n\
         ALTER TABLE items ADD CONSTRAINT items_owner_fk FOREIGN KEY (owner_id) REFERENCES owners (id);\n",
    )
    .unwrap();

    // Default policy: refused with the tools' way out; nothing changed.
    let block = TestProxy::start_with(cluster, |c| c.policy.small_table_rows = 0).await;
    let (ok, stderr) = psql_migration(cluster, block.addr.port(), &db, &file);
    assert!(!ok, "the migration is refused");
    assert!(
        stderr.contains("create-index-nonconcurrent")
            && stderr.contains("disable_ddl_transaction!"),
        "{stderr}"
    );
    assert_eq!(
        count(
            &direct,
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'owner_id'"
        )
        .await,
        0,
        "the transaction rolled back"
    );

    // after-commit: the same file ends with the safe schema.
    let defer = TestProxy::start_with(cluster, after_commit).await;
    let (ok, stderr) = psql_migration(cluster, defer.addr.port(), &db, &file);
    assert!(ok, "{stderr}");
    assert_eq!(valid_index(&direct, "items_owner").await, 1);
    assert_eq!(
        count(
            &direct,
            "SELECT count(*) FROM pg_constraint WHERE conname = 'items_owner_fk' AND convalidated"
        )
        .await,
        1,
        "the foreign key exists and is validated"
    );
    assert!(
        stderr.contains("after COMMIT"),
        "psql shows the outcome: {stderr}"
    );
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ddlguard-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_commit_kept_by_the_driver_runs_the_deferred_sequence() {
    let (cluster, db, direct) = items_db("after_commit_prepared", 50).await;
    let proxy = TestProxy::start_with(cluster, after_commit).await;
    let client = crate::support::connect(&proxy.conn(&db)).await;
    // Prepared while nothing is deferred, as JDBC keeps its COMMIT.
    let commit = client.prepare("COMMIT").await.unwrap();
    client.batch_execute("BEGIN").await.unwrap();
    client
        .batch_execute("CREATE INDEX items_kept ON items (v)")
        .await
        .unwrap();
    assert!(!relation_exists(&direct, "items_kept").await);
    client.execute(&commit, &[]).await.unwrap();
    assert_eq!(
        valid_index(&direct, "items_kept").await,
        1,
        "built after the prepared COMMIT"
    );
}

//! Report rows are exactly the relations that exist (issue 12, item 2):
//! DDL on functions, schemas, types, ... is no table row; system catalogs
//! resolve to pg_catalog; candidate sets are never table rows; a lock
//! clause sqlparser cannot read still records usage; the DDL log has one
//! event per statement of a multi-statement Query.

use crate::support::{connect, Cluster, TestProxy};
use ddlguard::admin::report::{self, Cell, Report};
use ddlguard::analysis::Mode;

/// (schema, table) of every row of `SHOW TABLES`.
fn table_rows(report: &Report) -> Vec<(String, String)> {
    report
        .rows
        .iter()
        .filter_map(|r| match (&r[0], &r[1]) {
            (Cell::Text(s), Cell::Text(t)) => Some((s.clone(), t.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_relations_that_exist_become_table_rows() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("report_rows_exact");
    connect(&cluster.direct_conn(&db))
        .await
        .batch_execute(
            "CREATE TABLE users (id int PRIMARY KEY, email text);
             INSERT INTO users VALUES (1, 'a@example.com');",
        )
        .await
        .unwrap();
    let proxy = TestProxy::start_with(cluster, |c| c.upstream.user = Some("postgres".into())).await;
    proxy
        .handle
        .catalogs()
        .load_now(&db, &proxy.handle.upstream())
        .await
        .unwrap();
    let via = proxy.connect(&db).await;
    via.batch_execute(
        "CREATE FUNCTION bump(i int) RETURNS int LANGUAGE sql AS $$ SELECT i + 1 $$;
         CREATE SCHEMA billing;
         CREATE TYPE mood AS ENUM ('ok', 'sad');
         CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
         CREATE TRIGGER users_trg BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION trg();
         CREATE PUBLICATION pub_users FOR TABLE users;",
    )
    .await
    .unwrap();
    via.simple_query("DROP INDEX IF EXISTS \"314159\"")
        .await
        .unwrap();
    via.simple_query("DROP FUNCTION IF EXISTS nothing_here(int)")
        .await
        .unwrap();
    via.simple_query("SELECT relname FROM pg_class WHERE relname = 'users'")
        .await
        .unwrap();
    let rows = via
        .query(
            "SELECT email FROM users WHERE id = $1 FOR NO KEY UPDATE",
            &[&1i32],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    via.simple_query("SELECT id FROM users FOR KEY SHARE OF users NOWAIT")
        .await
        .unwrap();

    let tables = table_rows(&report::tables(&proxy.handle, &report::Page::default()));
    let names: Vec<String> = tables.iter().map(|(s, t)| format!("{s}.{t}")).collect();
    for not_a_table in [
        "public.function",
        "public.bump",
        "public.trg",
        "public.schema",
        "public.billing",
        "public.type",
        "public.mood",
        "public.trigger",
        "public.users_trg",
        "public.publication",
        "public.pub_users",
        "public.$1",
        "public.314159",
        "public.index",
        "public.pg_class",
    ] {
        assert!(
            !names.contains(&not_a_table.to_string()),
            "{not_a_table} in {names:?}"
        );
    }
    assert!(
        names.contains(&"pg_catalog.pg_class".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"public.users".to_string()), "{names:?}");

    // The lock clauses sqlparser 0.64 cannot read: full column usage.
    let usage = proxy.handle.usage_rows();
    let locked = |fp_part: &str, column: &str| {
        usage.iter().any(|r| {
            r.fingerprint.contains(fp_part)
                && r.table == "users"
                && r.column.as_deref() == Some(column)
                && r.mode == Mode::Read
        })
    };
    assert!(locked("for no key update", "email"), "{usage:#?}");
    assert!(locked("for no key update", "id"), "{usage:#?}");
    assert!(locked("for key share", "id"), "{usage:#?}");

    // The DDL log: each statement with its object kind.
    let events = proxy.handle.ddl_log().events();
    let seen = |command: &str, object: &str, target: &str| {
        events.iter().any(|e| {
            e.command == command && e.object == object && e.target.as_deref() == Some(target)
        })
    };
    assert!(seen("create function", "function", "bump"), "{events:#?}");
    assert!(seen("create schema", "schema", "billing"), "{events:#?}");
    assert!(seen("create type", "type", "mood"), "{events:#?}");
    assert!(
        seen("create publication", "publication", "pub_users"),
        "{events:#?}"
    );
    let trigger = events
        .iter()
        .find(|e| e.command == "create trigger")
        .expect("trigger logged");
    assert_eq!(trigger.on.as_deref(), Some("users"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_statement_query_logs_each_ddl_statement() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("report_rows_ddl_split");
    connect(&cluster.direct_conn(&db))
        .await
        .batch_execute("CREATE TABLE accounts (id int)")
        .await
        .unwrap();
    // The DDL log, not the policy (which would refuse the CREATE INDEX in
    // a multi-statement Query), is under test.
    let proxy = TestProxy::start_with(cluster, |c| {
        c.policy.mode = ddlguard::policy::Mode::Observe;
    })
    .await;
    let via = proxy.connect(&db).await;
    via.simple_query(
        "SET lock_timeout = '1s'; ALTER TABLE accounts ADD COLUMN note text; \
         CREATE INDEX accounts_note ON accounts (note); VACUUM accounts",
    )
    .await
    .unwrap_err(); // VACUUM cannot run inside the implicit transaction
    via.simple_query("SET lock_timeout = '1s'; ALTER TABLE accounts ADD COLUMN note text")
        .await
        .unwrap();
    let events = proxy.handle.ddl_log().events();
    let got: Vec<(&str, Option<&str>, Option<&str>)> = events
        .iter()
        .map(|e| (e.command.as_str(), e.target.as_deref(), e.error.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("alter table", Some("accounts"), Some("25001")),
            ("create index", Some("accounts_note"), Some("25001")),
            ("vacuum", Some("accounts"), Some("25001")),
            ("alter table", Some("accounts"), None),
        ],
        "no `set` event, one per DDL statement"
    );
    assert!(events.iter().all(|e| !e.fingerprint.contains("1s")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_column_is_listed_apart_never_as_a_table() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("report_rows_ambiguous");
    connect(&cluster.direct_conn(&db))
        .await
        .batch_execute(
            "CREATE TABLE j1_tbl (i int, j int); CREATE TABLE j2_tbl (i2 int, k int);
             INSERT INTO j1_tbl VALUES (1, 2); INSERT INTO j2_tbl VALUES (1, 3);",
        )
        .await
        .unwrap();
    // No service login: the proxy cannot tell whose `k` it is.
    let proxy = TestProxy::start(cluster).await;
    let via = proxy.connect(&db).await;
    via.simple_query("SELECT k FROM j1_tbl JOIN j2_tbl ON i = i2")
        .await
        .unwrap();
    let tables = report::tables(&proxy.handle, &report::Page::default());
    let names = table_rows(&tables);
    assert!(
        names
            .iter()
            .all(|(s, t)| !s.contains('|') && !t.contains('|') && !t.is_empty()),
        "{names:?}"
    );
    assert!(!tables.notices.is_empty(), "the left-out uses are counted");
    let usage = report::usage(&proxy.handle, &report::Page::default());
    let table_col = usage
        .columns
        .iter()
        .position(|(n, _)| *n == "table")
        .unwrap();
    assert!(usage
        .rows
        .iter()
        .all(|r| matches!(&r[table_col], Cell::Text(t) if !t.contains('|') && !t.is_empty())));
    let list = report::unresolved(&proxy.handle, &report::Page::default());
    let cand_col = list
        .columns
        .iter()
        .position(|(n, _)| *n == "candidates")
        .unwrap();
    let candidates: Vec<&Cell> = list.rows.iter().map(|r| &r[cand_col]).collect();
    assert!(
        candidates.contains(&&Cell::text("public.j1_tbl, public.j2_tbl")),
        "{candidates:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_and_privileges_do_not_reload_the_catalog() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("report_rows_no_reload");
    connect(&cluster.direct_conn(&db))
        .await
        .batch_execute("CREATE TABLE items (id int)")
        .await
        .unwrap();
    let proxy = TestProxy::start_with(cluster, |c| c.upstream.user = Some("postgres".into())).await;
    let catalogs = proxy.handle.catalogs();
    catalogs
        .load_now(&db, &proxy.handle.upstream())
        .await
        .unwrap();
    let before = catalogs.get(&db);
    let via = proxy.connect(&db).await;
    for sql in [
        "VACUUM items",
        "ANALYZE items",
        "GRANT SELECT ON items TO PUBLIC",
        "CREATE INDEX items_id ON items (id)",
        "COMMENT ON TABLE items IS 'x'",
    ] {
        via.simple_query(sql).await.unwrap();
    }
    // A reload, had one started, replaces the snapshot within moments.
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(
            std::sync::Arc::ptr_eq(&before, &catalogs.get(&db)),
            "a statement that changes no relation reloaded the catalog"
        );
    }
    // A schema change does.
    via.simple_query("ALTER TABLE items ADD COLUMN note text")
        .await
        .unwrap();
    let mut reloaded = false;
    for _ in 0..100 {
        let now = catalogs.get(&db);
        if now
            .table("public", "items")
            .is_some_and(|t| t.has_column("note"))
        {
            reloaded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(reloaded, "ALTER TABLE reloads the snapshot");
}

//! Usage tracking through the proxy: what each client touched, by table and
//! column, for the simple and the extended protocol.

use crate::support::raw::{parse_bind_execute, query, sync, RawClient};
use crate::support::{connect, Cluster, TestProxy};
use ddlguard::analysis::{Dependency, Mode};
use ddlguard::usage::UsageRow;

async fn setup(db: &str) -> (&'static Cluster, String) {
    let cluster = Cluster::shared();
    let db = cluster.create_db(db);
    let direct = connect(&cluster.direct_conn(&db)).await;
    direct
        .batch_execute(
            "CREATE TABLE users (id int PRIMARY KEY, email text, name text);
             INSERT INTO users SELECT i, 'u' || i || '@example.com', 'user ' || i FROM generate_series(1, 10) i;",
        )
        .await
        .unwrap();
    (cluster, db)
}

fn rows_for<'a>(rows: &'a [UsageRow], app: &str) -> Vec<&'a UsageRow> {
    rows.iter()
        .filter(|r| r.client.application_name == app)
        .collect()
}

fn has(rows: &[&UsageRow], table: &str, column: Option<&str>, mode: Mode, dep: Dependency) -> bool {
    rows.iter().any(|r| {
        r.table == table && r.column.as_deref() == column && r.mode == mode && r.dependency == dep
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_recorded_per_client_for_both_protocols() {
    let (cluster, db) = setup("usage_protocols").await;
    let proxy = TestProxy::start(cluster).await;
    let conn = |app: &str| format!("{} application_name={app}", proxy.conn(&db));

    // A: extended protocol, names users.email.
    let a = connect(&conn("app_a")).await;
    for id in 1..=3i32 {
        let row = a
            .query_one("SELECT email FROM users WHERE id = $1", &[&id])
            .await
            .unwrap();
        assert!(row.get::<_, String>(0).starts_with('u'));
    }
    // B: simple protocol, SELECT *, literals inline.
    let b = connect(&conn("app_b")).await;
    for id in 1..=2 {
        b.simple_query(&format!("SELECT * FROM users WHERE id = {id}"))
            .await
            .unwrap();
    }
    // C: never touches users; writes through the extended protocol.
    let c = connect(&conn("app_c")).await;
    c.execute("CREATE TEMP TABLE scratch (x int)", &[])
        .await
        .unwrap();
    c.execute("INSERT INTO scratch (x) VALUES ($1)", &[&1i32])
        .await
        .unwrap();
    // A also fails once: 42703 is recorded against the statement.
    let err = a.query("SELECT emial FROM users", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42703");

    let rows = proxy.handle.usage_rows();
    let a_rows = rows_for(&rows, "app_a");
    assert!(
        has(
            &a_rows,
            "users",
            Some("email"),
            Mode::Read,
            Dependency::Explicit
        ),
        "{a_rows:#?}"
    );
    assert!(has(
        &a_rows,
        "users",
        Some("id"),
        Mode::Read,
        Dependency::Explicit
    ));
    let email = a_rows
        .iter()
        .find(|r| r.column.as_deref() == Some("email") && r.errors == 0)
        .unwrap();
    assert_eq!(email.calls, 3, "three executions of one shape");
    assert_eq!(email.fingerprint, "select email from users where id = $1");
    assert_eq!(email.client.user, "postgres");
    assert_eq!(email.client.database, db);
    assert_eq!(email.client.client_addr, "127.0.0.1");
    let failed = a_rows
        .iter()
        .find(|r| r.column.as_deref() == Some("emial"))
        .unwrap();
    assert_eq!(failed.error_codes, vec![("42703".to_string(), 1)]);

    let b_rows = rows_for(&rows, "app_b");
    assert!(
        has(&b_rows, "users", None, Mode::Read, Dependency::Implicit),
        "{b_rows:#?}"
    );
    let star = b_rows.iter().find(|r| r.column.is_none()).unwrap();
    assert_eq!(star.calls, 2, "literals differ, one shape");
    assert_eq!(star.fingerprint, "select * from users where id = $1");

    let c_rows = rows_for(&rows, "app_c");
    assert!(c_rows.iter().all(|r| r.table != "users"));
    assert!(
        has(
            &c_rows,
            "scratch",
            Some("x"),
            Mode::Write,
            Dependency::Explicit
        ),
        "{c_rows:#?}"
    );

    // Nothing recorded holds a literal value.
    assert!(rows
        .iter()
        .all(|r| !r.fingerprint.contains("example.com") && !r.fingerprint.contains("= 1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_executes_and_errors_are_matched_to_their_statements() {
    let (cluster, db) = setup("usage_pipeline").await;
    let proxy = TestProxy::start(cluster).await;
    let mut raw = RawClient::login_db(proxy.addr.port(), &db).await;
    // Three simple queries in one write, the second fails.
    let mut batch = query("SELECT name FROM users WHERE id = 1");
    batch.extend(query("SELECT nope FROM users"));
    batch.extend(query("SELECT email FROM users WHERE id = 2"));
    raw.send(&batch).await;
    let mut ready = 0;
    while ready < 3 {
        if raw.read_message().await.expect("reply").0 == b'Z' {
            ready += 1;
        }
    }
    let rows = proxy.handle.usage_rows();
    let col = |c: &str| {
        rows.iter()
            .find(|r| r.column.as_deref() == Some(c))
            .unwrap()
    };
    assert_eq!((col("name").calls, col("name").errors), (1, 0));
    assert_eq!((col("nope").calls, col("nope").errors), (1, 1));
    assert_eq!((col("email").calls, col("email").errors), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_messages_pipelined_past_an_error_are_skipped_to_sync() {
    let (cluster, db) = setup("usage_pipeline_extended").await;
    let proxy = TestProxy::start(cluster).await;
    let mut raw = RawClient::login_db(proxy.addr.port(), &db).await;
    // One batch: a good statement, a failing one, one the server skips
    // (everything after an error up to Sync), then Sync.
    let mut batch = parse_bind_execute("SELECT name FROM users WHERE id = 1");
    batch.extend(parse_bind_execute("SELECT nope FROM users"));
    batch.extend(parse_bind_execute("SELECT email FROM users WHERE id = 2"));
    batch.extend(sync());
    // The next batch must be matched to its own replies, not the skipped ones.
    batch.extend(parse_bind_execute("SELECT id FROM users WHERE id = 3"));
    batch.extend(sync());
    raw.send(&batch).await;
    let mut tags = Vec::new();
    while tags.iter().filter(|t| **t == b'Z').count() < 2 {
        tags.push(raw.read_message().await.expect("reply").0);
    }
    // What Postgres answers: the first statement's replies, the error, the
    // skip to Sync, then the second batch.
    assert_eq!(
        tags,
        b"12DCE"
            .iter()
            .chain(b"Z12DCZ")
            .copied()
            .collect::<Vec<_>>(),
        "{:?}",
        String::from_utf8_lossy(&tags)
    );
    let rows = proxy.handle.usage_rows();
    let calls = |fingerprint: &str| {
        rows.iter()
            .find(|r| r.fingerprint == fingerprint)
            .map(|r| (r.calls, r.errors))
    };
    assert_eq!(calls("select name from users where id = $1"), Some((1, 0)));
    assert_eq!(
        calls("select nope from users"),
        Some((1, 1)),
        "the failed Parse is recorded"
    );
    assert_eq!(
        calls("select email from users where id = $1"),
        None,
        "the statement the server skipped never ran"
    );
    assert_eq!(
        calls("select id from users where id = $1"),
        Some((1, 0)),
        "the next batch is matched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_can_be_turned_off() {
    let (cluster, db) = setup("usage_off").await;
    let proxy = TestProxy::start_with(cluster, |c| c.usage.enabled = false).await;
    let a = proxy.connect(&db).await;
    a.query("SELECT email FROM users", &[]).await.unwrap();
    assert_eq!(proxy.handle.usage().stats().recorded, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_distinct_shapes_stay_under_the_cap() {
    let (cluster, db) = setup("usage_cap").await;
    let proxy = TestProxy::start_with(cluster, |c| {
        c.usage.max_entries = 500;
        c.usage.analysis_cache = 200;
    })
    .await;
    let mut raw = RawClient::login_db(proxy.addr.port(), &db).await;
    // 20,000 distinct shapes (distinct aliases), pipelined in batches.
    for chunk in 0..20 {
        let mut batch = Vec::new();
        for i in 0..1000 {
            batch.extend(query(&format!(
                "SELECT id AS c{} FROM users WHERE id = {i}",
                chunk * 1000 + i
            )));
        }
        raw.send(&batch).await;
        let mut ready = 0;
        while ready < 1000 {
            if raw.read_message().await.expect("reply").0 == b'Z' {
                ready += 1;
            }
        }
    }
    let stats = proxy.handle.usage().stats();
    assert_eq!(stats.entries, 500);
    assert_eq!(stats.recorded + stats.dropped, 20_000);
    assert!(
        proxy.handle.analyzer().len() <= 200 + 64,
        "cache bounded: {}",
        proxy.handle.analyzer().len()
    );
}

/// A proxy with a service login, its snapshot of `db` already loaded.
async fn with_catalog(cluster: &'static Cluster, db: &str) -> TestProxy {
    let proxy = TestProxy::start_with(cluster, |c| c.upstream.user = Some("postgres".into())).await;
    load_catalog(&proxy, db).await;
    proxy
}

/// Loads the catalog snapshot of `db` into `proxy` now.
async fn load_catalog(proxy: &TestProxy, db: &str) {
    proxy
        .handle
        .catalogs()
        .load_now(db, &proxy.handle.upstream())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_snapshot_resolves_columns_and_follows_ddl() {
    let (cluster, db) = setup("usage_catalog").await;
    let direct = connect(&cluster.direct_conn(&db)).await;
    direct
        .batch_execute("CREATE TABLE orders (id int, user_id int, total numeric)")
        .await
        .unwrap();
    let join = "SELECT email, total FROM users JOIN orders ON orders.user_id = users.id";

    // Without a service login: two tables in scope, the columns stay ambiguous.
    let blind = TestProxy::start(cluster).await;
    blind.connect(&db).await.query(join, &[]).await.unwrap();
    let rows = blind.handle.usage_rows();
    let email = rows
        .iter()
        .find(|r| r.column.as_deref() == Some("email"))
        .unwrap();
    let candidates: Vec<&str> = email.candidates.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(candidates, vec!["orders", "users"]);
    assert_eq!(email.table, "", "a candidate set is no table");

    // With one, the snapshot decides.
    let proxy = with_catalog(cluster, &db).await;
    let via = proxy.connect(&db).await;
    via.query(join, &[]).await.unwrap();
    let rows = proxy.handle.usage_rows();
    let table_of = |rows: &[UsageRow], col: &str| {
        rows.iter()
            .find(|r| r.column.as_deref() == Some(col))
            .map(|r| r.table.clone())
    };
    assert_eq!(table_of(&rows, "email").as_deref(), Some("users"));
    assert_eq!(table_of(&rows, "total").as_deref(), Some("orders"));
    assert!(rows
        .iter()
        .all(|r| r.schema.split('|').all(|s| s == "public")));

    // A DDL through the proxy refreshes the snapshot in the background.
    via.batch_execute("ALTER TABLE users ADD COLUMN phone text")
        .await
        .unwrap();
    via.query(
        "SELECT phone, total FROM users JOIN orders ON orders.user_id = users.id",
        &[],
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if table_of(&proxy.handle.usage_rows(), "phone").as_deref() == Some("users") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "phone never resolved to users"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn run_queries(proxy: &TestProxy, db: &str, app: &str, n: i32) {
    let c = connect(&format!("{} application_name={app}", proxy.conn(db))).await;
    for id in 0..n {
        c.query("SELECT email FROM users WHERE id = $1", &[&id])
            .await
            .unwrap();
    }
}

fn calls_of(rows: &[UsageRow], app: &str) -> u64 {
    rows.iter()
        .filter(|r| r.client.application_name == app && r.column.as_deref() == Some("email"))
        .map(|r| r.calls)
        .sum()
}

async fn wait_calls(proxy: &TestProxy, app: &str, want: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let got = calls_of(&proxy.handle.usage_rows(), app);
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{app}: {got} calls, want {want}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A fresh folder for a SQLite store file, and the store in it.
pub(crate) fn sqlite_store(name: &str) -> (std::path::PathBuf, ddlguard::usage::store::StoreSpec) {
    let dir = std::env::temp_dir().join(format!("ddlguard-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = ddlguard::usage::store::StoreSpec::Sqlite(dir.join("usage.db"));
    (dir, store)
}

/// Settings of a proxy that is restarted on `store`: quick flushes and shutdown.
pub(crate) fn restartable(
    c: &mut ddlguard::config::Config,
    store: &ddlguard::usage::store::StoreSpec,
) {
    c.usage.store = store.clone();
    c.usage.flush_interval.0 = std::time::Duration::from_millis(200);
    c.server.shutdown_grace.0 = std::time::Duration::from_millis(100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_survives_a_restart_with_the_sqlite_store() {
    let (cluster, db) = setup("usage_sqlite").await;
    let (_, store) = sqlite_store("sqlite-store");
    let configure = |c: &mut ddlguard::config::Config| restartable(c, &store);
    let first = TestProxy::start_with(cluster, configure).await;
    run_queries(&first, &db, "restart_app", 7).await;
    first.handle.shutdown();
    tokio::time::timeout(std::time::Duration::from_secs(30), first.task)
        .await
        .expect("first proxy stops")
        .unwrap();

    let second = TestProxy::start_with(cluster, configure).await;
    wait_calls(&second, "restart_app", 7).await;
    let rows = second.handle.usage_rows();
    let row = rows
        .iter()
        .find(|r| r.column.as_deref() == Some("email"))
        .unwrap();
    assert_eq!(row.fingerprint, "select email from users where id = $1");
    // New calls add to the loaded history, and are flushed once only.
    run_queries(&second, &db, "restart_app", 3).await;
    wait_calls(&second, "restart_app", 10).await;
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(calls_of(&second.handle.usage_rows(), "restart_app"), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_sharing_a_postgres_store_see_each_others_usage() {
    use ddlguard::usage::store::StoreSpec;
    let (cluster, db) = setup("usage_pgstore").await;
    let store_db = cluster.create_db("ddlguard_usage_store");
    let store = StoreSpec::Postgres(format!(
        "postgres://postgres@127.0.0.1:{}/{store_db}?sslmode=disable",
        cluster.port
    ));
    let configure = |c: &mut ddlguard::config::Config| {
        c.usage.store = store.clone();
        c.usage.flush_interval.0 = std::time::Duration::from_millis(200);
    };
    let a = TestProxy::start_with(cluster, configure).await;
    let b = TestProxy::start_with(cluster, configure).await;
    run_queries(&a, &db, "fleet_a", 4).await;
    run_queries(&b, &db, "fleet_b", 6).await;
    run_queries(&b, &db, "fleet_a", 1).await;
    for proxy in [&a, &b] {
        wait_calls(proxy, "fleet_a", 5).await;
        wait_calls(proxy, "fleet_b", 6).await;
    }
    // The shared history holds each increment once.
    let direct = connect(&cluster.direct_conn(&store_db)).await;
    let total: i64 = direct
        .query_one("SELECT sum(calls)::bigint FROM ddlguard_usage", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_application_name_moves_later_usage_to_the_new_name() {
    let (cluster, db) = setup("usage_appname").await;
    let proxy = TestProxy::start(cluster).await;
    let c = connect(&format!("{} application_name=before", proxy.conn(&db))).await;
    c.query("SELECT email FROM users", &[]).await.unwrap();
    c.batch_execute("SET application_name = 'after'")
        .await
        .unwrap();
    c.query("SELECT email FROM users", &[]).await.unwrap();
    c.query("SELECT email FROM users", &[]).await.unwrap();
    let rows = proxy.handle.usage_rows();
    assert_eq!(calls_of(&rows, "before"), 1);
    assert_eq!(calls_of(&rows, "after"), 2);
}

/// VmRSS of this process in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_distinct_texts_keep_memory_under_the_caps() {
    let (cluster, db) = setup("usage_million").await;
    let proxy = TestProxy::start_with(cluster, |c| {
        c.usage.max_entries = 500;
        c.usage.analysis_cache = 2000;
    })
    .await;
    let mut raw = RawClient::login_db(proxy.addr.port(), &db).await;
    let mut rss_after_warmup = 0;
    let mut usage_after_warmup = 0;
    // 1,000,000 distinct texts: 1,000 shapes (distinct aliases) x distinct literals.
    const BATCH: usize = 10_000;
    for chunk in 0..100usize {
        let mut batch = Vec::with_capacity(BATCH * 60);
        for i in 0..BATCH {
            let n = chunk * BATCH + i;
            batch.extend(query(&format!(
                "SELECT {n} AS c{} FROM users WHERE id = {n}",
                n % 1000
            )));
        }
        raw.send(&batch).await;
        let mut ready = 0;
        while ready < BATCH {
            if raw.read_message().await.expect("reply").0 == b'Z' {
                ready += 1;
            }
        }
        if chunk == 9 {
            rss_after_warmup = rss_kib();
            usage_after_warmup = proxy.handle.usage().memory_bytes();
        }
    }
    let stats = proxy.handle.usage().stats();
    assert_eq!(stats.recorded + stats.dropped, 1_000_000);
    assert_eq!(stats.entries, 500, "entries stop at usage.max_entries");
    assert!(stats.dropped > 0);
    assert!(proxy.handle.analyzer().len() <= 2000 + 64);
    // The last 900,000 texts did not grow what the usage registry holds
    // (its own byte accounting, exact for this process's proxy) ...
    let usage_growth = proxy
        .handle
        .usage()
        .memory_bytes()
        .saturating_sub(usage_after_warmup);
    assert!(
        usage_growth < 1024 * 1024,
        "usage memory grew by {usage_growth} bytes after warm-up"
    );
    // ... nor the test process (proxy, client, and whatever other tests run
    // beside it) by anything like a per-text leak (900,000 x 60 bytes).
    let growth = rss_kib().saturating_sub(rss_after_warmup);
    assert!(
        growth < 128 * 1024,
        "RSS grew by {growth} KiB after warm-up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unqualified_names_resolve_through_the_sessions_search_path() {
    let (cluster, db) = setup("usage_search_path").await;
    let direct = connect(&cluster.direct_conn(&db)).await;
    direct
        .batch_execute("CREATE SCHEMA app; CREATE TABLE app.users (id int, email text, nick text);")
        .await
        .unwrap();
    let proxy = with_catalog(cluster, &db).await;
    let conn =
        |app: &str, extra: &str| format!("{} application_name={app} {extra}", proxy.conn(&db));
    let email = "SELECT email FROM users WHERE id = $1";

    // The server default ("$user", public): public.users.
    let plain = connect(&conn("sp_default", "")).await;
    plain.query(email, &[&1i32]).await.unwrap();
    // From the startup packet's options.
    let opts = connect(&conn("sp_options", "options='-c search_path=app'")).await;
    opts.query(email, &[&1i32]).await.unwrap();
    // RESET returns to the startup packet's path, not the server default.
    opts.batch_execute("SET search_path TO public; RESET search_path")
        .await
        .unwrap();
    opts.query("SELECT nick FROM users", &[]).await.unwrap();
    // Drivers prepare SET once and execute it again: the change happens at
    // each execution, not at Parse.
    let prepared = connect(&conn("sp_prepared", "")).await;
    let to_app = prepared.prepare("SET search_path TO app").await.unwrap();
    let to_public = prepared.prepare("SET search_path TO public").await.unwrap();
    for (set, sql) in [
        (&to_app, "SELECT email FROM users WHERE id = 1"),
        (&to_public, "SELECT email FROM users WHERE id = 2"),
        (&to_app, "SELECT nick FROM users WHERE id = 3"),
    ] {
        prepared.execute(set, &[]).await.unwrap();
        prepared.simple_query(sql).await.unwrap();
    }
    // SET, then RESET, in one session.
    let set = connect(&conn("sp_set", "")).await;
    set.batch_execute("SET search_path TO app, public")
        .await
        .unwrap();
    set.query(email, &[&1i32]).await.unwrap();
    set.batch_execute("RESET search_path").await.unwrap();
    set.query("SELECT email FROM users", &[]).await.unwrap();
    // SET LOCAL lasts until the transaction ends.
    let local = connect(&conn("sp_local", "")).await;
    for sql in [
        "BEGIN",
        "SET LOCAL search_path = 'app'",
        "SELECT nick FROM users",
        "COMMIT",
    ] {
        local.batch_execute(sql).await.unwrap();
    }
    local.query("SELECT email FROM users", &[]).await.unwrap();

    let rows = proxy.handle.usage_rows();
    let schema_of = |app: &str, fingerprint: &str| -> Vec<String> {
        let mut found: Vec<String> = rows
            .iter()
            .filter(|r| {
                r.client.application_name == app
                    && r.fingerprint == fingerprint
                    && r.column.is_some()
            })
            .map(|r| format!("{}.{}", r.schema, r.table))
            .collect();
        found.sort();
        found.dedup();
        found
    };
    let by_id = "select email from users where id = $1";
    let all = "select email from users";
    assert_eq!(schema_of("sp_default", by_id), ["public.users"]);
    assert_eq!(schema_of("sp_options", by_id), ["app.users"]);
    assert_eq!(
        schema_of("sp_options", "select nick from users"),
        ["app.users"]
    );
    // Literal-only differences share a shape: id = 1 (app) and id = 2
    // (public) are one fingerprint under two paths.
    assert_eq!(
        schema_of("sp_prepared", "select email from users where id = $1"),
        ["app.users", "public.users"]
    );
    assert_eq!(
        schema_of("sp_prepared", "select nick from users where id = $1"),
        ["app.users"],
        "the cached SET search_path TO app took effect again"
    );
    assert_eq!(schema_of("sp_set", by_id), ["app.users"]);
    assert_eq!(schema_of("sp_set", all), ["public.users"], "after RESET");
    assert_eq!(
        schema_of("sp_local", "select nick from users"),
        ["app.users"]
    );
    assert_eq!(schema_of("sp_local", all), ["public.users"], "after COMMIT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_history_is_resolved_as_recorded_after_a_restart() {
    let (cluster, db) = setup("usage_recorded").await;
    let direct = connect(&cluster.direct_conn(&db)).await;
    direct
        .batch_execute(
            "CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int, total numeric);",
        )
        .await
        .unwrap();
    let (dir, store) = sqlite_store("recorded-store");
    let configure = |c: &mut ddlguard::config::Config| {
        restartable(c, &store);
        c.upstream.user = Some("postgres".into());
    };
    let where_email = |rows: &[UsageRow]| -> Vec<String> {
        let mut found: Vec<String> = rows
            .iter()
            .filter(|r| r.column.as_deref() == Some("email"))
            .map(|r| format!("{}.{}", r.schema, r.table))
            .collect();
        found.sort();
        found.dedup();
        found
    };

    let first = TestProxy::start_with(cluster, configure).await;
    load_catalog(&first, &db).await;
    let c = connect(&format!(
        "{} application_name=recorded options='-c search_path=billing,public'",
        first.conn(&db)
    ))
    .await;
    for id in 0..3i32 {
        c.query("SELECT email FROM users WHERE id = $1", &[&id])
            .await
            .unwrap();
    }
    assert_eq!(where_email(&first.handle.usage_rows()), ["public.users"]);
    drop(c);
    first.handle.shutdown();
    tokio::time::timeout(std::time::Duration::from_secs(30), first.task)
        .await
        .expect("first proxy stops")
        .unwrap();
    // While the proxy is down the table is renamed: history keeps the name
    // it was recorded under.
    direct
        .batch_execute("ALTER TABLE users RENAME TO customers")
        .await
        .unwrap();

    // No client connects: no catalog is loaded, the rows come from the store.
    let second = TestProxy::start_with(cluster, configure).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while calls_of(&second.handle.usage_rows(), "recorded") != 3 {
        assert!(std::time::Instant::now() < deadline, "history not loaded");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        where_email(&second.handle.usage_rows()),
        ["public.users"],
        "before any catalog is loaded"
    );
    // With the current catalog (users is gone) the history keeps its name.
    load_catalog(&second, &db).await;
    assert_eq!(
        where_email(&second.handle.usage_rows()),
        ["public.users"],
        "after the rename"
    );
    second.handle.shutdown();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), second.task).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_past_the_client_cap_are_flushed_once() {
    let (cluster, db) = setup("usage_client_cap").await;
    let (dir, store) = sqlite_store("client-cap-store");
    let proxy = TestProxy::start_with(cluster, |c| {
        restartable(c, &store);
        c.usage.flush_interval.0 = std::time::Duration::from_millis(100);
        // The identity cap is max_entries: two identities fill it.
        c.usage.max_entries = 2;
    })
    .await;
    let with_path = connect(&format!(
        "{} application_name=cap_a options='-c search_path=public'",
        proxy.conn(&db)
    ))
    .await;
    let _other = connect(&format!("{} application_name=cap_b", proxy.conn(&db))).await;
    for id in 0..3i32 {
        with_path
            .query("SELECT email FROM users WHERE id = $1", &[&id])
            .await
            .unwrap();
    }
    // Many flushes go by.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    proxy.handle.shutdown();
    tokio::time::timeout(std::time::Duration::from_secs(30), proxy.task)
        .await
        .expect("proxy stops")
        .unwrap();
    let file = dir.join("usage.db");
    let calls: i64 = rusqlite::Connection::open(&file)
        .unwrap()
        .query_row(
            "SELECT coalesce(sum(calls), 0) FROM ddlguard_usage WHERE application_name = 'cap_a'
               AND fingerprint = 'select email from users where id = $1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(calls, 3, "each execution reaches the store once");
    let _ = std::fs::remove_dir_all(&dir);
}

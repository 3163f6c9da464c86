//! The DDL log (issue 15 item 6): every DDL through the proxy in `SHOW DDL`
//! and `/api/v1/ddl` with its fields and the impact on its table's traffic,
//! in the store (surviving restarts, shared by a fleet), paged with `since`.

use crate::support::http::get_page;
use crate::support::{connect, Cluster, TestProxy};
use crate::usage::{restartable, sqlite_store};
use ddlguard::config::{AdminUser, Config};
use ddlguard::usage::impact::{Impact, ImpactState, WindowStats};
use ddlguard::usage::store::{Store, StoreSpec};
use ddlguard::usage::{ClientIdentity, DdlEvent, DdlNotes, RuleHit};
use serde_json::Value;
use std::time::{Duration, Instant};

const PASSWORD_VAR: &str = "DDLGUARD_TEST_DDL_LOG_PASSWORD";

/// A database with a table `items` of a few rows.
async fn items(db: &str) -> (&'static Cluster, String) {
    let cluster = Cluster::shared();
    let db = cluster.create_db(db);
    let direct = connect(&cluster.direct_conn(&db)).await;
    direct
        .batch_execute(
            "CREATE TABLE items (id int PRIMARY KEY, name text);
             INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 10) i;",
        )
        .await
        .unwrap();
    (cluster, db)
}

/// The HTTP API and an admin console login, quick flushes; the policy
/// observes (the log records every DDL in every mode; this keeps the
/// statements as sent).
fn reporting(c: &mut Config) {
    c.policy.mode = ddlguard::policy::Mode::Observe;
    std::env::set_var(PASSWORD_VAR, "ddl-log-s3cret");
    c.admin.http_listen = Some("127.0.0.1:0".parse().unwrap());
    c.admin.users = vec![AdminUser {
        name: "admin".into(),
        password: None,
        password_env: Some(PASSWORD_VAR.into()),
    }];
    c.usage.flush_interval.0 = Duration::from_millis(200);
}

async fn client(proxy: &TestProxy, db: &str, app: &str) -> tokio_postgres::Client {
    connect(&format!("{} application_name={app}", proxy.conn(db))).await
}

async fn console(proxy: &TestProxy) -> tokio_postgres::Client {
    connect(&format!(
        "host=127.0.0.1 port={} user=admin password=ddl-log-s3cret dbname=ddlguard sslmode=disable",
        proxy.addr.port()
    ))
    .await
}

/// `/api/v1/ddl` with `query`, as JSON rows.
fn api_ddl(proxy: &TestProxy, query: &str) -> (Vec<Value>, Option<String>) {
    let http = proxy.http.expect("HTTP API on");
    let page = get_page(&format!("http://{http}/api/v1/ddl?{query}")).expect("ddl report");
    let rows: Vec<Value> = serde_json::from_str(&page.body).unwrap();
    (rows, page.next)
}

/// Polls `check` until it holds (the flusher runs every 200 ms).
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddl_through_the_proxy_shows_in_show_ddl_with_its_fields() {
    let (cluster, db) = items("ddl_log_fields").await;
    let proxy = TestProxy::start_with(cluster, reporting).await;
    let migrate = client(&proxy, &db, "migrate").await;
    migrate
        .batch_execute("ALTER TABLE items ADD COLUMN note text DEFAULT 'secret note'")
        .await
        .unwrap();
    let err = migrate
        .batch_execute("DROP TABLE no_such_table")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01");

    // Recorded when the proxy has relayed ReadyForQuery: a moment later.
    eventually("both events", || {
        (api_ddl(&proxy, "").0.len() == 2).then_some(())
    })
    .await;
    let admin = console(&proxy).await;
    let rows = admin.query("SHOW DDL", &[]).await.unwrap();
    assert_eq!(rows.len(), 2, "newest first: the DROP, then the ALTER");
    let (drop, alter) = (&rows[0], &rows[1]);
    assert_eq!(drop.get::<_, String>("command"), "drop table");
    assert_eq!(drop.get::<_, String>("outcome"), "42P01");
    assert_eq!(alter.get::<_, String>("application_name"), "migrate");
    assert_eq!(alter.get::<_, String>("command"), "alter table");
    assert_eq!(
        alter.get::<_, Option<String>>("target").as_deref(),
        Some("items")
    );
    assert_eq!(alter.get::<_, String>("outcome"), "ok");
    let fingerprint = alter.get::<_, String>("fingerprint");
    assert!(
        !fingerprint.contains("secret"),
        "no literals: {fingerprint}"
    );
    // Nothing annotated it: forwarded once, no rules, no waits.
    assert_eq!(alter.get::<_, String>("action"), "forward");
    assert_eq!(alter.get::<_, i64>("attempts"), 1);
    assert_eq!(alter.get::<_, String>("rules"), "");
    assert_eq!(alter.get::<_, i64>("lock_wait_ms"), 0);
    assert!(!alter.get::<_, String>("id").is_empty());
    assert_ne!(alter.get::<_, String>("id"), drop.get::<_, String>("id"));

    // SINCE takes an interval, as SHOW ERRORS does.
    assert_eq!(
        admin
            .query("SHOW DDL SINCE '1 hour'", &[])
            .await
            .unwrap()
            .len(),
        2
    );
    // The same rows over HTTP, keyed by column name.
    let (json, _) = api_ddl(&proxy, "client=migrate");
    assert_eq!(json.len(), 2);
    assert_eq!(json[1]["command"], "alter table");
    assert_eq!(json[1]["action"], "forward");
    assert_eq!(json[1]["attempts"], 1);
    assert!(
        json[1]["at"].as_str().unwrap().ends_with('Z'),
        "RFC 3339 times"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impact_columns_count_the_other_clients_calls_on_the_table() {
    let (cluster, db) = items("ddl_log_impact").await;
    let proxy = TestProxy::start_with(cluster, reporting).await;
    let app = client(&proxy, &db, "app").await;
    let migrate = client(&proxy, &db, "migrate").await;
    for id in 1..=20 {
        app.query("SELECT name FROM items WHERE id = $1", &[&id])
            .await
            .unwrap();
    }
    let err = app.query("SELECT nope FROM items", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42703");
    // The migration's own reads of the table are not "other clients".
    for _ in 0..5 {
        migrate
            .query("SELECT count(*) FROM items", &[])
            .await
            .unwrap();
    }
    migrate
        .batch_execute("ALTER TABLE items ADD COLUMN x int")
        .await
        .unwrap();
    for id in 1..=10 {
        app.query(
            "INSERT INTO items (id, name) VALUES ($1, 'new')",
            &[&(100 + id)],
        )
        .await
        .unwrap();
    }
    // A DDL on no table has no impact to measure.
    migrate
        .batch_execute("CREATE FUNCTION ddl_log_f() RETURNS int AS 'select 1' LANGUAGE sql")
        .await
        .unwrap();

    let alter = eventually("the ALTER's impact with every call of app", || {
        let (rows, _) = api_ddl(&proxy, "table=items");
        let alter = rows.into_iter().find(|r| r["command"] == "alter table")?;
        let calls: i64 = ["before", "during", "after"]
            .iter()
            .map(|w| alter[format!("{w}_calls")].as_i64().unwrap_or(0))
            .sum();
        (calls >= 31).then_some(alter)
    })
    .await;
    let sum = |what: &str| -> i64 {
        ["before", "during", "after"]
            .iter()
            .map(|w| alter[format!("{w}_{what}")].as_i64().unwrap())
            .sum()
    };
    assert_eq!(
        sum("calls"),
        31,
        "20 reads, 1 failed read, 10 inserts: {alter}"
    );
    assert_eq!(sum("errors"), 1, "{alter}");
    assert_eq!(alter["impact"], "partial", "the after window is still open");
    assert!(
        ["before", "during", "after"]
            .iter()
            .any(|w| alter[format!("{w}_p99_ms")]
                .as_f64()
                .is_some_and(|ms| ms > 0.0)),
        "a p99 where there were calls: {alter}"
    );
    let (rows, _) = api_ddl(&proxy, "client=migrate");
    let function = rows
        .iter()
        .find(|r| r["command"] == "create function")
        .expect("the CREATE FUNCTION");
    assert_eq!(function["impact"], "none");
    assert_eq!(function["during_calls"], Value::Null);
}

/// A proxy on a persistent store with the reporting settings.
fn on_store(store: &StoreSpec) -> impl Fn(&mut Config) + '_ {
    move |c| {
        reporting(c);
        restartable(c, store);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_survive_a_restart_with_the_sqlite_store() {
    let (cluster, db) = items("ddl_log_restart").await;
    let (_, store) = sqlite_store("ddl-log-restart");
    let first = TestProxy::start_with(cluster, on_store(&store)).await;
    client(&first, &db, "migrate")
        .await
        .batch_execute("CREATE INDEX items_name ON items (name)")
        .await
        .unwrap();
    let before = eventually("the CREATE INDEX", || {
        let events = first.handle.ddl_log().events();
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert_eq!(before.len(), 1);
    first.handle.shutdown();
    tokio::time::timeout(Duration::from_secs(30), first.task)
        .await
        .expect("first proxy stops")
        .unwrap();

    let second = TestProxy::start_with(cluster, on_store(&store)).await;
    let (rows, _) = eventually("the row loaded from the store", || {
        let page = api_ddl(&second, "");
        (!page.0.is_empty()).then_some(page)
    })
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["id"], before[0].id.as_str(), "the same event");
    assert_eq!(rows[0]["command"], "create index");
    assert_eq!(rows[0]["on"], "items");
    assert_eq!(rows[0]["application_name"], "migrate");
    assert_eq!(rows[0]["action"], "forward");
    assert_eq!(rows[0]["impact"], "partial", "measured before the shutdown");
    // New events add to the loaded history.
    client(&second, &db, "migrate")
        .await
        .batch_execute("DROP INDEX items_name")
        .await
        .unwrap();
    eventually("the old and the new event", || {
        (api_ddl(&second, "").0.len() == 2).then_some(())
    })
    .await;
}

fn store_of(cluster: &Cluster, db: &str) -> StoreSpec {
    StoreSpec::Postgres(format!(
        "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
        cluster.port
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_proxies_sharing_a_postgres_store_see_each_others_rows() {
    let (cluster, db) = items("ddl_log_fleet").await;
    let store_db = cluster.create_db("ddl_log_fleet_store");
    let store = store_of(cluster, &store_db);
    let a = TestProxy::start_with(cluster, on_store(&store)).await;
    let b = TestProxy::start_with(cluster, on_store(&store)).await;
    client(&a, &db, "migrate_a")
        .await
        .batch_execute("ALTER TABLE items ADD COLUMN a int")
        .await
        .unwrap();
    client(&b, &db, "migrate_b")
        .await
        .batch_execute("ALTER TABLE items ADD COLUMN b int")
        .await
        .unwrap();
    for proxy in [&a, &b] {
        let apps = eventually("both proxies' rows", || {
            let (rows, _) = api_ddl(proxy, "");
            let mut apps: Vec<String> = rows
                .iter()
                .map(|r| r["application_name"].as_str().unwrap_or("").to_string())
                .collect();
            apps.sort();
            (apps.len() >= 2).then_some(apps)
        })
        .await;
        assert_eq!(apps, vec!["migrate_a", "migrate_b"]);
    }
    // Each event is one row in the shared store.
    let direct = connect(&cluster.direct_conn(&store_db)).await;
    let n: i64 = direct
        .query_one("SELECT count(*) FROM ddlguard_ddl", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
}

/// An event with every field set, `hours` old.
fn event(id: &str, hours: u64) -> DdlEvent {
    DdlEvent {
        id: id.into(),
        at_ms: ddlguard::usage::now_ms() - hours * 3_600_000,
        client: ClientIdentity {
            application_name: "old_migration".into(),
            user: "postgres".into(),
            database: "d".into(),
            client_addr: "10.1.2.3".into(),
        },
        command: "alter table".into(),
        object: "table".into(),
        target: Some("app.items".into()),
        on: None,
        fingerprint: "alter table app.items add column y int".into(),
        error: Some("55P03".into()),
        duration_us: 2_500_000,
        notes: DdlNotes {
            rules: vec![RuleHit {
                rule: "add-column-volatile-default".into(),
                action: "warn".into(),
                allowed_by_comment: Some("reviewed".into()),
            }],
            action: "guard".into(),
            attempts: 5,
            preflight_wait_ms: 30_000,
            lock_wait_ms: 500,
            blockers: vec![
                "pid 7 (report) idle in transaction 40s: select * from app.items".into(),
            ],
            terminated: vec!["7".into()],
        },
        impact: Impact {
            before: WindowStats {
                calls: 100,
                errors: 1,
                p50_us: 300,
                p99_us: 2_000,
            },
            during: WindowStats {
                calls: 40,
                errors: 0,
                p50_us: 900,
                p99_us: 150_000,
            },
            after: WindowStats {
                calls: 120,
                errors: 0,
                p50_us: 310,
                p99_us: 2_100,
            },
            state: ImpactState::Complete,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_round_trips_events() {
    let cluster = Cluster::shared();
    let store_db = cluster.create_db("ddl_log_pg_round_trip");
    let store = Store::open(&store_of(cluster, &store_db)).await.unwrap();
    let old = event("x-1", 3);
    let mut new = event("x-2", 0);
    new.target = None;
    new.error = None;
    new.notes = DdlNotes::default();
    new.impact = Impact::default();
    store
        .write_ddl(vec![old.clone(), new.clone()], 10)
        .await
        .unwrap();
    assert_eq!(
        store.read_ddl(0, 10).await.unwrap(),
        vec![new.clone(), old.clone()]
    );
    assert_eq!(store.read_ddl(0, 1).await.unwrap(), vec![new.clone()]);
    // Rewritten by id: one row, the newer content, found as changed.
    let mut old2 = old.clone();
    old2.impact.after.calls = 130;
    store.write_ddl(vec![old2.clone()], 20).await.unwrap();
    assert_eq!(store.read_ddl(15, 10).await.unwrap(), vec![old2]);
    assert_eq!(store.read_ddl(0, 10).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_follow_since_and_limit_over_stored_and_new_rows() {
    let (cluster, db) = items("ddl_log_pages").await;
    let (_, store) = sqlite_store("ddl-log-pages");
    // Two events of an earlier run, hours old, in the store.
    Store::open(&store)
        .await
        .unwrap()
        .write_ddl(vec![event("old-1", 3), event("old-2", 2)], 1)
        .await
        .unwrap();
    let proxy = TestProxy::start_with(cluster, on_store(&store)).await;
    let migrate = client(&proxy, &db, "migrate").await;
    for column in ["p1", "p2", "p3"] {
        migrate
            .batch_execute(&format!("ALTER TABLE items ADD COLUMN {column} int"))
            .await
            .unwrap();
    }
    eventually("the stored rows loaded", || {
        (api_ddl(&proxy, "").0.len() == 5).then_some(())
    })
    .await;

    // Pages of 2: newest first, every row once.
    let mut seen: Vec<Value> = Vec::new();
    let mut query = "limit=2".to_string();
    let mut pages = 0;
    loop {
        let (rows, next) = api_ddl(&proxy, &query);
        assert!(rows.len() <= 2);
        seen.extend(rows);
        pages += 1;
        match next {
            Some(cursor) => query = format!("limit=2&after={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let at: Vec<&str> = seen.iter().map(|r| r["at"].as_str().unwrap()).collect();
    assert!(at.windows(2).all(|w| w[0] >= w[1]), "newest first: {at:?}");
    let mut new: Vec<&str> = seen[..3]
        .iter()
        .map(|r| r["fingerprint"].as_str().unwrap())
        .collect();
    new.sort();
    assert_eq!(
        new,
        vec![
            "alter table items add column p1 int",
            "alter table items add column p2 int",
            "alter table items add column p3 int",
        ]
    );
    assert_eq!(
        (seen[3]["id"].as_str(), seen[4]["id"].as_str()),
        (Some("old-2"), Some("old-1"))
    );
    // The stored rows keep every field.
    let old = &seen[3];
    assert_eq!(old["id"], "old-2");
    assert_eq!(
        old["rules"],
        "add-column-volatile-default=warn (allowed: reviewed)"
    );
    assert_eq!(
        (old["action"].as_str(), old["attempts"].as_i64()),
        (Some("guard"), Some(5))
    );
    assert_eq!(old["preflight_wait_ms"], 30_000);
    assert_eq!(old["terminated"], "7");
    assert_eq!(old["outcome"], "55P03");
    assert_eq!(
        (old["impact"].as_str(), old["during_p99_ms"].as_f64()),
        (Some("complete"), Some(150.0))
    );

    // since: the last hour only, also paged.
    let (recent, next) = api_ddl(&proxy, "since=1h&limit=2");
    assert_eq!(recent.len(), 2);
    let cursor = next.expect("a third recent row follows");
    let (rest, next) = api_ddl(&proxy, &format!("since=1h&limit=2&after={cursor}"));
    assert_eq!((rest.len(), next), (1, None));
    assert_eq!(
        api_ddl(&proxy, "since=150m").0.len(),
        4,
        "one old row is 2 hours old"
    );
    let http = proxy.http.unwrap();
    assert_eq!(
        get_page(&format!("http://{http}/api/v1/ddl?since=yesterday")).err(),
        Some(400)
    );
    let admin = console(&proxy).await;
    let rows = admin
        .query("SHOW DDL SINCE '1 hour' LIMIT 2", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
}

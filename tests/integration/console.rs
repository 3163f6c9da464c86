//! The admin console on the proxy's port: SCRAM login against
//! `[[admin.users]]`, every command from tokio-postgres and psql, refusals.

use crate::support::{connect, Cluster, TestProxy};
use ddlguard::config::AdminUser;
use std::process::Command;
use std::time::SystemTime;
use tokio_postgres::{NoTls, SimpleQueryMessage};

const PASSWORD: &str = "console-s3cret";

/// A SCRAM-SHA-256 verifier made by Postgres itself for `password` (a role
/// of its own per call: tests run in parallel).
async fn postgres_verifier(cluster: &Cluster, password: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let role = format!(
        "console_verifier_{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let direct = connect(&cluster.direct_conn("postgres")).await;
    direct
        .batch_execute(&format!(
            "SET password_encryption = 'scram-sha-256';
             DROP ROLE IF EXISTS {role}; CREATE ROLE {role} PASSWORD '{password}';"
        ))
        .await
        .unwrap();
    direct
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&role],
        )
        .await
        .unwrap()
        .get(0)
}

async fn start(cluster: &Cluster) -> TestProxy {
    let verifier = postgres_verifier(cluster, PASSWORD).await;
    std::env::set_var("DDLGUARD_TEST_OPS_PASSWORD", "ops-from-env");
    TestProxy::start_with(cluster, move |c| {
        c.admin.http_listen = Some("127.0.0.1:0".parse().unwrap());
        c.admin.users = vec![
            AdminUser {
                name: "admin".into(),
                password: Some(verifier),
                password_env: None,
            },
            AdminUser {
                name: "ops".into(),
                password: None,
                password_env: Some("DDLGUARD_TEST_OPS_PASSWORD".into()),
            },
        ];
    })
    .await
}

fn console_conn(proxy: &TestProxy, user: &str, password: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user={user} password={password} dbname=ddlguard sslmode=disable",
        proxy.addr.port()
    )
}

async fn try_console(
    proxy: &TestProxy,
    user: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) =
        tokio_postgres::connect(&console_conn(proxy, user, password), NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

fn rows(messages: Vec<SimpleQueryMessage>) -> Vec<tokio_postgres::SimpleQueryRow> {
    messages
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_answers_every_command_from_tokio_postgres_and_psql() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("console_reports");
    let direct = connect(&cluster.direct_conn(&db)).await;
    direct
        .batch_execute(
            "CREATE TABLE users (id int PRIMARY KEY, email text, name text);
             CREATE TABLE audit (id int, note text);
             INSERT INTO users VALUES (1, 'a@example.com', 'a');",
        )
        .await
        .unwrap();
    let proxy = start(cluster).await;
    let app = |name: &str| format!("{} application_name={name}", proxy.conn(&db));
    // A names users.email, B uses SELECT *, C never touches users.
    let a = connect(&app("app_a")).await;
    for _ in 0..3 {
        a.query("SELECT email FROM users WHERE id = $1", &[&1i32])
            .await
            .unwrap();
    }
    let b = connect(&app("app_b")).await;
    b.simple_query("SELECT * FROM users").await.unwrap();
    let c = connect(&app("app_c")).await;
    c.simple_query("SELECT note FROM audit").await.unwrap();
    c.batch_execute("CREATE INDEX audit_id ON audit (id)")
        .await
        .unwrap();

    let admin = try_console(&proxy, "admin", PASSWORD)
        .await
        .expect("SCRAM login with a Postgres verifier");

    // Extended protocol, typed columns.
    let deps = admin
        .query("SHOW DEPENDENTS users.email SINCE '1 hour'", &[])
        .await
        .unwrap();
    let mut found: Vec<(String, String, i64)> = deps
        .iter()
        .map(|r| {
            (
                r.get("application_name"),
                r.get("dependency"),
                r.get("calls"),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("app_a".into(), "explicit".into(), 3),
            ("app_b".into(), "implicit".into(), 1)
        ]
    );
    let last: SystemTime = deps[0].get("last_seen");
    assert!(last <= SystemTime::now());
    assert!(deps[0]
        .get::<_, String>("fingerprint")
        .starts_with("select"));

    let clients = admin.query("SHOW CLIENTS", &[]).await.unwrap();
    let a_row = clients
        .iter()
        .find(|r| r.get::<_, String>("application_name") == "app_a")
        .expect("app_a in SHOW CLIENTS");
    assert_eq!(a_row.get::<_, i64>("sessions"), 1, "one session open now");
    assert_eq!(a_row.get::<_, i64>("calls"), 3);

    let tables = admin.query("SHOW TABLES", &[]).await.unwrap();
    let users = tables
        .iter()
        .find(|r| r.get::<_, String>("table") == "users")
        .expect("users in SHOW TABLES");
    assert_eq!(users.get::<_, i64>("reads"), 4);
    assert_eq!(users.get::<_, i64>("clients"), 2);
    assert_eq!(users.get::<_, String>("implicit_use"), "yes");

    let usage = admin.query("SHOW USAGE users.email", &[]).await.unwrap();
    let apps: std::collections::BTreeSet<String> =
        usage.iter().map(|r| r.get("application_name")).collect();
    assert_eq!(apps.into_iter().collect::<Vec<_>>(), ["app_a", "app_b"]);

    let queries = admin.query("SHOW QUERIES users", &[]).await.unwrap();
    let shape = queries
        .iter()
        .find(|r| {
            r.get::<_, String>("scope") == "query"
                && r.get::<_, Option<String>>("fingerprint").as_deref()
                    == Some("select email from users where id = $1")
        })
        .expect("the shape's minute bucket");
    assert_eq!(shape.get::<_, i64>("calls"), 3);
    let (p50, p99, max): (f64, f64, f64) = (
        shape.get("p50_ms"),
        shape.get("p99_ms"),
        shape.get("max_ms"),
    );
    assert!(p50 > 0.0 && p50 <= p99, "{p50} {p99}");
    assert!(max > 0.0);
    assert!(queries
        .iter()
        .any(|r| r.get::<_, String>("scope") == "table"
            && r.get::<_, String>("tables") == "public.users"
            && r.get::<_, String>("kind") == "read"));
    assert!(
        queries
            .iter()
            .all(|r| r.get::<_, String>("tables").contains("public.users")),
        "only what touches users"
    );

    let ddl = admin.query("SHOW DDL", &[]).await.unwrap();
    let index = ddl
        .iter()
        .find(|r| r.get::<_, String>("command") == "create index")
        .expect("the CREATE INDEX in SHOW DDL");
    assert_eq!(index.get::<_, String>("application_name"), "app_c");
    assert_eq!(index.get::<_, String>("outcome"), "ok");
    assert_eq!(
        index.get::<_, Option<String>>("target").as_deref(),
        Some("audit_id")
    );
    assert_eq!(
        index.get::<_, Option<String>>("on").as_deref(),
        Some("audit")
    );
    assert_eq!(
        index.get::<_, Option<String>>("object").as_deref(),
        Some("index")
    );

    let config = admin.query("SHOW CONFIG", &[]).await.unwrap();
    let value = |key: &str| {
        config
            .iter()
            .find(|r| r.get::<_, String>("key") == key)
            .map(|r| r.get::<_, String>("value"))
    };
    assert_eq!(value("admin.database").as_deref(), Some("ddlguard"));
    assert_eq!(
        value("admin.users.admin.password").as_deref(),
        Some("(SCRAM-SHA-256 verifier)")
    );
    let rules = admin.query("SHOW RULES", &[]).await.unwrap();
    assert!(rules.len() >= 50, "{}", rules.len());
    assert!(rules.iter().any(
        |r| r.get::<_, String>("rule") == "create-index-nonconcurrent"
            && r.get::<_, String>("action") == "rewrite"
    ));

    // Simple protocol: text values, and the unknown-command error.
    let text = rows(
        admin
            .simple_query("show errors since '1 hour'")
            .await
            .unwrap(),
    );
    assert!(text.is_empty(), "no errors yet");
    let err = admin.simple_query("SELECT 1").await.unwrap_err();
    let db_err = err.as_db_error().unwrap();
    assert_eq!(db_err.code().code(), "42601");
    assert!(
        db_err.hint().unwrap().contains("SHOW DEPENDENTS"),
        "{db_err:?}"
    );
    let err = admin.query("SHOW DEPENDENTS", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42601");
    // The session survives its mistakes.
    assert_eq!(
        admin.query("SHOW CLIENTS", &[]).await.unwrap().len(),
        clients.len()
    );

    // After a RENAME done directly on Postgres, A's next query shows who broke.
    crate::support::scenario::rename_email_and_break(&direct, &a).await;
    let errors = admin
        .query("SHOW ERRORS SINCE '5 minutes'", &[])
        .await
        .unwrap();
    assert!(
        errors
            .iter()
            .any(|r| r.get::<_, String>("application_name") == "app_a"
                && r.get::<_, String>("sqlstate") == "42703"),
        "A's 42703 in SHOW ERRORS"
    );
    assert!(errors
        .iter()
        .all(|r| r.get::<_, String>("application_name") == "app_a"));

    // psql renders the typed columns (password from the environment user).
    let psql = cluster.tool("psql");
    let port = proxy.addr.port().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(psql)
            .args([
                "-X",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "ops",
                "ddlguard",
            ])
            .args([
                "-c",
                "SHOW DEPENDENTS users.email SINCE '1 hour'",
                "-c",
                "SHOW RULES",
            ])
            .env("PGPASSWORD", "ops-from-env")
            .env("PGSSLMODE", "disable")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("application_name") && stdout.contains("app_a"),
        "{stdout}"
    );
    assert!(stdout.contains("(2 rows)"), "{stdout}");
    assert!(
        stderr.contains("policy.mode = enforce"),
        "the notice: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_unknown_users_and_a_console_without_users_are_refused() {
    let cluster = Cluster::shared();
    let proxy = start(cluster).await;
    for (user, password) in [("admin", "wrong"), ("nobody", PASSWORD), ("ops", "wrong")] {
        let err = try_console(&proxy, user, password)
            .await
            .err()
            .unwrap_or_else(|| panic!("{user} must be refused"));
        assert_eq!(
            err.as_db_error().map(|e| e.code().code()),
            Some("28P01"),
            "{user}: {err}"
        );
        assert_eq!(
            err.as_db_error().unwrap().message(),
            format!("password authentication failed for user \"{user}\"")
        );
    }
    let ops = try_console(&proxy, "ops", "ops-from-env").await.unwrap();
    // The console is not relayed: the cluster has no database "ddlguard",
    // so a relayed session could neither log in nor answer SHOW CLIENTS,
    // and no backend ever serves that name.
    let has_db = cluster.psql_admin("SELECT count(*) FROM pg_database WHERE datname = 'ddlguard'");
    assert_eq!(has_db.trim(), "0");
    ops.simple_query("SHOW CLIENTS").await.unwrap();
    let upstream_dbs =
        cluster.psql_admin("SELECT count(*) FROM pg_stat_activity WHERE datname = 'ddlguard'");
    assert_eq!(upstream_dbs.trim(), "0");

    let bare = TestProxy::start(cluster).await;
    let err = try_console(&bare, "admin", PASSWORD).await.err().unwrap();
    let db_err = err.as_db_error().expect("an ErrorResponse");
    assert_eq!(db_err.code().code(), "28000");
    assert!(db_err.hint().unwrap().contains("[[admin.users]]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_from_the_console_reads_the_file_again() {
    let cluster = Cluster::shared();
    let proxy = start(cluster).await;
    let dir = std::env::temp_dir().join(format!(
        "ddlguard-test-{}-console-reload",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("proxy.toml");
    let admin = try_console(&proxy, "admin", PASSWORD).await.unwrap();

    // Started without a file: RELOAD says so.
    let err = admin.simple_query("RELOAD").await.unwrap_err();
    assert!(err
        .as_db_error()
        .unwrap()
        .message()
        .contains("not started from a configuration file"));

    let mut config = crate::support::proxy::test_config(cluster);
    config.usage.window.0 = std::time::Duration::from_secs(7200);
    config.admin.users = proxy.handle.config().admin.users;
    std::fs::write(&file, config.to_toml()).unwrap();
    proxy.handle.set_config_file(file.clone(), Box::new(|_| {}));
    admin.simple_query("RELOAD").await.unwrap();
    let window = rows(admin.simple_query("SHOW CONFIG").await.unwrap())
        .into_iter()
        .find(|r| r.get("key") == Some("usage.window"))
        .and_then(|r| r.get("value").map(str::to_string));
    assert_eq!(window.as_deref(), Some("2h"));

    // A broken file is refused and the settings stay.
    std::fs::write(&file, "[usage]\nwindow = \"soon\"\n").unwrap();
    let err = admin.simple_query("RELOAD").await.unwrap_err();
    let db_err = err.as_db_error().unwrap();
    assert_eq!(db_err.code().code(), "55000");
    assert!(
        db_err.message().contains("usage.window"),
        "{}",
        db_err.message()
    );
    assert_eq!(proxy.handle.config().usage.window.0.as_secs(), 7200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_is_served_over_http_and_metrics_count_traffic() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("console_http");
    connect(&cluster.direct_conn(&db))
        .await
        .batch_execute(
            "CREATE TABLE users (id int, email text); INSERT INTO users VALUES (1, 'x');",
        )
        .await
        .unwrap();
    let proxy = start(cluster).await;
    let client = connect(&format!("{} application_name=http_app", proxy.conn(&db))).await;
    client.query("SELECT email FROM users", &[]).await.unwrap();
    client
        .batch_execute("ALTER TABLE users ADD COLUMN note text")
        .await
        .unwrap();
    let _ = client
        .query("SELECT nope FROM users", &[])
        .await
        .unwrap_err();
    let http = proxy.http.unwrap();
    let fetch = |path: &str| {
        let url = format!("http://{http}{path}");
        move || -> String {
            ureq::get(&url)
                .call()
                .unwrap()
                .body_mut()
                .read_to_string()
                .unwrap()
        }
    };
    let json = |body: String| -> Vec<serde_json::Value> { serde_json::from_str(&body).unwrap() };

    let clients = json(
        tokio::task::spawn_blocking(fetch("/api/v1/clients"))
            .await
            .unwrap(),
    );
    assert!(clients
        .iter()
        .any(|c| c["application_name"] == "http_app" && c["sessions"] == 1));
    let tables = json(
        tokio::task::spawn_blocking(fetch("/api/v1/tables"))
            .await
            .unwrap(),
    );
    assert!(tables
        .iter()
        .any(|t| t["table"] == "users" && t["schema"] == "public"));
    let usage = json(
        tokio::task::spawn_blocking(fetch("/api/v1/usage?table=users&column=email"))
            .await
            .unwrap(),
    );
    assert!(usage.iter().all(|u| u["column"] == "email"));
    assert!(!usage.is_empty());
    let queries = json(
        tokio::task::spawn_blocking(fetch("/api/v1/queries?table=users"))
            .await
            .unwrap(),
    );
    assert!(queries
        .iter()
        .any(|q| q["p95_ms"].as_f64().is_some() && q["scope"] == "query"));
    let errors = json(
        tokio::task::spawn_blocking(fetch("/api/v1/errors?since=10m"))
            .await
            .unwrap(),
    );
    assert!(errors
        .iter()
        .any(|e| e["sqlstate"] == "42703" && e["application_name"] == "http_app"));
    let ddl = json(
        tokio::task::spawn_blocking(fetch("/api/v1/ddl"))
            .await
            .unwrap(),
    );
    assert_eq!(ddl[0]["command"], "alter table");
    assert_eq!(ddl[0]["target"], "users");
    let config = json(
        tokio::task::spawn_blocking(fetch("/api/v1/config"))
            .await
            .unwrap(),
    );
    assert!(config.iter().any(|c| c["key"] == "server.listen"));
    let rules = json(
        tokio::task::spawn_blocking(fetch("/api/v1/rules"))
            .await
            .unwrap(),
    );
    assert!(
        rules
            .iter()
            .any(|r| r["rule"] == "truncate-table" && r["action"] == "block"),
        "{rules:?}"
    );

    let metrics = tokio::task::spawn_blocking(fetch("/metrics"))
        .await
        .unwrap();
    for needle in [
        "ddlguard_sessions_active ",
        "ddlguard_queries_total{kind=\"read\"}",
        "ddlguard_query_errors_total{kind=\"read\"} 1",
        "ddlguard_query_duration_seconds_bucket{le=\"+Inf\",kind=\"read\"}",
        "ddlguard_received_bytes_total{from=\"client\"}",
        "ddlguard_analysis_cache_misses_total",
        "ddlguard_unparsed_statements_total",
        "ddlguard_store_flush_errors_total 0",
        "ddlguard_ddl_statements_total{command=\"alter table\",outcome=\"ok\"} 1",
        "# EOF",
    ] {
        assert!(
            metrics.contains(needle),
            "{needle} missing from:\n{metrics}"
        );
    }
    let bytes: u64 = metrics
        .lines()
        .find(|l| l.starts_with("ddlguard_received_bytes_total{from=\"server\"}"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(bytes > 0);
}

/// One page of an HTTP report: rows, `X-Next-Cursor` and `Link`, or the
/// refusal's status.
fn http_page(url: &str) -> Result<HttpPage, u16> {
    crate::support::http::get_page(url)
        .map(|p| (serde_json::from_str(&p.body).unwrap(), p.next, p.link))
}

/// Rows of a page, its `X-Next-Cursor` and its `Link` header.
type HttpPage = (Vec<serde_json::Value>, Option<String>, Option<String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_come_in_pages_with_a_cursor_and_filters_over_http_and_the_console() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("console_paging");
    connect(&cluster.direct_conn(&db))
        .await
        .batch_execute("CREATE TABLE users (id int, email text, name text)")
        .await
        .unwrap();
    let proxy = start(cluster).await;
    for app in ["app_a", "app_b", "app_c"] {
        let c = connect(&format!("{} application_name={app}", proxy.conn(&db))).await;
        c.simple_query("SELECT email FROM users").await.unwrap();
        c.simple_query("SELECT id, name FROM users").await.unwrap();
    }
    let http = proxy.http.unwrap();
    let api = format!("http://{http}/api/v1");
    let (pages, everything, filtered, deps, refusals) = {
        let api = api.clone();
        tokio::task::spawn_blocking(move || {
            let mut pages = Vec::new();
            let mut url = format!("{api}/usage?limit=2");
            loop {
                let (rows, next, link) = http_page(&url).unwrap();
                let more = next.clone();
                pages.push((rows, next, link));
                match more {
                    Some(c) => url = format!("{api}/usage?limit=2&after={c}"),
                    None => break,
                }
            }
            let everything = http_page(&format!("{api}/usage")).unwrap();
            let filtered = http_page(&format!("{api}/usage?client=app_b&table=users")).unwrap();
            let deps = http_page(&format!(
                "{api}/dependents?table=users&column=email&limit=1"
            ))
            .unwrap();
            let refusals = [
                format!("{api}/usage?limit=0"),
                format!("{api}/usage?limit=10001"),
                format!("{api}/tables?after=garbage"),
            ]
            .map(|u| http_page(&u).err());
            (pages, everything, filtered, deps, refusals)
        })
        .await
        .unwrap()
    };
    // 3 clients x (users + email; users + id + name) = 15 rows: 7 pages
    // of 2, then 1.
    let (all, next, _) = everything;
    assert_eq!((all.len(), next), (15, None));
    assert_eq!(
        pages.iter().map(|p| p.0.len()).collect::<Vec<_>>(),
        [2, 2, 2, 2, 2, 2, 2, 1]
    );
    let paged: Vec<serde_json::Value> = pages.iter().flat_map(|p| p.0.clone()).collect();
    assert_eq!(paged, all, "the pages are the whole report, once, in order");
    let link = pages[0].2.as_deref().expect("a Link to the next page");
    assert!(
        link.starts_with("</api/v1/usage?limit=2&after=") && link.ends_with(">; rel=\"next\""),
        "{link}"
    );
    assert!(pages[7].1.is_none() && pages[7].2.is_none());
    assert_eq!(filtered.0.len(), 5);
    assert!(filtered.0.iter().all(|r| r["application_name"] == "app_b"));
    // The dependents contract stays a JSON array, paged the same way.
    assert_eq!(deps.0.len(), 1);
    assert!(deps.1.is_some(), "3 dependents, 1 per page");
    assert_eq!(refusals, [Some(400), Some(400), Some(400)]);

    // The console pages with LIMIT and AFTER, with the same cursors.
    let console = try_console(&proxy, "admin", PASSWORD).await.unwrap();
    let first = rows(console.simple_query("SHOW USAGE LIMIT 2").await.unwrap());
    assert_eq!(first.len(), 2);
    let cursor = pages[0].1.clone().unwrap();
    let second = rows(
        console
            .simple_query(&format!("SHOW USAGE AFTER '{cursor}' LIMIT 2"))
            .await
            .unwrap(),
    );
    let key = |app: Option<&str>, column: Option<&str>, fp: Option<&str>| {
        (
            app.map(str::to_string),
            column.map(str::to_string),
            fp.map(str::to_string),
        )
    };
    assert_eq!(
        second
            .iter()
            .map(|r| key(
                r.get("application_name"),
                r.get("column"),
                r.get("fingerprint")
            ))
            .collect::<Vec<_>>(),
        pages[1]
            .0
            .iter()
            .map(|r| key(
                r["application_name"].as_str(),
                r["column"].as_str(),
                r["fingerprint"].as_str()
            ))
            .collect::<Vec<_>>()
    );
    let err = console
        .simple_query("SHOW USAGE LIMIT 0")
        .await
        .expect_err("LIMIT 0 is refused");
    assert_eq!(err.code().map(|c| c.code()), Some("42601"));
}

//! Prepared statements survive ADD COLUMN (issue 20): a named statement
//! prepared before the schema change keeps its old result shape through
//! ddlguard, where Postgres alone refuses it with `0A000 cached plan must
//! not change result type`; what cannot be proven equivalent passes the
//! error through unchanged.

use crate::support::raw::{message, query, sync, RawClient};
use crate::support::{connect, Cluster, TestProxy};
use ddlguard::wire::messages::error_fields;
use std::process::{Command, Stdio};
use tokio_postgres::Client;

const CACHED_PLAN: &str = "cached plan must not change result type";

/// Recovered and passed-through counts, from `/metrics`.
fn recoveries(proxy: &TestProxy) -> (u64, u64) {
    let metrics = ddlguard::admin::metrics::render(&proxy.handle).unwrap();
    let count = |outcome: &str| {
        let line = format!("ddlguard_prepared_recoveries_total{{outcome=\"{outcome}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{line} in {metrics}"))
    };
    (count("recovered"), count("passed_through"))
}

/// `SHOW CLIENTS` old_shapes of application `app` (`None`: no row).
fn old_shapes(proxy: &TestProxy, app: &str) -> Option<i64> {
    use ddlguard::admin::report::{self, Cell, Page};
    let r = report::clients(&proxy.handle, &Page::default());
    let col = |name: &str| r.columns.iter().position(|(n, _)| *n == name).unwrap();
    let (app_col, old_col) = (col("application_name"), col("old_shapes"));
    r.rows
        .iter()
        .find(|row| matches!(&row[app_col], Cell::Text(a) if a == app))
        .map(|row| match row[old_col] {
            Cell::Int(n) => n,
            ref other => panic!("old_shapes {other:?}"),
        })
}

/// A database with `t (id, v)` and `u (id, name)`; returns it and a direct client.
async fn shapes_db(name: &str) -> (&'static Cluster, String, Client) {
    crate::support::items::db_with(
        name,
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 100) i;
         CREATE TABLE u (id int PRIMARY KEY, name text);
         INSERT INTO u SELECT i, 'name ' || i FROM generate_series(1, 100) i;",
    )
    .await
}

/// Each row as text, with the column names of the statement.
async fn run(
    c: &Client,
    s: &tokio_postgres::Statement,
    id: i32,
) -> Result<(Vec<String>, Vec<Vec<Option<String>>>), tokio_postgres::Error> {
    let names = s.columns().iter().map(|c| c.name().to_string()).collect();
    let rows = c.query(s, &[&id]).await?;
    let values = rows
        .iter()
        .map(|r| {
            (0..r.len())
                .map(|i| match r.columns()[i].type_() {
                    &tokio_postgres::types::Type::INT4 => {
                        r.get::<_, Option<i32>>(i).map(|v| v.to_string())
                    }
                    _ => r.get::<_, Option<String>>(i),
                })
                .collect()
        })
        .collect();
    Ok((names, values))
}

const STATEMENTS: [&str; 3] = [
    "SELECT * FROM t WHERE id = $1",
    "SELECT t.*, u.name FROM t JOIN u ON u.id = t.id WHERE t.id = $1",
    "SELECT id, v FROM t WHERE id = $1",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_prepared_before_add_column_keep_their_shape() {
    let (cluster, db, direct) = shapes_db("prepared_tokio").await;
    let proxy = TestProxy::start(cluster).await;
    let proxied = connect(&format!("{} application_name=old_code", proxy.conn(&db))).await;
    // The same client straight to Postgres shows what the proxy prevents.
    let plain = connect(&cluster.direct_conn(&db)).await;
    let mut before = Vec::new();
    let mut statements = Vec::new();
    let mut plain_statements = Vec::new();
    for sql in STATEMENTS {
        let s = proxied.prepare(sql).await.unwrap();
        before.push(run(&proxied, &s, 7).await.unwrap());
        statements.push(s);
        plain_statements.push(plain.prepare(sql).await.unwrap());
    }
    assert_eq!(before[0].0, ["id", "v"]);
    assert_eq!(before[1].0, ["id", "v", "name"]);

    direct
        .batch_execute("ALTER TABLE t ADD COLUMN c int; UPDATE t SET c = id")
        .await
        .unwrap();

    let err = run(&plain, &plain_statements[0], 7).await.unwrap_err();
    let message = err.as_db_error().map(|e| e.message().to_string());
    assert_eq!(message.as_deref(), Some(CACHED_PLAN), "direct: {err:?}");
    for round in 0..2 {
        for (i, s) in statements.iter().enumerate() {
            let after = run(&proxied, s, 7)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", STATEMENTS[i]));
            assert_eq!(after, before[i], "{} (round {round})", STATEMENTS[i]);
        }
    }
    // Two star statements were re-prepared, once each; the explicit list
    // never failed.
    assert_eq!(recoveries(&proxy), (2, 0));
    assert_eq!(old_shapes(&proxy, "old_code"), Some(2));
    // New statements see the new column.
    let fresh = proxied.prepare(STATEMENTS[0]).await.unwrap();
    assert_eq!(run(&proxied, &fresh, 7).await.unwrap().0, ["id", "v", "c"]);
    // Closing a statement on an old shape ends its count.
    drop(statements);
    proxied.execute("SELECT 1", &[]).await.unwrap();
    assert_eq!(old_shapes(&proxy, "old_code"), Some(0));
}

/// A raw extended-protocol client: Parse with a parameter type, Describe,
/// then Bind/Describe/Execute/Sync as libpq sends them.
struct Raw {
    c: RawClient,
}

impl Raw {
    async fn exchange(&mut self, bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        self.c.send(bytes).await;
        let mut out = Vec::new();
        loop {
            let (tag, body) = self.c.read_message().await.expect("reply");
            out.push((tag, body));
            if tag == b'Z' {
                return out;
            }
        }
    }

    async fn prepare(&mut self, name: &str, sql: &str) -> Vec<(u8, Vec<u8>)> {
        let name = format!("{name}\0");
        let sql = format!("{sql}\0");
        let mut out = message(
            b'P',
            &[
                name.as_bytes(),
                sql.as_bytes(),
                &1u16.to_be_bytes(),
                &23u32.to_be_bytes(),
            ],
        );
        out.extend(message(b'D', &[b"S", name.as_bytes()]));
        out.extend(sync());
        self.exchange(&out).await
    }

    async fn execute(&mut self, name: &str, id: &str) -> Vec<(u8, Vec<u8>)> {
        let name = format!("{name}\0");
        let zero = 0u16.to_be_bytes();
        let one = 1u16.to_be_bytes();
        let len = (id.len() as u32).to_be_bytes();
        let mut out = message(
            b'B',
            &[
                b"\0",
                name.as_bytes(),
                &zero,
                &one,
                &len,
                id.as_bytes(),
                &zero,
            ],
        );
        out.extend(message(b'D', &[b"P\0"]));
        out.extend(message(b'E', &[b"\0", &0u32.to_be_bytes()]));
        out.extend(sync());
        self.exchange(&out).await
    }

    async fn simple(&mut self, sql: &str) -> Vec<(u8, Vec<u8>)> {
        self.exchange(&query(sql)).await
    }
}

fn tags(replies: &[(u8, Vec<u8>)]) -> String {
    replies.iter().map(|(t, _)| *t as char).collect()
}

fn error(replies: &[(u8, Vec<u8>)]) -> Option<(String, String)> {
    replies.iter().find(|(t, _)| *t == b'E').map(|(_, b)| {
        let f = error_fields(b);
        (f.code, f.message)
    })
}

/// A proxy and a raw client that prepared `SELECT * FROM t` as `star`
/// and ran it once; then `ddl` ran straight on Postgres.
async fn star_then(db_name: &str, ddl: &str) -> (TestProxy, Raw) {
    let (cluster, db, direct) = shapes_db(db_name).await;
    let proxy = TestProxy::start(cluster).await;
    let mut raw = Raw {
        c: RawClient::login_db(proxy.addr.port(), &db).await,
    };
    raw.prepare("star", STATEMENTS[0]).await;
    assert_eq!(tags(&raw.execute("star", "5").await), "2TDCZ");
    direct.batch_execute(ddl).await.unwrap();
    (proxy, raw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_client_gets_the_replies_it_had_before() {
    let (cluster, db, direct) = shapes_db("prepared_raw").await;
    let proxy = TestProxy::start(cluster).await;
    let mut raw = Raw {
        c: RawClient::login_db(proxy.addr.port(), &db).await,
    };
    let mut joined = Raw {
        c: RawClient::login_db(proxy.addr.port(), &db).await,
    };
    assert_eq!(tags(&raw.prepare("star", STATEMENTS[0]).await), "1tTZ");
    assert_eq!(tags(&joined.prepare("join", STATEMENTS[1]).await), "1tTZ");
    let before = raw.execute("star", "5").await;
    let joined_before = joined.execute("join", "5").await;
    assert_eq!(tags(&before), "2TDCZ");
    direct
        .batch_execute("ALTER TABLE t ADD COLUMN c int")
        .await
        .unwrap();
    // Byte for byte what the client got before: BindComplete,
    // RowDescription, the row, CommandComplete, ReadyForQuery.
    assert_eq!(raw.execute("star", "5").await, before);
    assert_eq!(joined.execute("join", "5").await, joined_before);
    assert_eq!(raw.execute("star", "5").await, before);
    assert_eq!(recoveries(&proxy), (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_a_transaction_block_the_error_passes_through() {
    let (proxy, mut raw) = star_then("prepared_in_tx", "ALTER TABLE t ADD COLUMN c int").await;
    assert_eq!(tags(&raw.simple("BEGIN").await), "CZ");
    let failed = raw.execute("star", "5").await;
    assert_eq!(
        error(&failed),
        Some(("0A000".to_string(), CACHED_PLAN.to_string()))
    );
    assert_eq!(failed.last().map(|(_, b)| b.as_slice()), Some(&b"E"[..]));
    raw.simple("ROLLBACK").await;
    // Nothing was attempted: the error was not the batch's to recover.
    assert_eq!(recoveries(&proxy), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_column_of_the_old_shape_passes_the_error_through() {
    let (proxy, mut raw) = star_then(
        "prepared_dropped",
        "ALTER TABLE t DROP COLUMN v, ADD COLUMN c int",
    )
    .await;
    let failed = raw.execute("star", "5").await;
    assert_eq!(tags(&failed), "EZ");
    assert_eq!(
        error(&failed),
        Some(("0A000".to_string(), CACHED_PLAN.to_string()))
    );
    assert_eq!(recoveries(&proxy), (0, 1));
    // The client's statement is untouched: it fails the same way again.
    assert_eq!(tags(&raw.execute("star", "5").await), "EZ");
    // And the session goes on.
    assert_eq!(tags(&raw.simple("SELECT 1").await), "TDCZ");
}

/// Runs pgbench `-M prepared` on `port` with an `ADD COLUMN` made straight
/// to Postgres (`direct`) while it runs; returns the number of clients it
/// aborted, of transactions it processed, and its output.
async fn pgbench_with_add_column(
    cluster: &Cluster,
    port: u16,
    db: &str,
    direct: &Client,
    column: &str,
) -> (usize, u64, String) {
    let script = cluster.dir.join(format!("prepared_{column}.sql"));
    std::fs::write(
        &script,
        "\\set id random(1, 100)\nselect * from t where id = :id;\n",
    )
    .unwrap();
    let child = Command::new(cluster.tool("pgbench"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .args([
            "-n", "-M", "prepared", "-c", "8", "-j", "2", "-T", "4", "-f",
        ])
        .arg(&script)
        .arg(db)
        .env("PGSSLMODE", "disable")
        .env("PGAPPNAME", "pgbench")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pgbench");
    // Once every client has prepared its statement, change the table.
    let count = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND application_name = 'pgbench' AND query LIKE 'select * from t%'"
    );
    let mut ready = false;
    for _ in 0..800 {
        let n: i64 = direct.query_one(&count, &[]).await.unwrap().get(0);
        if n == 8 {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(ready, "pgbench clients never all prepared their statement");
    direct
        .batch_execute(&format!("ALTER TABLE t ADD COLUMN {column} int"))
        .await
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let aborted = text
        .lines()
        .filter(|l| l.contains("aborted in command"))
        .count();
    let processed = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("number of transactions actually processed:")
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("pgbench output:\n{text}"));
    (aborted, processed, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_prepared_survives_add_column_through_the_proxy_only() {
    let (cluster, db, direct) = shapes_db("prepared_pgbench").await;
    let proxy = TestProxy::start(cluster).await;
    let straight = pgbench_with_add_column(cluster, cluster.port, &db, &direct, "c1").await;
    let proxied = pgbench_with_add_column(cluster, proxy.addr.port(), &db, &direct, "c2").await;
    // Both counts prove the change landed mid-run: clients aborted direct,
    // and every proxied session re-prepared.
    assert!(
        straight.0 > 0,
        "straight to Postgres, ADD COLUMN aborts clients:\n{}",
        straight.2
    );
    assert_eq!(
        proxied.0, 0,
        "through ddlguard no client aborts:\n{}",
        proxied.2
    );
    assert!(proxied.1 > 0);
    // Each of the 8 sessions re-prepared its statement once.
    assert_eq!(recoveries(&proxy), (8, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_star_statement_parsed_in_the_batch_of_a_guarded_ddl_adds_no_replies() {
    let (cluster, db, _direct) = shapes_db("prepared_with_ddl").await;
    let proxy = TestProxy::start(cluster).await;
    let mut raw = Raw {
        c: RawClient::login_db(proxy.addr.port(), &db).await,
    };
    // One batch: a named SELECT * (the proxy describes it behind its
    // Parse), then an ADD COLUMN the gate holds and runs guarded.
    let none = 0u16.to_be_bytes();
    let mut batch = message(b'P', &[b"s\0", b"SELECT * FROM t WHERE id = $1\0", &none]);
    batch.extend(message(
        b'P',
        &[b"\0", b"ALTER TABLE t ADD COLUMN z int\0", &none],
    ));
    batch.extend(message(b'B', &[b"\0", b"\0", &none, &none, &none]));
    batch.extend(message(b'E', &[b"\0", &0u32.to_be_bytes()]));
    batch.extend(sync());
    let replies = raw.exchange(&batch).await;
    let seen: String = tags(&replies).chars().filter(|t| *t != 'N').collect();
    assert_eq!(seen, "112CZ", "only the client's own replies");
    let metrics = ddlguard::admin::metrics::render(&proxy.handle).unwrap();
    assert!(
        metrics.contains("ddlguard_gate_statements_total{outcome=\"guarded\"} 1"),
        "the ALTER ran held and guarded:\n{metrics}"
    );
    // The statement was described before the column came: it keeps (id, v).
    let after = raw.execute("s", "5").await;
    assert_eq!(tags(&after), "2TDCZ");
    let (_, shape) = &after[1];
    assert_eq!(&shape[..2], &2u16.to_be_bytes());
    assert_eq!(recoveries(&proxy), (1, 0));
}

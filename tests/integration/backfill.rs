//! Throttled backfills (issue 19) against a real Postgres: a 200,000-row
//! table backfilled through the proxy while other clients use it, the job
//! slowing down when their latency rises, pause/resume/cancel from the
//! console, a crash of the proxy in the middle of a job, and refusals.

use crate::support::proxy::BinProxy;
use crate::support::spawn::free_port;
use crate::support::{connect, Cluster, TestProxy};
use ddlguard::config::AdminUser;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, SimpleQueryMessage};

const CONSOLE_PASSWORD_ENV: &str = "DDLGUARD_TEST_BACKFILL_PASSWORD";

/// A database with `items(id, email, email_lower, hits, backfilled)`:
/// `backfilled` counts the updates that changed `email_lower`, by trigger.
async fn items_db(cluster: &Cluster, name: &str, rows: i64) -> (String, Client) {
    let db = cluster.create_db(name);
    let direct = connect(&cluster.direct_conn(&db)).await;
    direct
        .batch_execute(&format!(
            "CREATE TABLE items (id bigint PRIMARY KEY, email text NOT NULL, email_lower text,
                 hits int NOT NULL DEFAULT 0, n int NOT NULL DEFAULT 0, backfilled int NOT NULL DEFAULT 0);
             CREATE FUNCTION count_backfill() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.email_lower IS DISTINCT FROM OLD.email_lower THEN
                     NEW.backfilled := OLD.backfilled + 1;
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER count_backfill BEFORE UPDATE ON items
                 FOR EACH ROW EXECUTE FUNCTION count_backfill();
             INSERT INTO items (id, email)
                 SELECT g, 'User' || g || '@Example.COM' FROM generate_series(1, {rows}) g;
             ANALYZE items;"
        ))
        .await
        .unwrap();
    (db, direct)
}

async fn start_proxy(cluster: &Cluster) -> TestProxy {
    std::env::set_var(CONSOLE_PASSWORD_ENV, "backfill-s3cret");
    TestProxy::start_with(cluster, |c| {
        // The tests' slow traffic sleeps 20 ms per read (40x a point read's
        // p95); a busy test machine alone moves the p95 2-5x, which the
        // default 20% (+0.5 ms) allowance would take for the job's doing.
        c.backfill.max_latency_increase = ddlguard::backfill::Percent(1000.0);
        c.upstream.user = Some("postgres".into());
        c.upstream.tls = ddlguard::config::UpstreamTls::Disable;
        c.admin.http_listen = Some("127.0.0.1:0".parse().unwrap());
        c.admin.users = vec![AdminUser {
            name: "admin".into(),
            password: None,
            password_env: Some(CONSOLE_PASSWORD_ENV.into()),
        }];
    })
    .await
}

fn api(proxy: &TestProxy) -> String {
    format!("http://{}/api/v1/backfills", proxy.http.unwrap())
}

/// An HTTP request (blocking client on a blocking thread): status and JSON.
async fn http(method: &'static str, url: String, body: Option<Value>) -> (u16, Value) {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = match (method, body) {
            ("POST", Some(b)) => agent
                .post(&url)
                .header("content-type", "application/json")
                .send(b.to_string()),
            ("POST", None) => agent
                .post(&url)
                .header("content-type", "application/json")
                .send_empty(),
            _ => agent.get(&url).call(),
        }
        .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    })
    .await
    .unwrap()
}

async fn create(proxy: &TestProxy, body: Value) -> Value {
    let (status, job) = http("POST", api(proxy), Some(body)).await;
    assert_eq!(status, 201, "{job}");
    job
}

async fn job(proxy: &TestProxy, id: u64) -> Value {
    let (status, job) = http("GET", format!("{}/{id}", api(proxy)), None).await;
    assert_eq!(status, 200, "{job}");
    job
}

/// Polls the job until `until` holds (panics with the job after `limit`).
async fn wait_for(
    proxy: &TestProxy,
    id: u64,
    limit: Duration,
    until: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let j = job(proxy, id).await;
        if until(&j) {
            return j;
        }
        assert!(Instant::now() < deadline, "job never got there: {j:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn state(j: &Value) -> &str {
    j["state"].as_str().unwrap_or("")
}

fn reason(j: &Value) -> &str {
    j["throttle_reason"].as_str().unwrap_or("")
}

/// Waits until the running job says `word` slowed it, and checks that its
/// batch shrank below `max_batch`.
async fn slowed_by(proxy: &TestProxy, id: u64, word: &str, max_batch: u64) -> Value {
    let j = wait_for(proxy, id, Duration::from_secs(60), |j| {
        reason(j).starts_with(word) || state(j) != "running"
    })
    .await;
    assert_eq!(state(&j), "running", "{j:#}");
    assert!(num(&j, "batch_size") < max_batch, "{j:#}");
    j
}

fn num(j: &Value, k: &str) -> u64 {
    j[k].as_u64().unwrap_or(0)
}

async fn scalar(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Clients running point reads and writes of `hits` on `items` through the
/// proxy until `stop`; `slow` makes every read sleep 20 ms.
struct Traffic {
    stop: Arc<AtomicBool>,
    slow: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Traffic {
    async fn start(proxy: &TestProxy, db: &str, clients: usize, rows: i64) -> Traffic {
        let t = Traffic {
            stop: Arc::default(),
            slow: Arc::default(),
            done: Arc::default(),
            errors: Arc::default(),
            tasks: Vec::new(),
        };
        let mut tasks = Vec::new();
        for i in 0..clients {
            let client = proxy.connect(db).await;
            let (stop, slow, done, errors) = (
                t.stop.clone(),
                t.slow.clone(),
                t.done.clone(),
                t.errors.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut id = 1 + i as i64 * 7919;
                while !stop.load(Ordering::Relaxed) {
                    id = id * 48271 % rows + 1;
                    let r = if slow.load(Ordering::Relaxed) {
                        client
                            .query(
                                "SELECT pg_sleep(0.02), email FROM items WHERE id = $1",
                                &[&id],
                            )
                            .await
                            .map(|_| ())
                    } else if id % 4 == 0 {
                        client
                            .execute("UPDATE items SET hits = hits + 1 WHERE id = $1", &[&id])
                            .await
                            .map(|_| ())
                    } else {
                        client
                            .query("SELECT email FROM items WHERE id = $1", &[&id])
                            .await
                            .map(|_| ())
                    };
                    match r {
                        Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
        Traffic { tasks, ..t }
    }

    async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        (
            self.done.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_is_backfilled_once_while_traffic_flows() {
    let cluster = Cluster::shared();
    let rows = std::env::var("BACKFILL_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(200_000);
    let (db, direct) = items_db(cluster, "backfill_once", rows).await;
    let proxy = start_proxy(cluster).await;
    let traffic = Traffic::start(&proxy, &db, 4, rows).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let created = create(
        &proxy,
        json!({"table": "items", "set": "email_lower = lower(email)", "batch": 5000}),
    )
    .await;
    // The database came from the usage the proxy saw.
    assert_eq!(created["database"], db.as_str(), "{created}");
    assert_eq!(created["key"], "id");
    let id = num(&created, "id");
    let before = traffic.done.load(Ordering::Relaxed);
    let done = wait_for(&proxy, id, Duration::from_secs(300), |j| {
        state(j) != "running"
    })
    .await;
    let during = traffic.done.load(Ordering::Relaxed) - before;
    let (_, errors) = traffic.stop().await;
    assert_eq!(state(&done), "done", "{done:#}");
    assert_eq!(num(&done, "rows_done"), rows as u64, "{done:#}");
    assert_eq!(num(&done, "rows_scanned"), rows as u64, "{done:#}");
    assert_eq!(errors, 0, "the other clients' statements failed");
    assert!(
        during > 100,
        "traffic stalled while the job ran: {during} statements"
    );
    assert_eq!(
        scalar(
            &direct,
            "SELECT count(*) FROM items WHERE backfilled = 1 AND email_lower = lower(email)"
        )
        .await,
        rows
    );
    assert_eq!(
        scalar(&direct, "SELECT count(*) FROM items WHERE backfilled <> 1").await,
        0
    );

    // A second run finds nothing to do: the default filter skips right rows.
    let again = create(
        &proxy,
        json!({"table": "items", "set": "email_lower = lower(email)", "batch": 20000, "database": db}),
    )
    .await;
    let again = wait_for(&proxy, num(&again, "id"), Duration::from_secs(120), |j| {
        state(j) == "done"
    })
    .await;
    assert_eq!(num(&again, "rows_done"), 0, "{again:#}");
    assert_eq!(num(&again, "rows_scanned"), rows as u64);
    assert_eq!(
        scalar(&direct, "SELECT count(*) FROM items WHERE backfilled <> 1").await,
        0
    );

    // Progress is in /metrics.
    let metrics =
        crate::support::http::get_page(&format!("http://{}/metrics", proxy.http.unwrap()))
            .unwrap()
            .body;
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("ddlguard_backfill_rows_done{") && l.contains(&format!("job=\"{id}\""))
        })
        .unwrap_or_else(|| panic!("no rows_done gauge for job {id}:\n{metrics}"));
    assert!(
        line.ends_with(&format!(" {rows}")) || line.ends_with(&format!(" {rows}.0")),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_slows_down_when_the_tables_latency_rises() {
    let cluster = Cluster::shared();
    let rows = 50_000;
    let (db, _direct) = items_db(cluster, "backfill_throttle", rows).await;
    let proxy = start_proxy(cluster).await;
    let traffic = Traffic::start(&proxy, &db, 4, rows).await;
    // The level before the job: fast point reads and writes.
    while traffic.done.load(Ordering::Relaxed) < 400 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let created = create(
        &proxy,
        json!({"table": "items", "set": "email_lower = lower(email)", "batch": 400,
               "max_rate": 2000, "database": db}),
    )
    .await;
    assert!(
        created["baseline_p95_ms"].as_f64().is_some(),
        "no baseline: {created:#}"
    );
    let id = num(&created, "id");
    // Calm first: the job makes progress without a latency complaint.
    wait_for(&proxy, id, Duration::from_secs(60), |j| {
        num(j, "rows_scanned") >= 2000 && !reason(j).starts_with("latency")
    })
    .await;
    // Now the other clients' statements on the table get slow.
    traffic.slow.store(true, Ordering::Relaxed);
    let slowed = slowed_by(&proxy, id, "latency", 400).await;
    assert!(num(&slowed, "pause_ms") > 0, "{slowed:#}");
    let (status, cancelled) = http("POST", format!("{}/{id}/cancel", api(&proxy)), None).await;
    assert_eq!(
        (status, state(&cancelled)),
        (200, "cancelled"),
        "{cancelled}"
    );
    let (_, errors) = traffic.stop().await;
    assert_eq!(errors, 0);
}

async fn console(proxy: &TestProxy) -> Client {
    connect(&format!(
        "host=127.0.0.1 port={} user=admin password=backfill-s3cret dbname=ddlguard sslmode=disable",
        proxy.addr.port()
    ))
    .await
}

/// The rows of a console command, as name -> text maps.
async fn rows(
    console: &Client,
    sql: &str,
) -> Result<Vec<std::collections::HashMap<String, String>>, tokio_postgres::Error> {
    let messages = console.simple_query(sql).await?;
    Ok(messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                r.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name().to_string(), r.get(i).unwrap_or("").to_string()))
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_pauses_resumes_and_cancels_a_job() {
    let cluster = Cluster::shared();
    let (db, direct) = items_db(cluster, "backfill_console", 100_000).await;
    let proxy = start_proxy(cluster).await;
    let admin = console(&proxy).await;
    let created = rows(
        &admin,
        &format!("BACKFILL (BATCH 200, MAX_RATE 4000, DATABASE {db}) items SET email_lower = lower(email)"),
    )
    .await
    .unwrap();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["state"], "running");
    assert_eq!(created[0]["table"], "public.items");
    let id: u64 = created[0]["id"].parse().unwrap();
    wait_for(&proxy, id, Duration::from_secs(60), |j| {
        num(j, "rows_done") > 0
    })
    .await;

    let paused = rows(&admin, &format!("PAUSE BACKFILL {id}")).await.unwrap();
    assert_eq!(paused[0]["state"], "paused");
    // Once the batch in flight is in, nothing moves.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a = scalar(&direct, "SELECT count(*) FROM items WHERE backfilled = 1").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let b = scalar(&direct, "SELECT count(*) FROM items WHERE backfilled = 1").await;
    assert_eq!(a, b, "rows changed while the job was paused");
    let shown = rows(&admin, "SHOW BACKFILLS").await.unwrap();
    let row = shown.iter().find(|r| r["id"] == id.to_string()).unwrap();
    assert_eq!(row["state"], "paused");
    assert_eq!(row["rows_done"], a.to_string());
    assert!(!row["current_key"].is_empty(), "{row:?}");

    let resumed = rows(&admin, &format!("RESUME BACKFILL {id}"))
        .await
        .unwrap();
    assert_eq!(resumed[0]["state"], "running");
    wait_for(&proxy, id, Duration::from_secs(60), |j| {
        num(j, "rows_done") > a as u64
    })
    .await;

    let cancelled = rows(&admin, &format!("CANCEL BACKFILL {id}"))
        .await
        .unwrap();
    assert_eq!(cancelled[0]["state"], "cancelled");
    let err = rows(&admin, &format!("RESUME BACKFILL {id}"))
        .await
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("55000"), "{err}");
    let err = rows(&admin, "PAUSE BACKFILL 999999").await.unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42704"), "{err}");
    // Cancelled for good: the rows done stay done, the rest stay as they were.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c = scalar(&direct, "SELECT count(*) FROM items WHERE backfilled = 1").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        c,
        scalar(&direct, "SELECT count(*) FROM items WHERE backfilled = 1").await
    );
    assert!(c < 100_000, "{c}");
    assert_eq!(
        scalar(&direct, "SELECT count(*) FROM items WHERE backfilled > 1").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_backfills_are_refused_and_say_what_to_do() {
    let cluster = Cluster::shared();
    let (db, direct) = items_db(cluster, "backfill_refusals", 1000).await;
    direct
        .batch_execute(
            "CREATE TABLE logs (msg text, code text UNIQUE);
             INSERT INTO logs SELECT 'm' || g, 'c' || g FROM generate_series(1, 10) g;
             CREATE TABLE other (id int PRIMARY KEY, v text)",
        )
        .await
        .unwrap();
    let proxy = start_proxy(cluster).await;
    let req = |table: &str, set: &str| json!({"table": table, "set": set, "database": db});
    // A POST a web page could send (no JSON content type) starts nothing.
    let url = api(&proxy);
    let body = req("items", "v = upper(v)").to_string();
    let plain = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let response = agent
            .post(&url)
            .header("content-type", "text/plain")
            .send(body)
            .unwrap();
        response.status().as_u16()
    })
    .await
    .unwrap();
    assert_eq!(plain, 400, "refused without Content-Type: application/json");
    let (_, jobs) = http("GET", api(&proxy), None).await;
    assert_eq!(jobs, json!([]), "no job was started");
    let mut with_key = req("logs", "msg = upper(msg)");
    with_key["key"] = json!("code");
    let subquery = "email_lower = (SELECT v FROM other WHERE other.id = items.id)";
    let cases = [
        (
            req("logs", "msg = upper(msg)"),
            409,
            "55000",
            "CREATE UNIQUE INDEX",
        ),
        (with_key, 409, "55000", "SET NOT NULL"),
        (req("items", subquery), 409, "55000", "--allow-subquery"),
        (req("items", "id = id + 1"), 409, "55000", "--key"),
        (
            req("items", "email_lower = 1; DROP TABLE items"),
            400,
            "42601",
            "--set",
        ),
        (req("nope", "x = 1"), 404, "42P01", "names"),
        (req("items", "nope = 1"), 404, "42703", "names"),
        (
            req("items", "email_lower = no_such_function(email)"),
            502,
            "42883",
            "",
        ),
    ];
    for (body, status, code, hint) in cases {
        let (got, answer) = http("POST", api(&proxy), Some(body.clone())).await;
        assert_eq!(
            (got, answer["sqlstate"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
        assert!(
            answer["hint"].as_str().unwrap_or("").contains(hint),
            "{body}: {answer}"
        );
    }
    let (_, list) = http("GET", api(&proxy), None).await;
    assert_eq!(list, json!([]), "a refused request left a job");
    // With permission the subquery runs.
    let job = create(
        &proxy,
        json!({"table": "items", "set": "email_lower = (SELECT v FROM other WHERE other.id = items.id)",
               "where": "email_lower IS NULL AND id <= 10", "database": db, "allow_subquery": true}),
    )
    .await;
    wait_for(&proxy, num(&job, "id"), Duration::from_secs(60), |j| {
        state(j) == "done"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_pauses_the_job_with_the_error_and_no_retry() {
    let cluster = Cluster::shared();
    let (db, direct) = items_db(cluster, "backfill_error", 5000).await;
    let proxy = start_proxy(cluster).await;
    let created = create(
        &proxy,
        json!({"table": "items", "set": "n = 1 + 0 / (id - 3000)", "where": "n = 0", "batch": 100, "database": db}),
    )
    .await;
    let id = num(&created, "id");
    let paused = wait_for(&proxy, id, Duration::from_secs(60), |j| {
        state(j) != "running"
    })
    .await;
    assert_eq!(state(&paused), "paused", "{paused:#}");
    assert_eq!(paused["error"], "22012: division by zero", "{paused:#}");
    let key: i64 = paused["current_key"].as_str().unwrap().parse().unwrap();
    assert!(
        (2900..3000).contains(&key),
        "stopped before the failing batch: {key}"
    );
    // It stays paused: nothing is retried behind the operator's back.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = job(&proxy, id).await;
    assert_eq!(later["updated_ms"], paused["updated_ms"], "{later:#}");
    assert_eq!(
        scalar(&direct, "SELECT count(*) FROM items WHERE n <> 0").await,
        key
    );
}

fn workdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ddlguard-test-{}-backfill-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn bin_job(http: &str, id: u64) -> Option<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let mut r = agent
        .get(&format!("http://{http}/api/v1/backfills/{id}"))
        .call()
        .ok()?;
    serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()
}

#[test]
fn after_a_crash_the_job_resumes_from_its_last_key() {
    let cluster = Cluster::shared();
    let rows = 200_000i64;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (db, direct) = rt.block_on(items_db(cluster, "backfill_crash", rows));
    let dir = workdir("crash");
    let (port, http_port) = (free_port(), free_port());
    let http = format!("127.0.0.1:{http_port}");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[upstream]\nport = {}\ntls = \"disable\"\nuser = \"postgres\"\n\n[usage]\nstore = \"sqlite:{}\"\n\n[admin]\nhttp_listen = \"{http}\"\n",
        cluster.port,
        dir.join("usage.db").display()
    );
    let mut proxy = BinProxy::spawn(&dir, port, &text);
    // Not idempotent on purpose: a row visited twice shows as n = 2.
    let out = std::process::Command::new(BinProxy::exe())
        .args([
            "backfill",
            "--http",
            &http,
            "items",
            "--set",
            "n = n + 1",
            "--where",
            "true",
        ])
        .args(["--batch", "1000", "--max-rate", "20000", "--database", &db])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("backfill 1 started on public.items"),
        "{stdout}"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if bin_job(&http, 1).is_some_and(|j| num(&j, "rows_scanned") >= 10_000) {
            break;
        }
        assert!(Instant::now() < deadline, "no progress: {}", proxy.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    // The crash lands where it costs most: a batch committed, its progress
    // not recorded yet. Holding the store's write lock stops the progress
    // write right after the next commit; the job's answer (from memory) is
    // then ahead of the stored row, and the proxy is killed at that moment.
    // (The answer runs ahead of the store for a moment after every commit:
    // the test once compared the two and failed when the kill fell there.)
    let lock = rusqlite::Connection::open(dir.join("usage.db")).unwrap();
    lock.busy_timeout(Duration::from_secs(60)).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    let stored: String = lock
        .query_row("SELECT job FROM ddlguard_backfills WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    let recorded: Value = serde_json::from_str(&stored).unwrap();
    let recorded_key: i64 = recorded["current_key"].as_str().unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let j = bin_job(&http, 1).unwrap_or_default();
        if num(&j, "rows_scanned") > num(&recorded, "rows_scanned") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no batch committed past the recorded progress: {j:#}\n{}",
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    proxy.child.kill().unwrap();
    proxy.child.wait().unwrap();
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    // The restart starts a new log file: this one goes with any failure.
    let crashed_log = proxy.log();
    let committed_key = rt.block_on(scalar(&direct, "SELECT max(id) FROM items WHERE n > 0"));
    assert!(committed_key < rows, "the job finished before the crash");
    assert!(
        committed_key > recorded_key,
        "no batch was committed past the recorded key {recorded_key}: {crashed_log}"
    );

    let mut proxy = BinProxy::spawn(&dir, port, &text);
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let answer = bin_job(&http, 1);
        if let Some(j) = answer.clone().filter(|j| j["id"] == 1) {
            break j;
        }
        // Its own process, not another test's that took the port meanwhile.
        let exited = proxy.child.try_wait().ok().flatten();
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "job 1 not back after the restart (last answer {answer:?}, exited: {exited:?}):\n{}\nbefore the crash:\n{crashed_log}",
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    // The restarted proxy knows where the job was recorded.
    assert!(
        num(&first, "rows_scanned") >= num(&recorded, "rows_scanned"),
        "{first:#}\nrecorded: {recorded:#}"
    );
    let done = loop {
        let j = bin_job(&http, 1).unwrap_or_default();
        if state(&j) == "done" {
            break j;
        }
        assert!(Instant::now() < deadline, "{j:#}\n{}", proxy.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        proxy.log().contains("resuming backfill after a restart"),
        "{}",
        proxy.log()
    );
    // Each key is counted once: up to the recorded key before the crash,
    // after it by the resumed job (which redid the unrecorded batch).
    assert_eq!(num(&done, "rows_scanned"), rows as u64, "{done:#}");
    // Resumed from the last recorded key: what ran twice is exactly the
    // batch committed but not recorded when the proxy died. A restart from
    // the start would redo every key before it; one from a later key would
    // leave rows at n = 0.
    let (never, more, twice, elsewhere) = rt.block_on(async {
        (
            scalar(&direct, "SELECT count(*) FROM items WHERE n = 0").await,
            scalar(&direct, "SELECT count(*) FROM items WHERE n > 2").await,
            scalar(&direct, "SELECT count(*) FROM items WHERE n = 2").await,
            scalar(
                &direct,
                &format!(
                    "SELECT count(*) FROM items WHERE (n = 2) <> (id > {recorded_key} AND id <= {committed_key})"
                ),
            )
            .await,
        )
    });
    assert_eq!((never, more), (0, 0));
    assert_eq!(
        (twice, elsewhere),
        (committed_key - recorded_key, 0),
        "recorded key {recorded_key}, committed up to {committed_key}"
    );
}

/// Runs `ddlguard ARGS` on a blocking thread.
async fn cli(args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(BinProxy::exe())
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_follows_a_job_to_its_end() {
    let cluster = Cluster::shared();
    let (db, direct) = items_db(cluster, "backfill_cli", 20_000).await;
    let proxy = start_proxy(cluster).await;
    let http = proxy.http.unwrap().to_string();
    let out = cli(&[
        "backfill",
        "--http",
        &http,
        "public.items",
        "--set",
        "email_lower = lower(email)",
        "--batch",
        "2000",
        "--database",
        &db,
        "--follow",
    ])
    .await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("done: 20000 rows updated"), "{stdout}");
    assert!(
        stderr.contains("ETA") && stderr.contains("rows/s") && stderr.contains("100%"),
        "{stderr}"
    );
    assert_eq!(
        scalar(&direct, "SELECT count(*) FROM items WHERE backfilled = 1").await,
        20_000
    );
    // A refusal is exit code 2 with the reason.
    let out = cli(&[
        "backfill",
        "--http",
        &http,
        "items",
        "--set",
        "id = 1",
        "--database",
        "backfill_cli",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SQLSTATE 55000"),
        "{out:?}"
    );
}

/// The `sh` block after `<!-- walkthrough -->` in the README.
fn readme_walkthrough() -> String {
    let text =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let after = text
        .split("<!-- walkthrough -->")
        .nth(1)
        .expect("the README has a walkthrough");
    let block = after
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("a sh block after the walkthrough marker");
    block.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_runs_end_to_end() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("backfill_walkthrough");
    let direct = connect(&cluster.direct_conn(&db)).await;
    direct
        .batch_execute(
            "CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL);
             INSERT INTO users (email) SELECT 'User' || g || '@Example.COM' FROM generate_series(1, 20000) g;
             ANALYZE users",
        )
        .await
        .unwrap();
    let proxy = start_proxy(cluster).await;
    // The application uses the table through the proxy (not the old column).
    let app = proxy.connect(&db).await;
    app.query("SELECT id FROM users WHERE id = $1", &[&1i64])
        .await
        .unwrap();
    let script = readme_walkthrough();
    let bin = std::path::Path::new(BinProxy::exe())
        .parent()
        .unwrap()
        .to_path_buf();
    let psql = cluster.tool("psql").parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        psql.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (port, http) = (proxy.addr.port(), proxy.http.unwrap().to_string());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg("-c")
            // The commands as written; `--http` points them at this test's proxy.
            .arg(format!(
                "set -euo pipefail\nexec 2>&1\nddlguard() {{ local sub=$1; shift; command ddlguard \"$sub\" --http \"$DDLGUARD_TEST_HTTP\" \"$@\"; }}\n{script}"
            ))
            .env("PATH", path)
            .env("DDLGUARD_TEST_HTTP", http)
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", port.to_string())
            .env("PGUSER", "postgres")
            .env("PGDATABASE", &db)
            .env("PGSSLMODE", "disable")
            .env("PSQLRC", "/dev/null")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let output = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{output}");
    for expected in [
        "backfill 1 started on public.users",
        "done: 20000 rows updated",
        "step 4/4 done: drop the helper check",
        "no client depended on public.users.email",
    ] {
        assert!(output.contains(expected), "{expected:?} not in:\n{output}");
    }
    let columns: Vec<(String, bool)> = direct
        .query(
            "SELECT attname::text, attnotnull FROM pg_attribute WHERE attrelid = 'users'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        columns,
        [("id".to_string(), true), ("email_lower".to_string(), true)]
    );
    assert_eq!(
        scalar(
            &direct,
            "SELECT count(*) FROM users WHERE email_lower LIKE 'user%@example.com'"
        )
        .await,
        20000
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_slows_down_when_others_wait_for_its_row_locks() {
    let cluster = Cluster::shared();
    let (db, _direct) = items_db(cluster, "backfill_locks", 5000).await;
    let proxy = start_proxy(cluster).await;
    // Writers on the rows the job is about to walk.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for i in 0..4i64 {
        let client = proxy.connect(&db).await;
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut id = 1 + i * 101;
            while !stop.load(Ordering::Relaxed) {
                id = id * 48271 % 3000 + 1;
                let _ = client
                    .execute("UPDATE items SET hits = hits + 1 WHERE id = $1", &[&id])
                    .await;
            }
        }));
    }
    // Each row takes 2 ms: a batch holds its row locks for a while.
    let created = create(
        &proxy,
        json!({"table": "items", "set": "n = length(pg_sleep(0.002)::text) + 1", "where": "n = 0",
               "batch": 400, "database": db}),
    )
    .await;
    let id = num(&created, "id");
    slowed_by(&proxy, id, "lock-waits", 400).await;
    let (status, _) = http("POST", format!("{}/{id}/cancel", api(&proxy)), None).await;
    assert_eq!(status, 200);
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_in_a_postgres_store() {
    use ddlguard::backfill::store::JobStore;
    use ddlguard::usage::store::StoreSpec;
    let cluster = Cluster::shared();
    let db = cluster.create_db("backfill_pgstore");
    let spec = StoreSpec::Postgres(format!(
        "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
        cluster.port
    ));
    let store = JobStore::open(&spec).await.unwrap();
    let sample = |id: u64| -> ddlguard::backfill::Job {
        serde_json::from_value(json!({
            "id": id, "database": "app", "schema": "public", "table": "users", "key": "id",
            "key_type": "bigint", "set": "x = 1", "where": "true", "max_batch": 100, "max_rate": 0.0,
            "state": "running", "rows_done": 0, "rows_scanned": 0, "rows_estimated": 10,
            "current_key": null, "rate": 0.0, "eta_seconds": null, "batch_size": 25, "pause_ms": 0,
            "throttle_reason": "none", "baseline_p95_ms": null, "traffic_p95_ms": null, "error": null,
            "created_ms": 1, "updated_ms": 1, "owner": "127.0.0.1:6432"
        }))
        .unwrap()
    };
    let mut job = sample(0);
    job.id = store.insert(&job).await.unwrap();
    job.current_key = Some("77".into());
    job.rows_done = 77;
    job.state = ddlguard::backfill::JobState::Paused;
    store.update(&job).await.unwrap();
    drop(store);
    let again = JobStore::open(&spec).await.unwrap();
    assert_eq!(again.load().await.unwrap(), vec![job]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uuid_and_text_keys_are_walked_in_their_own_order() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("backfill_keys");
    let direct = connect(&cluster.direct_conn(&db)).await;
    direct
        .batch_execute(
            "CREATE TABLE tokens (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), v int, w int);
             INSERT INTO tokens (v) SELECT g FROM generate_series(1, 3000) g;
             CREATE TABLE names (code text NOT NULL UNIQUE, v int, w int);
             INSERT INTO names SELECT 'n' || g, g FROM generate_series(1, 3000) g;",
        )
        .await
        .unwrap();
    let proxy = start_proxy(cluster).await;
    for (table, key) in [("tokens", None), ("names", Some("code"))] {
        let mut body = json!({"table": table, "set": "w = v * 2", "batch": 100, "database": db});
        if let Some(k) = key {
            body["key"] = json!(k);
        }
        let created = create(&proxy, body).await;
        let done = wait_for(&proxy, num(&created, "id"), Duration::from_secs(120), |j| {
            state(j) != "running"
        })
        .await;
        assert_eq!(
            (state(&done), num(&done, "rows_done")),
            ("done", 3000),
            "{done:#}"
        );
        assert_eq!(
            scalar(
                &direct,
                &format!("SELECT count(*) FROM {table} WHERE w = v * 2")
            )
            .await,
            3000
        );
    }
}

//! Reports over HTTP and `ddlguard report`: who depends on a column.

use crate::support::{connect, BinProxy, Cluster, TestProxy};
use std::process::Command;

#[derive(serde::Deserialize, Debug)]
struct Dependent {
    application_name: String,
    dependency: String,
    calls: u64,
    fingerprint: String,
    first_seen: String,
    last_seen: String,
    user: String,
    database: String,
    client_addr: String,
}

fn get(url: &str, token: Option<&str>) -> Result<String, ureq::Error> {
    let mut req = ureq::get(url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    req.call()?.body_mut().read_to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_of_a_column_are_the_clients_that_named_it_or_used_star() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("reports_dependents");
    connect(&cluster.direct_conn(&db))
        .await
        .batch_execute(
            "CREATE TABLE users (id int PRIMARY KEY, email text, name text);
             CREATE TABLE audit (id int, note text);
             INSERT INTO users VALUES (1, 'a@example.com', 'a');",
        )
        .await
        .unwrap();
    let proxy = TestProxy::start_with(cluster, |c| {
        c.admin.http_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let http = proxy.http.expect("HTTP on");
    let app = |name: &str| format!("{} application_name={name}", proxy.conn(&db));
    let a = connect(&app("app_a")).await;
    a.query("SELECT email FROM users WHERE id = $1", &[&1i32])
        .await
        .unwrap();
    a.query("SELECT email FROM users WHERE id = $1", &[&1i32])
        .await
        .unwrap();
    let b = connect(&app("app_b")).await;
    b.simple_query("SELECT * FROM users").await.unwrap();
    let c = connect(&app("app_c")).await;
    c.simple_query("SELECT note FROM audit").await.unwrap();

    let url = format!("http://{http}/api/v1/dependents?table=users&column=email&since=1h");
    let body = tokio::task::spawn_blocking(move || get(&url, None))
        .await
        .unwrap()
        .unwrap();
    let deps: Vec<Dependent> = serde_json::from_str(&body).unwrap();
    let find = |app: &str| deps.iter().find(|d| d.application_name == app);
    let a_dep = find("app_a").expect("A named users.email");
    assert_eq!((a_dep.dependency.as_str(), a_dep.calls), ("explicit", 2));
    assert_eq!(a_dep.fingerprint, "select email from users where id = $1");
    assert_eq!(
        (
            a_dep.user.as_str(),
            a_dep.database.as_str(),
            a_dep.client_addr.as_str()
        ),
        ("postgres", db.as_str(), "127.0.0.1")
    );
    assert!(
        a_dep.first_seen.ends_with('Z') && a_dep.last_seen >= a_dep.first_seen,
        "RFC 3339: {a_dep:?}"
    );
    assert_eq!(
        find("app_b").expect("B used SELECT *").dependency,
        "implicit"
    );
    assert!(find("app_c").is_none(), "C never touched users: {deps:?}");
    assert_eq!(deps.len(), 2);

    // A bad request says what to write instead.
    let url = format!("http://{http}/api/v1/dependents?column=email");
    let err = tokio::task::spawn_blocking(move || get(&url, None))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, ureq::Error::StatusCode(400)), "{err}");

    // The command line prints the same dependents.
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BinProxy::exe())
            .args([
                "report",
                "--http",
                &http.to_string(),
                "dependents",
                "users.email",
                "--since",
                "1h",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("2 client(s) depended on public.users.email"),
        "{stdout}"
    );
    assert!(
        stdout.contains("app_a") && stdout.contains("explicit"),
        "{stdout}"
    );
    assert!(
        stdout.contains("app_b") && stdout.contains("implicit"),
        "{stdout}"
    );
    assert!(!stdout.contains("app_c"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_the_bearer_token_when_configured_and_health_does_not() {
    std::env::set_var("DDLGUARD_TEST_HTTP_TOKEN", "s3cret-token");
    let cluster = Cluster::shared();
    let proxy = TestProxy::start_with(cluster, |c| {
        c.admin.http_listen = Some("127.0.0.1:0".parse().unwrap());
        c.admin.http_token_env = Some("DDLGUARD_TEST_HTTP_TOKEN".into());
    })
    .await;
    let http = proxy.http.unwrap();
    let results = tokio::task::spawn_blocking(move || {
        let api = format!("http://{http}/api/v1/usage");
        (
            get(&api, None).map_err(|e| e.to_string()),
            get(&api, Some("wrong")).map_err(|e| e.to_string()),
            get(&api, Some("s3cret-token")).map_err(|e| e.to_string()),
            get(&format!("http://{http}/healthz"), None).map_err(|e| e.to_string()),
            get(&format!("http://{http}/readyz"), None).map_err(|e| e.to_string()),
        )
    })
    .await
    .unwrap();
    assert!(results.0.unwrap_err().contains("401"));
    assert!(results.1.unwrap_err().contains("401"));
    assert!(results.2.unwrap().starts_with('['));
    assert_eq!(results.3.unwrap(), "ok\n");
    assert_eq!(results.4.unwrap(), "ready\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_done_directly_on_postgres_shows_who_broke() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("reports_errors");
    let direct = connect(&cluster.direct_conn(&db)).await;
    direct
        .batch_execute("CREATE TABLE users (id int PRIMARY KEY, email text); INSERT INTO users VALUES (1, 'x');")
        .await
        .unwrap();
    let proxy = TestProxy::start_with(cluster, |c| {
        c.admin.http_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let http = proxy.http.unwrap();
    let a = connect(&format!("{} application_name=app_a", proxy.conn(&db))).await;
    a.query("SELECT email FROM users WHERE id = $1", &[&1i32])
        .await
        .unwrap();
    crate::support::scenario::rename_email_and_break(&direct, &a).await;

    let body = tokio::task::spawn_blocking(move || {
        get(&format!("http://{http}/api/v1/errors?since=1h"), None)
    })
    .await
    .unwrap()
    .unwrap();
    let errors: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let hit = errors
        .iter()
        .find(|e| e["application_name"] == "app_a" && e["sqlstate"] == "42703")
        .unwrap_or_else(|| panic!("app_a's 42703 is reported: {body}"));
    assert_eq!(hit["fingerprint"], "select email from users where id = $1");
    assert_eq!(hit["errors"], 1);
}

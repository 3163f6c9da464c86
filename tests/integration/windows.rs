//! Time windows select by time: `SINCE` in the console and `since` over
//! HTTP keep what happened inside the window and drop what came before it.

use crate::support::{connect, Cluster, TestProxy};
use ddlguard::config::AdminUser;
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

const PASSWORD_VAR: &str = "DDLGUARD_TEST_WINDOWS_PASSWORD";

/// Application names in `rows` (column `application_name`), sorted.
fn apps(rows: &[tokio_postgres::Row]) -> Vec<String> {
    let mut apps: Vec<String> = rows.iter().map(|r| r.get("application_name")).collect();
    apps.sort();
    apps.dedup();
    apps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_keeps_what_happened_inside_the_window_only() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("windows_since");
    connect(&cluster.direct_conn(&db))
        .await
        .batch_execute("CREATE TABLE users (id int PRIMARY KEY, email text)")
        .await
        .unwrap();
    std::env::set_var(PASSWORD_VAR, "windows-s3cret");
    let proxy = TestProxy::start_with(cluster, |c| {
        c.admin.http_listen = Some("127.0.0.1:0".parse().unwrap());
        c.admin.users = vec![AdminUser {
            name: "admin".into(),
            password: None,
            password_env: Some(PASSWORD_VAR.into()),
        }];
    })
    .await;
    let app = |name: &str| format!("{} application_name={name}", proxy.conn(&db));

    // The old client reads the column and fails once, then goes quiet.
    let old = connect(&app("windows_old")).await;
    old.simple_query("SELECT email FROM users").await.unwrap();
    old.simple_query("SELECT nope FROM users")
        .await
        .unwrap_err();
    // An error is recorded at its ReadyForQuery, which may reach the proxy
    // after the client saw the error; a next statement is answered after it.
    old.simple_query("SELECT 1").await.unwrap();
    let old_done = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The new client does the same inside the window.
    let new_start = Instant::now();
    let new = connect(&app("windows_new")).await;
    new.simple_query("SELECT email FROM users").await.unwrap();
    new.simple_query("SELECT nope FROM users")
        .await
        .unwrap_err();
    new.simple_query("SELECT 1").await.unwrap();

    let (admin, connection) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=admin password=windows-s3cret dbname=ddlguard sslmode=disable",
            proxy.addr.port()
        ),
        NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let show = |sql: String| {
        let admin = &admin;
        async move { apps(&admin.query(&sql, &[]).await.unwrap()) }
    };
    // A window that starts half way between the two clients' use: a loaded
    // machine may stall for a while without moving either end past it.
    let window = || {
        let middle = old_done + (new_start - old_done) / 2;
        middle.elapsed().as_millis()
    };
    let both = vec!["windows_new".to_string(), "windows_old".to_string()];
    let recent = vec!["windows_new".to_string()];
    for (recent_only, want) in [(true, &recent), (false, &both)] {
        let since = if recent_only {
            format!("'{}ms'", window())
        } else {
            "'1 hour'".to_string()
        };
        assert_eq!(
            &show(format!("SHOW DEPENDENTS users.email SINCE {since}")).await,
            want,
            "dependents since {since}"
        );
        let errors = show(format!("SHOW ERRORS SINCE {since}")).await;
        let errors: Vec<String> = errors
            .into_iter()
            .filter(|a| a.starts_with("windows_"))
            .collect();
        assert_eq!(&errors, want, "errors since {since}");
    }

    let http = proxy.http.expect("HTTP on");
    for (recent_only, want) in [(true, &recent), (false, &both)] {
        let since = if recent_only {
            format!("{}ms", window())
        } else {
            "1h".to_string()
        };
        let url = format!("http://{http}/api/v1/dependents?table=users&column=email&since={since}");
        let body = tokio::task::spawn_blocking(move || {
            ureq::get(&url)
                .call()
                .and_then(|mut r| r.body_mut().read_to_string())
        })
        .await
        .unwrap()
        .unwrap();
        let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        let mut got: Vec<String> = rows
            .iter()
            .filter_map(|r| r["application_name"].as_str().map(str::to_string))
            .collect();
        got.sort();
        assert_eq!(&got, want, "HTTP dependents since {since}");
    }
}

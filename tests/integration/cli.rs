//! The `ddlguard` binary: check-config, exit codes, signals.

use crate::support::spawn::free_port;
use crate::support::{BinProxy, Cluster};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio_postgres::NoTls;

fn workdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ddlguard-test-{}-cli-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn config_text(port: u16, upstream: u16, extra_server: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nshutdown_grace = \"1s\"\n{extra_server}\n\n[upstream]\nport = {upstream}\n\n[usage]\nstore = \"memory\"\n\n[admin]\nhttp_listen = \"\"\n"
    )
}

#[test]
fn the_shipped_proxy_toml_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/proxy.toml");
    let out = Command::new(BinProxy::exe())
        .args(["check-config", "--config", path])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("listen = \"127.0.0.1:6432\""), "{stdout}");
    assert!(stdout.contains("port = 5432"), "{stdout}");
}

#[test]
fn config_errors_name_file_line_and_key_and_exit_2() {
    let dir = workdir("badconfig");
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"127.0.0.1:6432\"\n\n[upstream]\ntls = \"maybe\"\n",
    )
    .unwrap();
    for cmd in ["check-config", "serve"] {
        let out = Command::new(BinProxy::exe())
            .args([cmd, "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let want = format!("{}:5: key `upstream.tls`", path.display());
        assert!(stderr.contains(&want), "{cmd}: {stderr}");
        assert!(stderr.contains("unknown variant"), "{stderr}");
    }
    let out = Command::new(BinProxy::exe())
        .args(["check-config", "--config"])
        .arg(dir.join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_closes_sessions_with_57p01() {
    let cluster = Cluster::shared();
    let port = free_port();
    let mut proxy = BinProxy::spawn(
        &workdir("sigterm"),
        port,
        &config_text(port, cluster.port, ""),
    );
    let conn = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=disable");
    let (client, connection) = tokio_postgres::connect(&conn, NoTls).await.unwrap();
    let conn_task = tokio::spawn(connection);
    client.query_one("SELECT 1", &[]).await.unwrap();

    proxy.signal(libc::SIGTERM);
    // New connections are refused while the existing session still works.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.query_one("SELECT 1", &[]).await.unwrap();
    // After the 1 s grace the session is closed with 57P01.
    let result = tokio::time::timeout(Duration::from_secs(20), conn_task)
        .await
        .unwrap()
        .unwrap();
    let err = result.expect_err("the connection ends with an error");
    assert_eq!(err.code().map(|c| c.code()), Some("57P01"), "{err}");
    let status = tokio::task::spawn_blocking(move || proxy.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_live_settings_and_refuses_bad_files() {
    let cluster = Cluster::shared();
    let port = free_port();
    let dir = workdir("sighup");
    let proxy = BinProxy::spawn(
        &dir,
        port,
        &config_text(port, cluster.port, "max_client_connections = 1"),
    );
    let conn = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=disable");
    let (first, c1) = tokio_postgres::connect(&conn, NoTls).await.unwrap();
    tokio::spawn(c1);
    let refused = tokio_postgres::connect(&conn, NoTls).await.err().unwrap();
    assert_eq!(refused.as_db_error().unwrap().code().code(), "53300");

    std::fs::write(
        &proxy.config_path,
        config_text(port, cluster.port, "max_client_connections = 2"),
    )
    .unwrap();
    proxy.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    let second = loop {
        match tokio_postgres::connect(&conn, NoTls).await {
            Ok((c, conn2)) => {
                tokio::spawn(conn2);
                break c;
            }
            Err(_) => {
                assert!(
                    Instant::now() < deadline,
                    "reload did not apply: {}",
                    proxy.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    second.query_one("SELECT 1", &[]).await.unwrap();
    first.query_one("SELECT 1", &[]).await.unwrap();

    // A broken file is refused; the running settings stay.
    std::fs::write(
        &proxy.config_path,
        "[server]\nmax_client_connections = \"many\"\n",
    )
    .unwrap();
    proxy.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !proxy.log().contains("reload refused") {
        assert!(
            Instant::now() < deadline,
            "no refusal logged: {}",
            proxy.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        proxy
            .log()
            .contains("proxy.toml:2: key `server.max_client_connections`"),
        "{}",
        proxy.log()
    );
    first.query_one("SELECT 1", &[]).await.unwrap();
}

/// Calls of one fingerprint in a SQLite usage store, read straight from the file.
fn stored_calls(path: &std::path::Path, fingerprint: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT coalesce(sum(calls), 0) FROM ddlguard_usage WHERE fingerprint = ?1",
        [fingerprint],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

#[test]
fn kill_9_loses_at_most_one_flush_interval() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("cli_kill9");
    let dir = workdir("kill9");
    let store = dir.join("usage.db");
    let port = free_port();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n\n[upstream]\nport = {}\ntls = \"disable\"\n\n[usage]\nstore = \"sqlite:{}\"\nflush_interval = \"300ms\"\n\n[admin]\nhttp_listen = \"\"\n",
        cluster.port,
        store.display()
    );
    let proxy = BinProxy::spawn(&dir, port, &text);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fingerprint = "select $1::int + $2";
    rt.block_on(async {
        let conn = format!("host=127.0.0.1 port={port} user=postgres dbname={db} sslmode=disable");
        let (client, connection) = tokio_postgres::connect(&conn, NoTls).await.unwrap();
        tokio::spawn(connection);
        for i in 0..50 {
            client
                .simple_query(&format!("SELECT {i}::int + 1"))
                .await
                .unwrap();
        }
    });
    // The flusher writes every interval (the wait allows for a loaded
    // machine); once the calls are in the file, SIGKILL cannot take them:
    // only calls newer than the last flush are at risk.
    let deadline = Instant::now() + Duration::from_secs(10);
    while stored_calls(&store, fingerprint) < 50 {
        assert!(Instant::now() < deadline, "not flushed: {}", proxy.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy.signal(libc::SIGKILL);
    drop(proxy);
    assert_eq!(stored_calls(&store, fingerprint), 50);
}

//! Real command-line clients through the proxy: psql and pgbench.

use crate::support::{Cluster, TestProxy};
use std::process::Command;

fn pgbench(cluster: &Cluster, port: u16, db: &str, args: &[&str]) -> String {
    let out = Command::new(cluster.tool("pgbench"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .args(args)
        .arg(db)
        .env("PGSSLMODE", "disable")
        .output()
        .expect("run pgbench");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pgbench {args:?} failed:\n{text}");
    text
}

fn field(report: &str, prefix: &str) -> u64 {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix:?} in pgbench output:\n{report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgbench_in_every_query_mode_has_no_failures() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("clients_pgbench");
    // pgbench empties pgbench_history with TRUNCATE, which the policy
    // blocks in enforce mode; this test is about the relay.
    let proxy = TestProxy::start_with(cluster, |c| {
        c.policy.mode = ddlguard::policy::Mode::Observe;
    })
    .await;
    let port = proxy.addr.port();
    let cluster_ref = cluster;
    let db2 = db.clone();
    tokio::task::spawn_blocking(move || {
        pgbench(cluster_ref, port, &db2, &["-i", "-s", "1", "-q"]);
        for mode in ["simple", "extended", "prepared"] {
            for builtin in ["select-only", "tpcb-like"] {
                let report = pgbench(
                    cluster_ref,
                    port,
                    &db2,
                    &["-b", builtin, "-M", mode, "-c", "4", "-j", "2", "-t", "200"],
                );
                assert_eq!(
                    field(&report, "number of failed transactions:"),
                    0,
                    "{mode}/{builtin}"
                );
                assert_eq!(
                    field(&report, "number of transactions actually processed:"),
                    800,
                    "{mode}/{builtin}:\n{report}"
                );
            }
        }
    })
    .await
    .unwrap();
    // The writes happened on the real server.
    let direct = crate::support::connect(&cluster.direct_conn(&db)).await;
    let n: i64 = direct
        .query_one("SELECT count(*) FROM pgbench_history", &[])
        .await
        .unwrap()
        .get(0);
    // pgbench empties the history before each run: the last run wrote 800.
    assert_eq!(n, 800);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psql_script_gives_the_same_output_as_direct() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("clients_psql");
    let proxy = TestProxy::start(cluster).await;
    let script = cluster.dir.join("clients_psql.sql");
    std::fs::write(
        &script,
        r#"
SET client_min_messages = warning;
DROP TABLE IF EXISTS items;
RESET client_min_messages;
CREATE TABLE items (id int PRIMARY KEY, name text);
INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 500) i;
\copy items TO 'PLACEHOLDER_OUT'
TRUNCATE items;
\copy items FROM 'PLACEHOLDER_OUT'
SELECT count(*), sum(id), max(name) FROM items;
BEGIN;
SELECT 1/0;
ROLLBACK;
SELECT current_database(), current_user;
\d items
DO $$ BEGIN RAISE NOTICE 'notice from the server'; END $$;
SELECT string_agg(name, ',' ORDER BY id) FROM items WHERE id <= 5;
"#
        .replace(
            "PLACEHOLDER_OUT",
            &cluster.dir.join("items.copy").display().to_string(),
        ),
    )
    .unwrap();
    let run = move |port: u16| {
        let out = Command::new(cluster.tool("psql"))
            .args([
                "-X",
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-d",
                &db,
            ])
            .arg("-f")
            .arg(&script)
            .env("PGSSLMODE", "disable")
            .output()
            .unwrap();
        (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let ports = (proxy.addr.port(), cluster.port);
    let (via, direct) = tokio::task::spawn_blocking(move || (run(ports.0), run(ports.1)))
        .await
        .unwrap();
    assert!(via.0.contains("500 | 125250 | item 99"), "{}", via.0);
    assert!(via.1.contains("division by zero"), "{}", via.1);
    assert!(via.1.contains("notice from the server"), "{}", via.1);
    assert_eq!(via.0, direct.0);
    // stderr names the script lines; they are equal too.
    assert_eq!(via.1, direct.1);
}

//! `docs/playbook.md` stays true: each step marked `<!-- playbook: NAME -->`
//! is the `sh` block that follows it, run with bash and psql through a real
//! ddlguard in front of the test cluster, in order, in one database; its
//! output (stdout and stderr, as a terminal shows them) must equal the `text`
//! block after it. `DDLGUARD_BLESS=1 cargo test --test integration playbook`
//! rewrites those blocks from a fresh run.

use crate::support::{Cluster, TestProxy};
use ddlguard::config::AdminUser;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The console password of the playbook's `admin` (the doc says to set PGPASSWORD).
const ADMIN_PASSWORD: &str = "admin";

/// One step of the playbook.
struct Step {
    name: String,
    /// Seconds to wait before the step (`wait=N` in the marker).
    wait: u64,
    script: String,
    /// Line range of the expected output inside the document (exclusive end).
    output: (usize, usize),
}

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/playbook.md")
}

/// The steps of the document, in order.
fn steps(lines: &[&str]) -> Vec<Step> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(marker) = lines[i]
            .trim()
            .strip_prefix("<!-- playbook:")
            .and_then(|m| m.strip_suffix("-->"))
        else {
            i += 1;
            continue;
        };
        let mut words = marker.split_whitespace();
        let name = words.next().expect("a step name").to_string();
        let wait = words
            .find_map(|w| w.strip_prefix("wait="))
            .map(|w| w.parse().expect("wait=SECONDS"))
            .unwrap_or(0);
        let block = |from: usize, lang: &str| -> (usize, usize) {
            let open = (from..lines.len())
                .find(|&j| lines[j].trim() == format!("```{lang}"))
                .unwrap_or_else(|| panic!("step {name}: no ```{lang} block"));
            let close = (open + 1..lines.len())
                .find(|&j| lines[j].trim() == "```")
                .unwrap_or_else(|| panic!("step {name}: unclosed ```{lang} block"));
            (open + 1, close)
        };
        let (s, e) = block(i, "sh");
        let output = block(e, "text");
        out.push(Step {
            name,
            wait,
            script: lines[s..e].join("\n"),
            output,
        });
        i = output.1 + 1;
    }
    out
}

/// Replaces each timestamp (`2026-11-28 04:31:22.123456+00`,
/// `2026-11-28T04:31:22.123Z`) with a fixed one of the same shape, so that
/// psql's column alignment is kept.
fn normalize(text: &str) -> String {
    let bytes = text.as_bytes();
    let digit = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
    let at = |i: usize, c: u8| bytes.get(i) == Some(&c);
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let stamp = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
            .iter()
            .all(|&k| digit(i + k))
            && at(i + 4, b'-')
            && at(i + 7, b'-')
            && (at(i + 10, b' ') || at(i + 10, b'T'))
            && at(i + 13, b':')
            && at(i + 16, b':');
        if !stamp {
            let c = text[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
            continue;
        }
        out.push_str("2026-05-04");
        out.push(bytes[i + 10] as char);
        out.push_str("09:30:00");
        i += 19;
        if at(i, b'.') {
            out.push('.');
            i += 1;
            while digit(i) {
                out.push('0');
                i += 1;
            }
        }
        // A zone (`Z`, `+00`, `+05:30`) is kept as written.
    }
    fix_numbers(&out)
}

/// Pids and measured waits change from run to run: the number after each
/// of these words is replaced with a fixed one.
fn fix_numbers(text: &str) -> String {
    const FIXED: &[(&str, &str)] = &[
        ("pid ", "48213"),
        ("transaction open ", "2.0"),
        ("waited ", "3.0"),
    ];
    let mut out = text.to_string();
    for (word, value) in FIXED {
        let mut from = 0;
        while let Some(found) = out[from..].find(word) {
            let start = from + found + word.len();
            let len = out[start..]
                .find(|c: char| !c.is_ascii_digit() && c != '.')
                .unwrap_or(out.len() - start);
            if len > 0 {
                out.replace_range(start..start + len, value);
            }
            from = start + if len > 0 { value.len() } else { 0 };
        }
    }
    out
}

fn verifier(cluster: &Cluster, password: &str) -> String {
    cluster.psql_admin("DROP ROLE IF EXISTS playbook_tmp");
    cluster.psql_admin(&format!(
        "SET password_encryption = 'scram-sha-256'; CREATE ROLE playbook_tmp PASSWORD '{password}'"
    ));
    let v = cluster.psql_admin("SELECT rolpassword FROM pg_authid WHERE rolname = 'playbook_tmp'");
    cluster.psql_admin("DROP ROLE playbook_tmp");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playbook_runs_as_written_and_ddlguard_answers_as_shown() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("shop");
    let admin = verifier(cluster, ADMIN_PASSWORD);
    // proxy.toml as shipped, plus the service login and a console user.
    let proxy = TestProxy::start_with(cluster, |c| {
        c.upstream.user = Some("postgres".into());
        c.admin.users.push(AdminUser {
            name: "admin".into(),
            password: Some(admin),
            password_env: None,
        });
    })
    .await;
    let port = proxy.addr.port();
    let psql_dir = cluster.tool("psql").parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        psql_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let text = std::fs::read_to_string(doc_path()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let steps = steps(&lines);
    assert!(steps.len() >= 10, "the playbook has its steps");
    let mut actual = Vec::new();
    for step in &steps {
        tokio::time::sleep(Duration::from_secs(step.wait)).await;
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(format!("set -u\nexec 2>&1\n{}", step.script))
            .env("PATH", &path)
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", port.to_string())
            .env("PGUSER", "postgres")
            .env("PGDATABASE", &db)
            .env("PGPASSWORD", ADMIN_PASSWORD)
            .env("PGSSLMODE", "disable")
            .env("PSQLRC", "/dev/null")
            .env("PGTZ", "UTC")
            .env_remove("PGAPPNAME")
            .env_remove("PGOPTIONS");
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .expect("run bash");
        let output = normalize(String::from_utf8_lossy(&out.stdout).trim_end());
        actual.push(output);
        // Let the catalog snapshot catch up with the step's DDL (it reloads
        // 200 ms after the last DDL of a burst), as it has between the
        // steps of a real migration.
        tokio::time::sleep(Duration::from_millis(700)).await;
    }

    if std::env::var_os("DDLGUARD_BLESS").is_some() {
        let mut new: Vec<String> = Vec::new();
        let mut at = 0;
        for (step, output) in steps.iter().zip(&actual) {
            new.extend(lines[at..step.output.0].iter().map(|l| l.to_string()));
            new.push(output.clone());
            at = step.output.1;
        }
        new.extend(lines[at..].iter().map(|l| l.to_string()));
        std::fs::write(doc_path(), new.join("\n") + "\n").unwrap();
        return;
    }
    let mut wrong = Vec::new();
    for (step, output) in steps.iter().zip(&actual) {
        let expected = lines[step.output.0..step.output.1].join("\n");
        if expected.trim_end() != *output {
            wrong.push(format!(
                "step {}:\n--- docs/playbook.md\n{expected}\n--- ddlguard now answers\n{output}\n",
                step.name
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/playbook.md is out of date (DDLGUARD_BLESS=1 regenerates it, then read the diff):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn timestamps_are_normalized_keeping_their_width() {
    let line = "| shop_v1 | 2026-11-28 04:31:22.123456+00 | at 2026-11-28T04:31:22.123Z.";
    let n = normalize(line);
    assert_eq!(n.len(), line.len());
    assert_eq!(
        n,
        "| shop_v1 | 2026-05-04 09:30:00.000000+00 | at 2026-05-04T09:30:00.000Z."
    );
    assert_eq!(normalize("UPDATE 5000"), "UPDATE 5000");
    assert_eq!(
        normalize("pid 8523 (active, transaction open 1.4s); waited 2.6s; pid x"),
        "pid 48213 (active, transaction open 2.0s); waited 3.0s; pid x"
    );
}

//! `ddlguard lint` through the real binary: corpora, golden outputs per
//! format, SARIF structure, exit codes, transaction and file semantics, and
//! `--usage-from` against a running proxy.

use crate::support::{connect, BinProxy, Cluster, TestProxy};
use ddlguard::policy::catalog::RULES;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lint")
}

/// Runs `ddlguard lint ARGS` in `dir`.
fn lint_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(BinProxy::exe())
        .current_dir(dir)
        .arg("lint")
        .args(args)
        .env_remove("DDLGUARD_HTTP_TOKEN")
        .output()
        .unwrap()
}

fn lint(args: &[&str]) -> Output {
    lint_in(&fixtures(), args)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            stdout(out),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn rules_fired(doc: &Value) -> BTreeSet<String> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap().to_string())
        .collect()
}

fn workdir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("ddlguard-test-{}-lint-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_safe_corpus_has_no_finding() {
    let out = lint(&["--format", "json", "--fail-on", "warn", "safe"]);
    let doc = json(&out);
    assert_eq!(doc["findings"], serde_json::json!([]), "{doc:#}");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(doc["summary"]["files"], 3);
}

#[test]
fn every_rule_fires_on_the_unsafe_corpus() {
    let out = lint(&["--format", "json", "unsafe"]);
    assert_eq!(out.status.code(), Some(1));
    let fired = rules_fired(&json(&out));
    let missing: Vec<&str> = RULES
        .iter()
        .map(|r| r.id)
        .filter(|id| !fired.contains(*id))
        .collect();
    assert!(missing.is_empty(), "rules that never fired: {missing:?}");
}

/// Compares with `tests/fixtures/lint/golden/NAME`; `UPDATE_GOLDEN=1` rewrites it.
fn golden(name: &str, got: &str) {
    let path = fixtures().join("golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        want == got,
        "{} differs (UPDATE_GOLDEN=1 rewrites it):\n{got}",
        path.display()
    );
}

#[test]
fn outputs_match_the_golden_files() {
    for (format, file) in [
        ("text", "unsafe.txt"),
        ("json", "unsafe.json"),
        ("github", "unsafe.github"),
        ("sarif", "unsafe.sarif"),
    ] {
        let out = lint(&["--format", format, "unsafe"]);
        assert_eq!(out.status.code(), Some(1), "{format}");
        golden(file, &stdout(&out));
    }
    let text = stdout(&lint(&["unsafe/001_indexes.sql"]));
    assert!(
        text.contains("unsafe/001_indexes.sql:2:1: rewrite[create-index-nonconcurrent] "),
        "{text}"
    );
    assert!(
        text.contains("\n    hint: CREATE INDEX CONCURRENTLY"),
        "{text}"
    );
}

#[test]
fn sarif_has_the_2_1_0_required_structure() {
    let doc = json(&lint(&["--format", "sarif", "unsafe"]));
    assert_eq!(doc["version"], "2.1.0");
    let run = &doc["runs"][0];
    let driver = &run["tool"]["driver"];
    assert_eq!(driver["name"], "ddlguard");
    let rules = driver["rules"].as_array().unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, RULES.iter().map(|r| r.id).collect::<Vec<_>>());
    for r in rules {
        for key in ["shortDescription", "fullDescription", "help"] {
            assert!(
                r[key]["text"].as_str().is_some_and(|t| !t.is_empty()),
                "{r}"
            );
        }
        assert!(r["name"].as_str().is_some_and(|n| !n.contains('-')), "{r}");
        let level = r["defaultConfiguration"]["level"].as_str().unwrap();
        assert!(["none", "note", "warning", "error"].contains(&level), "{r}");
    }
    let results = run["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for res in results {
        let id = res["ruleId"].as_str().unwrap();
        let index = res["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(ids[index], id);
        assert!(res["message"]["text"]
            .as_str()
            .is_some_and(|t| !t.is_empty()));
        assert!(["note", "warning", "error"].contains(&res["level"].as_str().unwrap()));
        let loc = &res["locations"][0]["physicalLocation"];
        assert!(loc["artifactLocation"]["uri"]
            .as_str()
            .unwrap()
            .starts_with("unsafe/"));
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
        assert!(loc["region"]["startColumn"].as_u64().unwrap() >= 1);
    }
}

#[test]
fn exit_codes_follow_fail_on_and_errors() {
    let dir = workdir("exit");
    std::fs::write(
        dir.join("warn.sql"),
        "ALTER TABLE t ADD COLUMN IF NOT EXISTS c varchar(20);\n",
    )
    .unwrap();
    std::fs::write(dir.join("block.sql"), "DROP DATABASE legacy;\n").unwrap();
    let code = |args: &[&str]| lint_in(&dir, args).status.code();
    assert_eq!(code(&["warn.sql"]), Some(0), "warnings pass by default");
    assert_eq!(code(&["--fail-on", "warn", "warn.sql"]), Some(1));
    assert_eq!(code(&["block.sql"]), Some(1));
    let missing = lint_in(&dir, &["missing.sql"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("missing.sql"));
    assert_eq!(
        code(&["--format", "yaml", "warn.sql"]),
        Some(2),
        "bad arguments"
    );
    let port = crate::support::spawn::free_port();
    let down = lint_in(
        &dir,
        &[
            "--usage-from",
            &format!("http://127.0.0.1:{port}"),
            "warn.sql",
        ],
    );
    assert_eq!(down.status.code(), Some(2));
    let err = String::from_utf8_lossy(&down.stderr);
    assert!(
        err.contains("usage lookup failed") && err.contains(&port.to_string()),
        "{err}"
    );
}

#[test]
fn transactions_created_tables_and_positions() {
    let dir = workdir("tx");
    std::fs::write(
        dir.join("001_create.sql"),
        "CREATE TABLE IF NOT EXISTS widgets (id bigint PRIMARY KEY, name text);\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("002_change.sql"),
        "\\set ON_ERROR_STOP on\n-- a comment; with a semicolon\nCREATE INDEX widgets_name ON widgets (name);\n  CREATE INDEX gadgets_name ON gadgets (name);\nSELECT 'a;b', $tag$ ; $tag$;\nBEGIN;\n",
    )
    .unwrap();
    let doc = json(&lint_in(&dir, &["--format", "json", "."]));
    let findings = doc["findings"].as_array().unwrap();
    let on = |rule: &str| -> Vec<(u64, u64)> {
        findings
            .iter()
            .filter(|f| f["rule"] == rule)
            .map(|f| (f["line"].as_u64().unwrap(), f["column"].as_u64().unwrap()))
            .collect()
    };
    assert_eq!(
        on("create-index-nonconcurrent"),
        [(4, 3)],
        "the table of 001 is new in 002: {doc:#}"
    );
    assert_eq!(on("uncommitted-transaction"), [(6, 1)]);
    assert!(on("transaction-nesting").is_empty());
    assert_eq!(doc["notes"][0]["kind"], "skipped");
    assert_eq!(doc["notes"][0]["line"], 1);
    assert_eq!(doc["summary"]["statements"], 5);

    // A tool that wraps each file in a transaction: BEGIN nests, and the
    // index can no longer be built concurrently.
    let doc = json(&lint_in(
        &dir,
        &[
            "--format",
            "json",
            "--assume-in-transaction",
            "002_change.sql",
        ],
    ));
    let fired = rules_fired(&doc);
    assert!(fired.contains("transaction-nesting"), "{doc:#}");
    let blocked: Vec<&Value> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "create-index-nonconcurrent")
        .collect();
    assert_eq!(blocked.len(), 2, "without 001 both tables are old: {doc:#}");
    assert!(blocked.iter().all(|f| f["action"] == "block"
        && f["hint"]
            .as_str()
            .unwrap()
            .contains("disable_ddl_transaction!")));
}

#[test]
fn unparsed_statements_are_classified_and_said_so() {
    let dir = workdir("unparsed");
    std::fs::write(
        dir.join("m.sql"),
        "ALTER TABLE big ALTER COLUMN c SET NOT NULL, ALTER COLUMN d SET STATISTICS 100 WITH SOME JUNK;\n",
    )
    .unwrap();
    let doc = json(&lint_in(&dir, &["--format", "json", "m.sql"]));
    let notes = doc["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n["kind"] == "classified-only"),
        "{doc:#}"
    );
    let text = stdout(&lint_in(&dir, &["m.sql"]));
    assert!(text.contains("classified"), "{text}");
}

#[test]
fn override_comments_and_config_apply_as_at_the_proxy() {
    let dir = workdir("config");
    std::fs::write(
        dir.join("m.sql"),
        "-- ddlguard:allow drop-database retired long ago\nDROP DATABASE IF EXISTS legacy;\nTRUNCATE audit_log;\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("ddlguard.toml"),
        "[policy.rules]\ntruncate-table = \"warn\"\n",
    )
    .unwrap();
    let doc = json(&lint_in(&dir, &["--format", "json", "m.sql"]));
    assert_eq!(
        rules_fired(&doc),
        BTreeSet::from(["truncate-table".to_string()])
    );
    assert_eq!(doc["summary"]["allowed_by_comment"], 1);
    assert_eq!(doc["findings"][0]["action"], "block");
    let out = lint_in(
        &dir,
        &["--format", "json", "--config", "ddlguard.toml", "m.sql"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["findings"][0]["action"], "warn");
}

#[test]
fn the_real_world_folder_gets_findings_a_reviewer_agrees_with() {
    // The whole history from scratch: every table is new, only advice.
    let all = json(&lint(&["--format", "json", "realworld"]));
    assert_eq!(all["summary"]["block"], 0, "{all:#}");
    // CI on the later migrations, against a database that has the tables.
    let later = json(&lint(&[
        "--format",
        "json",
        "realworld/0003_product_sku.sql",
        "realworld/0004_order_stripe_id.sql",
        "realworld/0005_remove_order_postal_code.sql",
    ]));
    let fired = rules_fired(&later);
    for rule in [
        "create-index-nonconcurrent",
        "add-foreign-key-validating",
        "add-unique-constraint-scan",
        "drop-column-in-use",
        "rename-column-in-use",
        "drop-default-in-use",
    ] {
        assert!(fired.contains(rule), "{rule}: {later:#}");
    }
    for rule in [
        "add-column-volatile-default",
        "add-column-not-null-no-default",
    ] {
        assert!(
            !fired.contains(rule),
            "constant defaults take no rewrite: {later:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_from_a_running_proxy_names_dependents_and_relaxes_small_tables() {
    let cluster = Cluster::shared();
    let db = cluster.create_db("lint_usage_from");
    connect(&cluster.direct_conn(&db))
        .await
        .batch_execute(
            "CREATE TABLE users (id int PRIMARY KEY, email text, name text);
             CREATE TABLE tiny (id int PRIMARY KEY, note text);
             INSERT INTO users SELECT g, 'x', 'y' FROM generate_series(1, 20000) g;
             INSERT INTO tiny VALUES (1, 'a');
             ANALYZE users; ANALYZE tiny;",
        )
        .await
        .unwrap();
    let proxy = TestProxy::start_with(cluster, |c| {
        c.admin.http_listen = Some("127.0.0.1:0".parse().unwrap());
        // The service login loads the catalog snapshot (row estimates).
        c.upstream.user = Some("postgres".into());
    })
    .await;
    let http = proxy.http.expect("HTTP on");
    let app = connect(&format!("{} application_name=billing", proxy.conn(&db))).await;
    app.query("SELECT email FROM users WHERE id = $1", &[&1i32])
        .await
        .unwrap();
    app.query("SELECT note FROM tiny WHERE id = $1", &[&1i32])
        .await
        .unwrap();

    let dir = workdir("usage");
    std::fs::write(
        dir.join("m.sql"),
        "ALTER TABLE users DROP COLUMN email;\nALTER TABLE users DROP COLUMN name;\nCREATE INDEX IF NOT EXISTS tiny_note ON tiny (note);\nCREATE INDEX IF NOT EXISTS users_name ON users (name);\n",
    )
    .unwrap();
    let url = format!("http://{http}");
    // The catalog snapshot loads in the background: wait until the proxy
    // reports row estimates, as it would in production long before a lint.
    let tables_url = format!("{url}/api/v1/tables");
    let mut estimated = false;
    for _ in 0..100 {
        let u = tables_url.clone();
        let body = tokio::task::spawn_blocking(move || crate::support::http::get_page(&u))
            .await
            .unwrap()
            .map(|p| p.body)
            .unwrap_or_default();
        let rows: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
        if rows.len() == 2 && rows.iter().all(|r| r["row_estimate"].is_i64()) {
            estimated = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(estimated, "the proxy never reported row estimates");
    let out = tokio::task::spawn_blocking(move || {
        lint_in(&dir, &["--format", "json", "--usage-from", &url, "m.sql"])
    })
    .await
    .unwrap();
    let doc = json(&out);
    let findings = doc["findings"].as_array().unwrap();
    let at = |line: u64| -> Vec<&Value> { findings.iter().filter(|f| f["line"] == line).collect() };
    let email = at(1);
    assert!(
        email.iter().any(|f| f["rule"] == "drop-column-in-use"
            && f["action"] == "block"
            && f["message"].as_str().unwrap().contains("billing")),
        "{doc:#}"
    );
    assert!(
        at(2).iter().all(|f| f["rule"] != "drop-column-in-use"),
        "nobody used name: {doc:#}"
    );
    assert!(at(3).is_empty(), "tiny is below small_table_rows: {doc:#}");
    assert!(
        at(4)
            .iter()
            .any(|f| f["rule"] == "create-index-nonconcurrent"),
        "{doc:#}"
    );
    assert_eq!(out.status.code(), Some(1));
}

//! The engine: modes, `[policy.rules]`, scopes, override comments,
//! transaction blocks and the shape of blocks and rewrites.

use super::rules::support::testing::{used, UsedBy};
use super::*;
use crate::policy::{PolicySettings, Scope};

fn run(sql: &str, ctx: &Context, settings: &PolicySettings) -> Decision {
    decide(&Statement::new(sql), ctx, settings)
}

fn enforce(sql: &str) -> Decision {
    run(sql, &Context::default(), &PolicySettings::default())
}

#[test]
fn harmless_statements_are_forwarded_without_findings() {
    for sql in [
        "SELECT * FROM t",
        "ALTER TABLE t ADD COLUMN a int DEFAULT -1",
        "ALTER TABLE t ADD COLUMN b timestamptz DEFAULT now()",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a)",
    ] {
        let d = enforce(sql);
        assert_eq!(d.verdict, Verdict::Forward, "{sql}");
        assert!(
            d.findings.iter().all(|f| f.category == Category::Advice),
            "{sql}: {:?}",
            d.findings
        );
        assert!(d.notices.is_empty(), "{sql}: {:?}", d.notices);
    }
}

#[test]
fn enforce_rewrites_and_blocks() {
    let d = enforce("CREATE INDEX i ON t (a)");
    let Verdict::Rewrite(plan) = &d.verdict else {
        panic!("{:?}", d.verdict)
    };
    assert_eq!(plan.tag, "CREATE INDEX");
    assert_eq!(d.action(), Action::Rewrite);
    let d = enforce("TRUNCATE t CASCADE");
    let Verdict::Block(r) = &d.verdict else {
        panic!("{:?}", d.verdict)
    };
    assert_eq!(r.sqlstate, "55000");
    assert!(r.message.contains("truncate-table"), "{}", r.message);
    assert!(r.detail.contains("CASCADE"), "{}", r.detail);
    assert!(r.hint.contains("DELETE in batches"), "{}", r.hint);
}

#[test]
fn ddl_the_parser_cannot_read_is_still_decided() {
    let d = enforce("REINDEX TABLE t");
    let Verdict::Rewrite(plan) = &d.verdict else {
        panic!("{:?}", d.verdict)
    };
    assert_eq!(plan.steps[0].sql, "REINDEX TABLE CONCURRENTLY t");
    assert!(matches!(
        enforce("CLUSTER t USING i").verdict,
        Verdict::Block(_)
    ));
    assert!(matches!(
        enforce("ALTER TABLE t SET TABLESPACE slow").verdict,
        Verdict::Block(_)
    ));
}

#[test]
fn warn_mode_turns_blocks_into_notices_and_observe_records_only() {
    let warn = PolicySettings {
        mode: Mode::Warn,
        ..PolicySettings::default()
    };
    let d = run("TRUNCATE t", &Context::default(), &warn);
    assert_eq!(d.verdict, Verdict::Forward);
    assert_eq!(d.action(), Action::Warn);
    assert!(d.notices[0].contains("truncate-table"), "{:?}", d.notices);
    let observe = PolicySettings {
        mode: Mode::Observe,
        ..PolicySettings::default()
    };
    let d = run("TRUNCATE t", &Context::default(), &observe);
    assert_eq!(d.verdict, Verdict::Forward);
    assert!(d.notices.is_empty());
    assert_eq!(d.findings[0].rule, "truncate-table");
    assert_eq!(d.findings[0].configured, Action::Block);
    assert_eq!(d.findings[0].action, Action::Allow);
}

#[test]
fn rule_overrides_and_scopes_apply() {
    let mut s = PolicySettings::default();
    s.rules.insert("truncate-table".into(), Action::Warn);
    s.rules.insert("prefer-bigint".into(), Action::Block);
    let d = run("TRUNCATE t", &Context::default(), &s);
    assert_eq!(d.verdict, Verdict::Forward);
    assert_eq!(d.notices.len(), 1);
    let d = run("CREATE TABLE n (id int)", &Context::default(), &s);
    assert!(matches!(&d.verdict, Verdict::Block(r) if r.rule == "prefer-bigint"));

    let scoped = PolicySettings {
        mode: Mode::Observe,
        scope: vec![Scope {
            user: Some("migrator".into()),
            database: None,
            application_name: None,
            mode: Mode::Enforce,
        }],
        ..PolicySettings::default()
    };
    let migrator = Context {
        session: Session {
            user: "migrator".into(),
            ..Session::default()
        },
        ..Context::default()
    };
    assert!(matches!(
        run("TRUNCATE t", &migrator, &scoped).verdict,
        Verdict::Block(_)
    ));
    assert_eq!(
        run("TRUNCATE t", &Context::default(), &scoped).verdict,
        Verdict::Forward
    );
}

#[test]
fn override_comment_lets_one_rule_through_and_is_recorded() {
    let d = enforce("-- ddlguard:allow truncate-table nightly staging reset\nTRUNCATE t");
    assert_eq!(d.verdict, Verdict::Forward);
    assert_eq!(
        d.findings[0].allowed_by_comment.as_deref(),
        Some("nightly staging reset")
    );
    assert!(
        d.notices[0].contains("allowed by comment"),
        "{:?}",
        d.notices
    );
    assert_eq!(d.overrides.len(), 1);
    // The comment names another rule: no effect.
    let d = enforce("-- ddlguard:allow cluster because\nTRUNCATE t");
    assert!(matches!(d.verdict, Verdict::Block(_)));
}

#[test]
fn concurrent_sequences_in_a_transaction_block_or_defer() {
    let tx = Context {
        in_transaction: true,
        ..Context::default()
    };
    let d = run("CREATE INDEX i ON t (a)", &tx, &PolicySettings::default());
    let Verdict::Block(r) = &d.verdict else {
        panic!("{:?}", d.verdict)
    };
    assert_eq!(r.rule, "create-index-nonconcurrent");
    for tool in [
        "disable_ddl_transaction!",
        "atomic = False",
        "executeInTransaction=false",
        "-- no-transaction",
        "Prisma",
    ] {
        assert!(r.hint.contains(tool), "{tool}: {}", r.hint);
    }
    let after = PolicySettings {
        in_transaction: InTransaction::AfterCommit,
        ..PolicySettings::default()
    };
    let d = run("CREATE INDEX i ON t (a)", &tx, &after);
    assert!(
        matches!(&d.verdict, Verdict::DeferAfterCommit(p) if p.tag == "CREATE INDEX"),
        "{:?}",
        d.verdict
    );
    let d = run("CREATE INDEX CONCURRENTLY i ON t (a)", &tx, &after);
    assert!(matches!(&d.verdict, Verdict::Block(r) if r.rule == "concurrently-in-transaction"));
}

#[test]
fn statements_tell_the_gate_what_they_create_and_lock() {
    let st = Statement::new("CREATE TABLE n (id bigint)");
    assert_eq!(st.created_tables()[0].name, "n");
    let st = Statement::new("ALTER TABLE a ADD COLUMN x int");
    assert_eq!(st.exclusive_tables()[0].name, "a");
    assert!(Statement::new("SELECT 1").exclusive_tables().is_empty());
}

#[test]
fn two_rewrites_in_one_statement_ask_for_a_split() {
    let d = enforce("ALTER TABLE t ADD CHECK (a > 0), ALTER COLUMN b SET NOT NULL");
    let Verdict::Block(r) = &d.verdict else {
        panic!("{:?}", d.verdict)
    };
    assert!(r.hint.contains("split"), "{}", r.hint);
}

#[test]
fn usage_aware_blocks_name_the_clients() {
    let ctx = used("orders");
    let d = run("DROP TABLE orders", &ctx, &PolicySettings::default());
    let Verdict::Block(r) = &d.verdict else {
        panic!("{:?}", d.verdict)
    };
    assert_eq!(r.rule, "drop-table-in-use");
    assert!(r.detail.contains("billing@reporter"), "{}", r.detail);
    assert!(
        r.detail.contains("2026-11-28T03:00:00.000Z"),
        "{}",
        r.detail
    );
    let _ = UsedBy("x");
    assert_eq!(enforce("DROP TABLE orders").verdict, Verdict::Forward);
}

#[test]
fn no_statement_text_makes_the_policy_panic() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/analysis_corpus.toml");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let corpus: toml::Value = toml::from_str(&text).unwrap_or(toml::Value::Integer(0));
    let mut sqls: Vec<String> = corpus
        .get("case")
        .and_then(|c| c.as_array())
        .map(|cases| {
            cases
                .iter()
                .filter_map(|c| c.get("sql")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert!(sqls.len() > 20, "the corpus was not read");
    let ddl = "ALTER TABLE \"Ü\".t ADD CONSTRAINT c FOREIGN KEY (a) REFERENCES o (id), ALTER COLUMN b SET NOT NULL; -- ddlguard:allow x y\nREINDEX (VERBOSE) TABLE CONCURRENTLY s.t; CREATE FUNCTION f() AS $$ x $$";
    for end in (0..=ddl.len()).filter(|i| ddl.is_char_boundary(*i)) {
        sqls.push(ddl[..end].to_string());
    }
    let tx = Context {
        in_transaction: true,
        wrote_rows: true,
        ..Context::default()
    };
    for sql in &sqls {
        for ctx in [&Context::default(), &tx] {
            let _ = decide(&Statement::new(sql), ctx, &PolicySettings::default());
        }
    }
}

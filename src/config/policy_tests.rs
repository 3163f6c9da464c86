//! `[policy]` as `proxy.toml` parses it: errors name file, line and key.

use crate::config::Config;
use crate::policy::{Action, InTransaction, Mode, Session};
use std::path::Path;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(Path::new("proxy.toml"), text).map_err(|e| e.to_string())
}

#[test]
fn policy_section_parses_with_overrides_and_scopes() {
    let c = parse(
        "[policy]\nmode = \"warn\"\nin_transaction = \"after-commit\"\nsmall_table_rows = 5\n\n[policy.rules]\n\"truncate-table\" = \"allow\"\n\n[[policy.scope]]\nuser = \"migrator\"\nmode = \"enforce\"\n",
    )
    .unwrap();
    let p = &c.policy;
    assert_eq!(p.mode, Mode::Warn);
    assert_eq!(p.in_transaction, InTransaction::AfterCommit);
    assert_eq!(p.small_table_rows, 5);
    assert_eq!(p.rules.get("truncate-table"), Some(&Action::Allow));
    let migrator = Session {
        user: "migrator".into(),
        ..Session::default()
    };
    assert_eq!(p.mode_for(&migrator), Mode::Enforce);
    assert_eq!(p.mode_for(&Session::default()), Mode::Warn);
    assert_eq!(parse("").unwrap().policy.mode, Mode::Enforce);
}

#[test]
fn unknown_rule_ids_name_file_line_and_key() {
    let err = parse("[policy]\nmode = \"enforce\"\n\n[policy.rules]\n\"create-index-nonconcurent\" = \"warn\"\n")
        .unwrap_err();
    assert!(
        err.starts_with("proxy.toml:5: key `policy.rules.create-index-nonconcurent`"),
        "{err}"
    );
    assert!(err.contains("unknown rule"), "{err}");
    let err = parse("[policy.rules]\n\"truncate-table\" = \"rewrite\"\n").unwrap_err();
    assert!(
        err.starts_with("proxy.toml:2: key `policy.rules.truncate-table`"),
        "{err}"
    );
    let err = parse("[policy]\nmode = \"strict\"\n").unwrap_err();
    assert!(err.starts_with("proxy.toml:2: key `policy.mode`"), "{err}");
    let err = parse("[[policy.scope]]\nmode = \"warn\"\n").unwrap_err();
    assert!(err.contains("policy.scope"), "{err}");
}

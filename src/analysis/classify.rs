//! The lexical DDL classifier: what a statement is and which object it
//! targets, from its leading keywords. It covers what sqlparser cannot parse
//! (DESIGN section 5), so that DDL never escapes the policy because the
//! parser failed.

use super::model::{RelationName, StatementKind};

/// What the leading keywords say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// Statement kind.
    pub kind: StatementKind,
    /// Normalized leading command, e.g. `alter table`, `create index`.
    pub command: String,
    /// The relation the command targets, when the keywords name one.
    pub target: Option<RelationName>,
    /// `CONCURRENTLY` appears in the command.
    pub concurrently: bool,
}

/// Classifies one statement from its fingerprint text (already lower-cased,
/// comments and literals removed).
pub fn classify(fingerprint: &str) -> Classified {
    let words: Vec<&str> = fingerprint
        .split(|c: char| c.is_whitespace() || c == '(' || c == ';')
        .filter(|w| !w.is_empty())
        .collect();
    let first = words.first().copied().unwrap_or("");
    let kind = match first {
        "select" | "values" | "table" => StatementKind::Read,
        "with" => {
            if words
                .iter()
                .any(|w| matches!(*w, "insert" | "update" | "delete" | "merge"))
            {
                StatementKind::Write
            } else {
                StatementKind::Read
            }
        }
        "insert" | "update" | "delete" | "merge" | "copy" | "truncate" => StatementKind::Write,
        "create" | "alter" | "drop" | "reindex" | "cluster" | "vacuum" | "analyze" | "comment"
        | "grant" | "revoke" | "refresh" | "security" => StatementKind::Ddl,
        "begin" | "start" | "commit" | "end" | "rollback" | "abort" | "savepoint" | "release"
        | "prepare"
            if !(first == "prepare" && words.get(1) != Some(&"transaction")) =>
        {
            StatementKind::Transaction
        }
        _ => StatementKind::Utility,
    };
    let concurrently = words.contains(&"concurrently");
    let skip = |w: &&str| {
        matches!(
            *w,
            "if" | "not"
                | "exists"
                | "only"
                | "concurrently"
                | "unique"
                | "verbose"
                | "table"
                | "index"
                | "materialized"
                | "view"
                | "sequence"
                | "system"
                | "database"
                | "schema"
                | "("
                | "unlogged"
                | "temporary"
                | "temp"
                | "analyze"
                | "full"
                | "freeze"
        )
    };
    let mut command = first.to_string();
    let mut target = None;
    match first {
        "table" => target = words.get(1).map(|w| relation(w)),
        "alter" | "drop" | "create" | "reindex" | "truncate" | "lock" | "cluster" | "vacuum"
        | "analyze" | "refresh" => {
            let object = words
                .iter()
                .skip(1)
                .find(|w| {
                    !matches!(
                        **w,
                        "unique"
                            | "concurrently"
                            | "unlogged"
                            | "temporary"
                            | "temp"
                            | "or"
                            | "replace"
                    )
                })
                .copied()
                .unwrap_or("");
            if matches!(
                object,
                "table" | "index" | "view" | "materialized" | "sequence"
            ) {
                command = format!("{first} {object}");
            }
            let rest: Vec<&str> = words.iter().skip(1).copied().collect();
            target = if first == "create" && object == "index" {
                // create index [name] on [only] table
                rest.iter()
                    .position(|w| *w == "on")
                    .and_then(|i| rest[i + 1..].iter().find(|w| !skip(w)))
                    .map(|w| relation(w))
            } else {
                rest.iter().find(|w| !skip(w)).map(|w| relation(w))
            };
        }
        _ => {}
    }
    Classified {
        kind,
        command,
        target,
        concurrently,
    }
}

fn relation(word: &str) -> RelationName {
    let word = word.trim_end_matches([',', ')']);
    let unquote = |s: &str| {
        s.strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .map(|s| s.replace("\"\"", "\""))
            .unwrap_or_else(|| s.to_string())
    };
    match word.split_once('.') {
        Some((schema, name)) => RelationName {
            schema: Some(unquote(schema)),
            name: unquote(name),
        },
        None => RelationName {
            schema: None,
            name: unquote(word),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fingerprint;

    fn c(sql: &str) -> Classified {
        classify(&fingerprint(sql).text)
    }

    #[test]
    fn ddl_targets_are_found_without_the_parser() {
        let x = c("DROP INDEX CONCURRENTLY IF EXISTS idx_users_email");
        assert_eq!(
            (x.kind, x.command.as_str(), x.concurrently),
            (StatementKind::Ddl, "drop index", true)
        );
        assert_eq!(x.target.unwrap().name, "idx_users_email");
        let x = c("CREATE UNIQUE INDEX CONCURRENTLY idx ON ONLY public.users (email)");
        assert_eq!(x.command, "create index");
        assert_eq!(
            x.target,
            Some(RelationName {
                schema: Some("public".into()),
                name: "users".into()
            })
        );
        let x = c("ALTER TABLE \"Orders\" SET TABLESPACE fast");
        assert_eq!(x.target.unwrap().name, "Orders");
        assert_eq!(c("REINDEX TABLE users").target.unwrap().name, "users");
        assert_eq!(c("CLUSTER users USING users_pkey").kind, StatementKind::Ddl);
    }

    #[test]
    fn dml_and_transactions() {
        assert_eq!(
            c("with x as (delete from t returning *) select * from x").kind,
            StatementKind::Write
        );
        assert_eq!(
            c("WITH x AS (SELECT 1) SELECT * FROM x").kind,
            StatementKind::Read
        );
        assert_eq!(c("BEGIN").kind, StatementKind::Transaction);
        assert_eq!(c("SHOW work_mem").kind, StatementKind::Utility);
        assert_eq!(c("PREPARE q AS SELECT 1").kind, StatementKind::Utility);
    }
}

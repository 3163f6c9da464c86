//! The fallback for text sqlparser 0.64 cannot parse (REINDEX, CLUSTER,
//! `DROP INDEX CONCURRENTLY`, `SET TABLESPACE`, `ALTER DOMAIN`, ...), and
//! the one place that uses the lexical classifier `crate::analysis::classify`
//! (its API is being refined: keep every use of it in this file).

use super::statement::{Name, ObjectKind, Op};
use super::tokens::Tok;
use crate::analysis::StatementKind;

/// What the lexical classifier says about a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    /// Broad class.
    pub kind: StatementKind,
    /// Leading command (`alter table`, `reindex`, ...).
    pub command: String,
}

/// Adapter over `crate::analysis::classify::classify`.
pub fn classify(sql: &str) -> Class {
    let fp = crate::analysis::fingerprint(sql);
    let c = crate::analysis::classify::classify(&fp.text);
    Class {
        kind: c.kind,
        command: c.command,
    }
}

/// Reads `name` or `schema.name` at `i`; returns it and the next index.
pub fn name_at(t: &[Tok], i: usize) -> Option<(Name, usize)> {
    let first = t.get(i)?;
    if !first.quoted
        && !first
            .text
            .starts_with(|c: char| c.is_alphanumeric() || c == '_')
    {
        return None;
    }
    if t.get(i + 1).is_some_and(|d| d.text == ".") {
        let second = t.get(i + 2)?;
        return Some((
            Name {
                schema: Some(first.text.clone()),
                name: second.text.clone(),
            },
            i + 3,
        ));
    }
    Some((
        Name {
            schema: None,
            name: first.text.clone(),
        },
        i + 1,
    ))
}

fn skip(t: &[Tok], mut i: usize, words: &[&str]) -> usize {
    while t.get(i).is_some_and(|w| words.iter().any(|k| w.is(k))) {
        i += 1;
    }
    i
}

fn has(t: &[Tok], kw: &str) -> bool {
    t.iter().any(|w| w.is(kw))
}

fn pos(t: &[Tok], kw: &str) -> Option<usize> {
    t.iter().position(|w| w.is(kw))
}

fn kind_of(word: &str) -> ObjectKind {
    match word {
        "table" => ObjectKind::Table,
        "view" => ObjectKind::View,
        "materialized" => ObjectKind::MaterializedView,
        "index" => ObjectKind::Index,
        "sequence" => ObjectKind::Sequence,
        "function" | "procedure" | "aggregate" | "routine" => ObjectKind::Function,
        "type" | "domain" => ObjectKind::Type,
        "schema" => ObjectKind::Schema,
        "extension" => ObjectKind::Extension,
        "database" => ObjectKind::Database,
        _ => ObjectKind::Other,
    }
}

/// Facts from tokens alone, for the statements sqlparser refuses.
pub fn facts(t: &[Tok]) -> Vec<Op> {
    let word = |i: usize| t.get(i).map(|w| w.text.as_str()).unwrap_or("");
    match word(0) {
        "reindex" => {
            let mut i = 1;
            if word(i) == "(" {
                while i < t.len() && word(i) != ")" {
                    i += 1;
                }
                i += 1;
            }
            let kind = word(i).to_string();
            let i = i + 1;
            let concurrently = word(i) == "concurrently";
            let target = name_at(t, if concurrently { i + 1 } else { i }).map(|n| n.0);
            vec![Op::Reindex {
                kind,
                target,
                concurrently,
            }]
        }
        "cluster" => {
            let i = skip(t, 1, &["verbose"]);
            vec![Op::Cluster {
                table: name_at(t, i).map(|n| n.0),
            }]
        }
        "vacuum" if has(t, "full") => {
            let mut i = 1;
            if word(i) == "(" {
                while i < t.len() && word(i) != ")" {
                    i += 1;
                }
                i += 1;
            }
            let i = skip(t, i, &["full", "freeze", "verbose", "analyze"]);
            vec![Op::VacuumFull {
                table: name_at(t, i).map(|n| n.0),
            }]
        }
        "drop" if word(1) == "index" => {
            let concurrently = word(2) == "concurrently";
            let i = skip(t, 2, &["concurrently"]);
            let if_exists = word(i) == "if";
            let mut i = skip(t, i, &["if", "exists"]);
            let mut names = Vec::new();
            while let Some((n, next)) = name_at(t, i) {
                names.push(n);
                if word(next) != "," {
                    i = next;
                    break;
                }
                i = next + 1;
            }
            vec![Op::DropIndex {
                names,
                concurrently,
                if_exists,
                cascade: word(i) == "cascade",
            }]
        }
        "alter" => alter(t),
        _ => Vec::new(),
    }
}

fn alter(t: &[Tok]) -> Vec<Op> {
    let word = |i: usize| t.get(i).map(|w| w.text.as_str()).unwrap_or("");
    let kind = kind_of(word(1));
    let start = if kind == ObjectKind::MaterializedView {
        3
    } else {
        2
    };
    let i = skip(t, start, &["if", "exists", "only"]);
    let Some((name, _)) = name_at(t, i) else {
        return Vec::new();
    };
    if let Some(p) = pos(t, "set").filter(|p| word(p + 1) == "schema") {
        return vec![Op::SetSchema {
            kind,
            name,
            schema: word(p + 2).to_string(),
        }];
    }
    if let Some(p) = pos(t, "rename").filter(|p| word(p + 1) == "to") {
        return vec![Op::Rename {
            kind,
            name,
            to: word(p + 2).to_string(),
        }];
    }
    if word(1) == "domain" && word(i + 1) == "add" {
        let constraint = (word(i + 2) == "constraint").then(|| word(i + 3).to_string());
        return vec![Op::DomainAddConstraint {
            domain: name,
            constraint,
            not_valid: has(t, "valid") && has(t, "not"),
        }];
    }
    if kind != ObjectKind::Table {
        return Vec::new();
    }
    let mut ops = Vec::new();
    if let Some(p) = pos(t, "tablespace").filter(|p| *p > 0 && word(p - 1) == "set") {
        let _ = p;
        ops.push(Op::SetTablespace {
            table: name.clone(),
        });
    }
    // ALTER [COLUMN] c { DROP IDENTITY | SET GENERATED | RESTART | DROP EXPRESSION }
    let mut k = 0;
    while k < t.len() {
        if t[k].is("alter") && k > 0 {
            let c = if word(k + 1) == "column" {
                k + 2
            } else {
                k + 1
            };
            let column = word(c).to_string();
            let (a, b) = (word(c + 1), word(c + 2));
            match (a, b) {
                ("drop", "identity") | ("set", "generated") | ("restart", _) => {
                    ops.push(Op::AlterIdentity {
                        table: name.clone(),
                        column,
                    })
                }
                ("add", "generated") => ops.push(Op::AlterIdentity {
                    table: name.clone(),
                    column,
                }),
                ("drop", "expression") => ops.push(Op::DropExpression {
                    table: name.clone(),
                    column,
                }),
                ("drop", "default") => ops.push(Op::DropDefault {
                    table: name.clone(),
                    column,
                }),
                ("drop", "not") => ops.push(Op::DropNotNull {
                    table: name.clone(),
                    column,
                }),
                ("set", "not") => ops.push(Op::SetNotNull {
                    table: name.clone(),
                    column,
                }),
                _ => {}
            }
        }
        k += 1;
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tokens::lex;

    #[test]
    fn unparsable_ddl_still_gives_facts() {
        assert_eq!(
            facts(&lex("REINDEX (VERBOSE) TABLE CONCURRENTLY public.t")),
            vec![Op::Reindex {
                kind: "table".into(),
                target: Some(Name {
                    schema: Some("public".into()),
                    name: "t".into()
                }),
                concurrently: true
            }]
        );
        assert!(matches!(
            facts(&lex("DROP INDEX CONCURRENTLY IF EXISTS a")).as_slice(),
            [Op::DropIndex {
                concurrently: true,
                if_exists: true,
                ..
            }]
        ));
        assert!(matches!(
            facts(&lex("ALTER TABLE t SET TABLESPACE fast")).as_slice(),
            [Op::SetTablespace { .. }]
        ));
        assert!(matches!(
            facts(&lex(
                "ALTER DOMAIN d ADD CONSTRAINT c CHECK (VALUE > 0) NOT VALID"
            ))
            .as_slice(),
            [Op::DomainAddConstraint {
                not_valid: true,
                ..
            }]
        ));
        assert!(matches!(
            facts(&lex("ALTER SEQUENCE s RENAME TO w")).as_slice(),
            [Op::Rename {
                kind: ObjectKind::Sequence,
                ..
            }]
        ));
        assert!(matches!(
            facts(&lex("ALTER TABLE t ALTER COLUMN a DROP IDENTITY")).as_slice(),
            [Op::AlterIdentity { .. }]
        ));
        assert_eq!(classify("CLUSTER t").kind, StatementKind::Maintenance);
    }
}

//! Postgres' table lock modes, their conflicts, and which lock a DDL
//! statement takes (from the lexical classifier), so that only statements
//! stronger than SHARE UPDATE EXCLUSIVE are guarded.

use crate::analysis::classify::{Classified, ObjectKind};
use crate::analysis::RelationName;

/// A table-level lock mode, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockMode {
    /// SELECT.
    AccessShare,
    /// SELECT FOR UPDATE/SHARE.
    RowShare,
    /// INSERT, UPDATE, DELETE.
    RowExclusive,
    /// VACUUM, ANALYZE, CREATE INDEX CONCURRENTLY, VALIDATE CONSTRAINT.
    ShareUpdateExclusive,
    /// CREATE INDEX.
    Share,
    /// CREATE TRIGGER, ADD FOREIGN KEY.
    ShareRowExclusive,
    /// REFRESH MATERIALIZED VIEW CONCURRENTLY.
    Exclusive,
    /// Most ALTER TABLE forms, DROP, TRUNCATE, VACUUM FULL, CLUSTER.
    AccessExclusive,
}

impl LockMode {
    /// The mode as `pg_locks.mode` names it.
    pub fn from_pg_name(name: &str) -> Option<LockMode> {
        Some(match name {
            "AccessShareLock" => LockMode::AccessShare,
            "RowShareLock" => LockMode::RowShare,
            "RowExclusiveLock" => LockMode::RowExclusive,
            "ShareUpdateExclusiveLock" => LockMode::ShareUpdateExclusive,
            "ShareLock" => LockMode::Share,
            "ShareRowExclusiveLock" => LockMode::ShareRowExclusive,
            "ExclusiveLock" => LockMode::Exclusive,
            "AccessExclusiveLock" => LockMode::AccessExclusive,
            _ => return None,
        })
    }

    /// The mode in SQL words (`ACCESS EXCLUSIVE`).
    pub fn as_sql(self) -> &'static str {
        match self {
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowShare => "ROW SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// True when a session holding `self` makes one asking for `other` wait
    /// (Postgres' conflict table, which is symmetric).
    pub fn conflicts_with(self, other: LockMode) -> bool {
        use LockMode::*;
        let (a, b) = if self <= other {
            (self, other)
        } else {
            (other, self)
        };
        match a {
            AccessShare => b == AccessExclusive,
            RowShare => b >= Exclusive,
            RowExclusive => b >= Share,
            ShareUpdateExclusive => true,
            Share => b != Share,
            ShareRowExclusive | Exclusive | AccessExclusive => true,
        }
    }

    /// True for the locks worth guarding: stronger than SHARE UPDATE
    /// EXCLUSIVE, so that normal reads or writes queue behind them.
    pub fn is_strong(self) -> bool {
        self > LockMode::ShareUpdateExclusive
    }
}

#[cfg(test)]
mod tests {
    use super::LockMode::*;
    use super::*;

    #[test]
    fn conflict_table_matches_postgres() {
        let all = [
            AccessShare,
            RowShare,
            RowExclusive,
            ShareUpdateExclusive,
            Share,
            ShareRowExclusive,
            Exclusive,
            AccessExclusive,
        ];
        // Rows of the table in the Postgres manual (13.3.1), X = conflict.
        let table = [
            "_______X", "______XX", "____XXXX", "___XXXXX", "__XX_XXX", "__XXXXXX", "_XXXXXXX",
            "XXXXXXXX",
        ];
        for (i, a) in all.iter().enumerate() {
            for (j, b) in all.iter().enumerate() {
                let want = table[i].as_bytes()[j] == b'X';
                assert_eq!(a.conflicts_with(*b), want, "{a:?} vs {b:?}");
            }
        }
        assert!(Share.is_strong() && !ShareUpdateExclusive.is_strong());
        assert_eq!(LockMode::from_pg_name("ShareLock"), Some(Share));
    }
}

/// True for the long builds that take no blocking lock (CREATE INDEX and
/// REINDEX CONCURRENTLY, ALTER TABLE ... VALIDATE CONSTRAINT): they may run
/// for hours without hurting traffic, so the client's statement_timeout is
/// not theirs (`policy.build_statement_timeout`).
pub fn is_long_build(c: &Classified) -> bool {
    match (c.verb(), c.object) {
        ("create", ObjectKind::Index) | ("reindex", _) => c.concurrently,
        ("alter", ObjectKind::Table) => c.action.as_deref() == Some("validate constraint"),
        _ => false,
    }
}

/// The lock a statement takes on the relations it names, when that lock is
/// stronger than SHARE UPDATE EXCLUSIVE (the statements worth guarding),
/// with those relations. `None` for everything else.
pub fn strong_lock(c: &Classified) -> Option<(LockMode, Vec<RelationName>)> {
    let text = c.text.as_str();
    let object_relation = matches!(
        c.object,
        ObjectKind::Table
            | ObjectKind::ForeignTable
            | ObjectKind::View
            | ObjectKind::MaterializedView
            | ObjectKind::Sequence
            | ObjectKind::Index
    );
    let mode = match (c.verb(), c.object) {
        ("create", ObjectKind::Index) if !c.concurrently => LockMode::Share,
        ("create", ObjectKind::Trigger | ObjectKind::Policy) => LockMode::ShareRowExclusive,
        ("create", ObjectKind::Rule) => LockMode::AccessExclusive,
        ("drop", ObjectKind::Trigger | ObjectKind::Rule | ObjectKind::Policy) => {
            LockMode::AccessExclusive
        }
        ("drop", _) if object_relation && !c.concurrently => LockMode::AccessExclusive,
        ("alter", ObjectKind::Table) => match c.action.as_deref() {
            Some("validate constraint") | Some("attach partition") => return None,
            Some("detach partition") if c.concurrently => return None,
            Some("alter column") if text.contains(" set statistics ") => return None,
            Some(a) if a.starts_with("add") && text.contains(" foreign key") => {
                LockMode::ShareRowExclusive
            }
            Some(_) => LockMode::AccessExclusive,
            None => return None,
        },
        ("alter", _) if object_relation && c.action.is_some() => LockMode::AccessExclusive,
        ("truncate" | "cluster", _) => LockMode::AccessExclusive,
        ("vacuum", _) if text.split_whitespace().any(|w| w == "full") => LockMode::AccessExclusive,
        ("reindex", _) if !c.concurrently => LockMode::AccessExclusive,
        ("refresh", _) if c.concurrently => LockMode::Exclusive,
        ("refresh", _) => LockMode::AccessExclusive,
        ("lock", _) => lock_table_mode(text),
        _ => return None,
    };
    if !mode.is_strong() {
        return None;
    }
    let mut targets: Vec<RelationName> = Vec::new();
    // A CREATE names the new object; only its ON table exists already.
    let names_exist = c.verb() != "create";
    let names_relations = object_relation
        || matches!(
            c.verb(),
            "truncate" | "lock" | "cluster" | "vacuum" | "reindex" | "refresh"
        );
    if names_exist && names_relations {
        targets.extend(c.names.iter().cloned());
    }
    targets.extend(c.on.iter().cloned());
    Some((mode, targets))
}

/// The mode of `LOCK [TABLE] t IN <mode> MODE` (ACCESS EXCLUSIVE without one).
fn lock_table_mode(text: &str) -> LockMode {
    let Some(at) = text.find(" in ") else {
        return LockMode::AccessExclusive;
    };
    let words: Vec<&str> = text[at + 4..]
        .split_whitespace()
        .take_while(|w| *w != "mode")
        .collect();
    match words.join(" ").as_str() {
        "access share" => LockMode::AccessShare,
        "row share" => LockMode::RowShare,
        "row exclusive" => LockMode::RowExclusive,
        "share update exclusive" => LockMode::ShareUpdateExclusive,
        "share" => LockMode::Share,
        "share row exclusive" => LockMode::ShareRowExclusive,
        "exclusive" => LockMode::Exclusive,
        _ => LockMode::AccessExclusive,
    }
}

#[cfg(test)]
mod statement_tests {
    use super::*;
    use crate::analysis::classify::classify;
    use crate::analysis::fingerprint;

    fn lock(sql: &str) -> Option<(LockMode, Vec<String>)> {
        strong_lock(&classify(&fingerprint(sql).text))
            .map(|(m, t)| (m, t.iter().map(|r| r.to_string()).collect()))
    }

    #[test]
    fn statements_and_their_locks() {
        use LockMode::*;
        type Case<'a> = (&'a str, Option<(LockMode, &'a [&'a str])>);
        let cases: &[Case] = &[
            (
                "ALTER TABLE users ADD COLUMN c int",
                Some((AccessExclusive, &["users"])),
            ),
            (
                "alter table only public.users alter column c type bigint",
                Some((AccessExclusive, &["public.users"])),
            ),
            (
                "ALTER TABLE users ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES t (id)",
                Some((ShareRowExclusive, &["users"])),
            ),
            ("ALTER TABLE users VALIDATE CONSTRAINT f", None),
            ("ALTER TABLE users ALTER COLUMN c SET STATISTICS 100", None),
            ("ALTER TABLE p DETACH PARTITION c CONCURRENTLY", None),
            ("CREATE INDEX i ON users (email)", Some((Share, &["users"]))),
            ("CREATE UNIQUE INDEX CONCURRENTLY i ON users (email)", None),
            (
                "CREATE TRIGGER t BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION f()",
                Some((ShareRowExclusive, &["users"])),
            ),
            (
                "DROP TABLE users, audit",
                Some((AccessExclusive, &["users", "audit"])),
            ),
            (
                "DROP INDEX users_email_idx",
                Some((AccessExclusive, &["users_email_idx"])),
            ),
            ("DROP INDEX CONCURRENTLY users_email_idx", None),
            ("TRUNCATE users", Some((AccessExclusive, &["users"]))),
            ("LOCK TABLE users IN SHARE MODE", Some((Share, &["users"]))),
            ("LOCK users IN ACCESS SHARE MODE", None),
            ("VACUUM FULL users", Some((AccessExclusive, &["users"]))),
            ("VACUUM users", None),
            ("REINDEX TABLE users", Some((AccessExclusive, &["users"]))),
            ("REINDEX TABLE CONCURRENTLY users", None),
            (
                "REFRESH MATERIALIZED VIEW mv",
                Some((AccessExclusive, &["mv"])),
            ),
            ("CREATE TABLE t (id int)", None),
            (
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'",
                None,
            ),
            ("COMMENT ON TABLE users IS 'x'", None),
            ("SELECT 1", None),
        ];
        for (sql, want) in cases {
            let want = want.map(|(m, t)| (m, t.iter().map(|s| s.to_string()).collect::<Vec<_>>()));
            assert_eq!(lock(sql), want, "{sql}");
        }
    }

    #[test]
    fn long_builds_are_the_concurrent_ones_and_validate() {
        let build = |sql: &str| is_long_build(&classify(&fingerprint(sql).text));
        assert!(build("CREATE INDEX CONCURRENTLY i ON t (a)"));
        assert!(build(
            "create unique index concurrently if not exists i on t (a)"
        ));
        assert!(build("REINDEX INDEX CONCURRENTLY i"));
        assert!(build("ALTER TABLE t VALIDATE CONSTRAINT c"));
        assert!(!build("CREATE INDEX i ON t (a)"));
        assert!(!build("REINDEX TABLE t"));
        assert!(!build("ALTER TABLE t ADD COLUMN c int"));
        assert!(!build("SELECT 1"));
    }
}

//! Postgres' table lock modes, their conflicts, and which lock a DDL
//! statement takes (from the lexical classifier), so that only statements
//! stronger than SHARE UPDATE EXCLUSIVE are guarded.

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

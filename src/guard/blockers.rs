//! The sessions that hold (or wait for) a lock on a DDL's tables: found by
//! a query on the DDL's own connection, named to the client in notices and
//! in the final error, with a fingerprint of what they run (never the
//! literal text).

use super::lock::LockMode;
use crate::analysis::fingerprint;

/// One session in the way of a DDL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// Backend pid.
    pub pid: String,
    /// Its application_name.
    pub application_name: String,
    /// Its user.
    pub user: String,
    /// Its client address (`local` for a Unix socket).
    pub client_addr: String,
    /// `active`, `idle in transaction`, ...
    pub state: String,
    /// Age of its transaction in milliseconds.
    pub transaction_ms: u64,
    /// Fingerprint of its last query.
    pub fingerprint: String,
    /// Whether it holds the lock (else it waits for one, ahead of the DDL).
    pub granted: bool,
    /// Milliseconds since its state last changed (how long it has been
    /// `idle in transaction`, for one in that state).
    pub state_ms: u64,
}

impl Blocker {
    /// True when it sits `idle in transaction` (also aborted) for longer
    /// than `limit`: nothing of it runs, it only holds locks.
    pub fn idle_in_transaction_longer_than(&self, limit: std::time::Duration) -> bool {
        self.state.starts_with("idle in transaction") && self.state_ms > limit.as_millis() as u64
    }
}

impl Blocker {
    /// One line for a notice or an error DETAIL.
    pub fn describe(&self) -> String {
        let app = if self.application_name.is_empty() {
            "(no application_name)".to_string()
        } else {
            format!("application_name {:?}", self.application_name)
        };
        format!(
            "pid {} ({app}, user {:?}, {}, {}{}, transaction open {:.1}s, last query: {})",
            self.pid,
            self.user,
            self.client_addr,
            self.state,
            if self.granted {
                ""
            } else {
                ", waiting for its own lock"
            },
            self.transaction_ms as f64 / 1000.0,
            self.fingerprint
        )
    }
}

/// A relation name as an SQL string literal of its quoted identifiers
/// (`E'"public"."users"'`), for `to_regclass`. An `E''` literal with both
/// quotes and backslashes escaped reads the same whatever the session's
/// `standard_conforming_strings`.
pub fn regclass_literal(schema: Option<&str>, name: &str) -> String {
    let ident = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let qualified = match schema {
        Some(s) => format!("{}.{}", ident(s), ident(name)),
        None => ident(name),
    };
    format!(
        "E'{}'",
        qualified.replace('\\', "\\\\").replace('\'', "\\'")
    )
}

/// The query listing sessions that hold or wait for a lock on `targets`
/// (from [`regclass_literal`]; an index counts with its table) inside a
/// transaction at least `min_age_ms` old. Columns: pid, application_name,
/// user, client address, state, transaction age in ms, query, modes,
/// granted, ms since the state changed.
pub fn query(targets: &[String], min_age_ms: u64) -> String {
    let list = if targets.is_empty() {
        "NULL::regclass".to_string()
    } else {
        targets
            .iter()
            .map(|t| format!("to_regclass({t})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "WITH t(oid) AS (SELECT c FROM unnest(ARRAY[{list}]) c WHERE c IS NOT NULL), \
         r(oid) AS (SELECT oid FROM t UNION SELECT indrelid FROM pg_index WHERE indexrelid IN (SELECT oid FROM t)) \
         SELECT a.pid::text, coalesce(a.application_name, ''), coalesce(a.usename::text, ''), \
         coalesce(host(a.client_addr), 'local'), coalesce(a.state, ''), \
         coalesce(floor(extract(epoch FROM clock_timestamp() - a.xact_start) * 1000)::bigint, 0)::text, \
         coalesce(a.query, ''), string_agg(DISTINCT l.mode, ','), bool_or(l.granted)::text, \
         coalesce(floor(extract(epoch FROM clock_timestamp() - a.state_change) * 1000)::bigint, 0)::text \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'relation' AND l.relation IN (SELECT oid FROM r) \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND a.pid <> pg_backend_pid() AND a.xact_start <= clock_timestamp() - interval '{min_age_ms} milliseconds' \
         GROUP BY 1, 2, 3, 4, 5, 6, 7, 10, a.xact_start ORDER BY a.xact_start LIMIT 20"
    )
}

/// The blockers among the rows of [`query`] whose locks conflict with `mode`.
pub fn from_rows(rows: &[Vec<Option<String>>], mode: LockMode) -> Vec<Blocker> {
    let text = |r: &[Option<String>], i: usize| r.get(i).cloned().flatten().unwrap_or_default();
    rows.iter()
        .filter(|r| {
            text(r, 7)
                .split(',')
                .filter_map(LockMode::from_pg_name)
                .any(|held| held.conflicts_with(mode))
        })
        .map(|r| Blocker {
            pid: text(r, 0),
            application_name: text(r, 1),
            user: text(r, 2),
            client_addr: text(r, 3),
            state: text(r, 4),
            transaction_ms: text(r, 5).parse().unwrap_or(0),
            fingerprint: fingerprint(&text(r, 6)).text,
            granted: text(r, 8) == "true",
            state_ms: text(r, 9).parse().unwrap_or(0),
        })
        .collect()
}

/// The blockers as one sentence (at most five named).
pub fn list(blockers: &[Blocker]) -> String {
    let mut out: Vec<String> = blockers.iter().take(5).map(Blocker::describe).collect();
    if blockers.len() > 5 {
        out.push(format!("and {} more", blockers.len() - 5));
    }
    out.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(mode: &str, query: &str) -> Vec<Option<String>> {
        [
            "42",
            "report",
            "alice",
            "10.0.0.5",
            "idle in transaction",
            "35000",
            query,
            mode,
            "true",
            "31000",
        ]
        .iter()
        .map(|s| Some(s.to_string()))
        .collect()
    }

    #[test]
    fn only_conflicting_locks_block_and_queries_are_fingerprinted() {
        let rows = vec![row(
            "AccessShareLock",
            "select * from users where email = 'a@b.c'",
        )];
        let b = from_rows(&rows, LockMode::AccessExclusive);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].fingerprint, "select * from users where email = $1");
        let line = b[0].describe();
        assert!(
            line.contains("pid 42") && line.contains("\"report\"") && line.contains("35.0s"),
            "{line}"
        );
        assert!(!line.contains("a@b.c"));
        assert!(b[0].idle_in_transaction_longer_than(std::time::Duration::from_secs(30)));
        assert!(!b[0].idle_in_transaction_longer_than(std::time::Duration::from_secs(40)));
        // A reader does not block CREATE INDEX (SHARE); a writer does.
        assert!(from_rows(&rows, LockMode::Share).is_empty());
        assert_eq!(
            from_rows(&[row("RowExclusiveLock", "update t")], LockMode::Share).len(),
            1
        );
    }

    #[test]
    fn names_are_quoted_for_to_regclass() {
        assert_eq!(
            regclass_literal(Some("public"), "users"),
            r#"E'"public"."users"'"#
        );
        // Quotes and backslashes are escaped whatever standard_conforming_strings says.
        assert_eq!(
            regclass_literal(None, r#"it's \"x""#),
            r#"E'"it\'s \\""x"""'"#
        );
        let q = query(&[regclass_literal(None, "users")], 1000);
        assert!(q.contains(r#"to_regclass(E'"users"')"#) && q.contains("'1000 milliseconds'"));
        assert!(
            q.contains("clock_timestamp()"),
            "ages from the statement's own clock"
        );
    }
}

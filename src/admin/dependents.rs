//! "Who still depends on this table or column?" — one row per client
//! identity, with the contract's JSON shape (DESIGN section 7).

use crate::analysis::Dependency;
use crate::usage::UsageRow;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

/// One client that depended on the object within the window.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Dependent {
    /// Client application_name.
    pub application_name: String,
    /// Login role.
    pub user: String,
    /// Database.
    pub database: String,
    /// Client IP address.
    pub client_addr: String,
    /// `explicit` (named the column) or `implicit` (`*`, INSERT without a column list, ...).
    pub dependency: &'static str,
    /// Executions that depended on it.
    pub calls: u64,
    /// First such execution, RFC 3339.
    pub first_seen: String,
    /// Last such execution, RFC 3339.
    pub last_seen: String,
    /// First such execution, ms since the Unix epoch.
    #[serde(skip)]
    pub first_seen_ms: u64,
    /// Last such execution, ms since the Unix epoch.
    #[serde(skip)]
    pub last_seen_ms: u64,
    /// A fingerprint of such a statement (the most executed one).
    pub fingerprint: String,
}

/// What to look up: `table` or `schema.table`, optionally a column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Schema (`public` unless written).
    pub schema: String,
    /// Table.
    pub table: String,
    /// Column, if asked.
    pub column: Option<String>,
}

impl Target {
    /// Parses `table`, `schema.table` (and a separate column).
    pub fn new(table: &str, column: Option<&str>) -> Target {
        let (schema, table) = match table.split_once('.') {
            Some((s, t)) => (s.to_string(), t.to_string()),
            None => ("public".to_string(), table.to_string()),
        };
        Target {
            schema,
            table,
            column: column.filter(|c| !c.is_empty()).map(str::to_string),
        }
    }

    /// Parses `table.column` or `schema.table.column` as the CLI and console write it;
    /// a two-part name is read as table.column.
    pub fn parse_dotted(spec: &str) -> Target {
        let parts: Vec<&str> = spec.split('.').collect();
        match parts.as_slice() {
            [t] => Target::new(t, None),
            [t, c] => Target::new(t, Some(c)),
            [s, t, c, ..] => Target::new(&format!("{s}.{t}"), Some(c)),
            [] => Target::new("", None),
        }
    }
}

/// The last instant RFC 3339 can write (9999-12-31T23:59:59.999Z), ms.
pub const MAX_TIME_MS: u64 = 253_402_300_799_999;

/// Milliseconds since the epoch as RFC 3339 (UTC, milliseconds); times
/// past year 9999 (a corrupt store row) are clamped, never a panic.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms.min(MAX_TIME_MS)))
        .to_string()
}

/// Whether `row` is a dependency on `target`, and of which kind.
fn matches(row: &UsageRow, target: &Target) -> Option<Dependency> {
    let on_table = row
        .schema
        .split('|')
        .zip(row.table.split('|'))
        .any(|(s, t)| s == target.schema && t == target.table);
    if !on_table {
        return None;
    }
    match (&target.column, &row.column) {
        (Some(want), Some(col)) if want == col => Some(Dependency::Explicit),
        (Some(_), None) if row.dependency == Dependency::Implicit => Some(Dependency::Implicit),
        (Some(_), _) => None,
        // For a table, all its columns count.
        (None, Some(_)) => Some(Dependency::Explicit),
        (None, None) => Some(row.dependency),
    }
}

/// Dependents of `target` among `rows` last seen at or after `since_ms`.
pub fn dependents(rows: &[UsageRow], target: &Target, since_ms: u64) -> Vec<Dependent> {
    struct Acc {
        explicit: bool,
        calls_by_fp: BTreeMap<(u64, String), (u64, String)>,
        first: u64,
        last: u64,
    }
    let mut by_client: BTreeMap<(String, String, String, String), Acc> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.last_seen_ms >= since_ms) {
        let Some(dep) = matches(row, target) else {
            continue;
        };
        let c = &row.client;
        let key = (
            c.application_name.clone(),
            c.user.clone(),
            c.database.clone(),
            c.client_addr.clone(),
        );
        let acc = by_client.entry(key).or_insert(Acc {
            explicit: false,
            calls_by_fp: BTreeMap::new(),
            first: u64::MAX,
            last: 0,
        });
        acc.explicit |= dep == Dependency::Explicit;
        // One statement shape may name several columns: count its calls
        // once (per search_path it ran under: those are separate entries).
        acc.calls_by_fp
            .entry((row.fingerprint_id, row.search_path.clone()))
            .or_insert((row.calls, row.fingerprint.clone()));
        acc.first = acc.first.min(row.first_seen_ms);
        acc.last = acc.last.max(row.last_seen_ms);
    }
    by_client
        .into_iter()
        .map(|((app, user, db, addr), acc)| {
            let sample = acc
                .calls_by_fp
                .values()
                .max_by_key(|(calls, _)| *calls)
                .map(|(_, fp)| fp.clone())
                .unwrap_or_default();
            Dependent {
                application_name: app,
                user,
                database: db,
                client_addr: addr,
                dependency: if acc.explicit { "explicit" } else { "implicit" },
                calls: acc.calls_by_fp.values().map(|(c, _)| c).sum(),
                first_seen: rfc3339(acc.first),
                last_seen: rfc3339(acc.last),
                first_seen_ms: acc.first,
                last_seen_ms: acc.last,
                fingerprint: sample,
            }
        })
        .collect()
}

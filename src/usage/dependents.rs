//! "Who still depends on this table or column?" — one row per client
//! identity (the dependents report gives it the JSON shape of DESIGN
//! section 7).

use crate::analysis::Dependency;
use crate::usage::{ClientIdentity, UsageRow};
use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

/// One client that depended on the object within the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependent {
    /// The client identity.
    pub client: ClientIdentity,
    /// `explicit` when some statement named the column (or, for a table,
    /// any of its columns), else `implicit` (`*`, INSERT without a column
    /// list, ...). The DESIGN section 7 contract's key.
    pub dependency: &'static str,
    /// The client also (or only) depended on it implicitly: a use that
    /// breaks on a column drop or reorder even when `dependency` says
    /// `explicit`.
    pub implicit: bool,
    /// A fingerprint of an implicit use (the most executed one), if any.
    pub implicit_fingerprint: Option<String>,
    /// Executions that depended on it.
    pub calls: u64,
    /// First such execution, ms since the Unix epoch.
    pub first_seen_ms: u64,
    /// Last such execution, ms since the Unix epoch.
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

impl Target {
    /// Whether `row` is a use of this table or column, and of which kind
    /// (for a column, `*` and the like count as implicit uses). A column
    /// the catalog could not resolve to one table is no use of any table
    /// (see `may_be_used_by`).
    pub fn dependency_of(&self, row: &UsageRow) -> Option<Dependency> {
        if !row.is_resolved() || row.schema != self.schema || row.table != self.table {
            return None;
        }
        self.column_dependency(row)
    }

    /// Whether `row` is an unresolved column use that may belong to this
    /// table or column (the table is one of its candidates): it goes to the
    /// reports' "could not resolve" list.
    pub fn may_be_used_by(&self, row: &UsageRow) -> bool {
        !row.is_resolved()
            && row
                .relations()
                .iter()
                .any(|(s, t)| *s == self.schema && *t == self.table)
            && self.column_dependency(row).is_some()
    }

    fn column_dependency(&self, row: &UsageRow) -> Option<Dependency> {
        match (&self.column, &row.column) {
            (Some(want), Some(col)) if want == col => Some(Dependency::Explicit),
            (Some(_), None) if row.dependency == Dependency::Implicit => Some(Dependency::Implicit),
            (Some(_), _) => None,
            // For a table, all its columns count.
            (None, Some(_)) => Some(Dependency::Explicit),
            (None, None) => Some(row.dependency),
        }
    }
}

/// Dependents of `target` among `rows` last seen at or after `since_ms`.
pub fn dependents(rows: &[UsageRow], target: &Target, since_ms: u64) -> Vec<Dependent> {
    /// Calls and a sample fingerprint per (fingerprint id, search_path).
    type ByShape = BTreeMap<(u64, String), (u64, String)>;
    struct Acc {
        explicit: bool,
        calls_by_fp: ByShape,
        implicit_by_fp: ByShape,
        first: u64,
        last: u64,
    }
    let mut by_client: BTreeMap<ClientIdentity, Acc> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.last_seen_ms >= since_ms) {
        let Some(dep) = target.dependency_of(row) else {
            continue;
        };
        let acc = by_client.entry(row.client.clone()).or_insert(Acc {
            explicit: false,
            calls_by_fp: BTreeMap::new(),
            implicit_by_fp: BTreeMap::new(),
            first: u64::MAX,
            last: 0,
        });
        acc.explicit |= dep == Dependency::Explicit;
        // One statement shape may name several columns: count its calls
        // once (per search_path it ran under: those are separate entries).
        let key = (row.fingerprint_id, row.search_path.clone());
        let value = (row.calls, row.fingerprint.clone());
        if dep == Dependency::Implicit {
            acc.implicit_by_fp
                .entry(key.clone())
                .or_insert(value.clone());
        }
        acc.calls_by_fp.entry(key).or_insert(value);
        acc.first = acc.first.min(row.first_seen_ms);
        acc.last = acc.last.max(row.last_seen_ms);
    }
    let sample = |by: &ByShape| {
        by.values()
            .max_by_key(|(calls, _)| *calls)
            .map(|(_, fp)| fp.clone())
    };
    by_client
        .into_iter()
        .map(|(client, acc)| Dependent {
            client,
            dependency: if acc.explicit { "explicit" } else { "implicit" },
            implicit: !acc.implicit_by_fp.is_empty(),
            implicit_fingerprint: sample(&acc.implicit_by_fp),
            calls: acc.calls_by_fp.values().map(|(c, _)| c).sum(),
            first_seen_ms: acc.first,
            last_seen_ms: acc.last,
            fingerprint: sample(&acc.calls_by_fp).unwrap_or_default(),
        })
        .collect()
}

//! The DDL log in the store: table `ddlguard_ddl`, one row per DDL event,
//! in both stores (SQLite and `postgres://`). Rows are written by the
//! proxy that recorded the event, again when its impact changes, and read
//! back at start (the log survives restarts) and after each flush (a fleet
//! sharing a `postgres://` store sees every proxy's rows). `updated_ms`
//! says which rows changed since a proxy last read.

use super::postgres::PostgresStore;
use super::sqlite::{blocking, SqliteStore};
use super::StoreError;
use crate::usage::ddl_log::{DdlEvent, DdlNotes, RuleHit};
use crate::usage::impact::{Impact, ImpactState, WindowStats};
use crate::usage::ClientIdentity;
use serde_json::{json, Value};

/// What a column holds.
#[derive(Clone, Copy)]
enum Kind {
    /// A count, a time or a duration (`bigint`).
    Int,
    /// Text, never NULL.
    Text,
    /// Text or NULL.
    OptText,
}

use Kind::{Int, OptText, Text};

/// The table's columns, in the order rows are written and read.
const COLUMNS: &[(&str, Kind)] = &[
    ("id", Text),
    ("at_ms", Int),
    ("updated_ms", Int),
    ("application_name", Text),
    ("user_name", Text),
    ("database_name", Text),
    ("client_addr", Text),
    ("command", Text),
    ("object", Text),
    ("target", OptText),
    ("on_relation", OptText),
    ("fingerprint", Text),
    // `ok` or the SQLSTATE.
    ("outcome", Text),
    ("duration_us", Int),
    ("action", Text),
    // JSON: [{"rule", "action", "allowed_by_comment"}].
    ("rules", Text),
    ("attempts", Int),
    ("preflight_wait_ms", Int),
    ("lock_wait_ms", Int),
    // JSON arrays of text.
    ("blockers", Text),
    ("terminated", Text),
    // `none`, `partial` or `complete`.
    ("impact", Text),
    ("before_calls", Int),
    ("before_errors", Int),
    ("before_p50_us", Int),
    ("before_p99_us", Int),
    ("during_calls", Int),
    ("during_errors", Int),
    ("during_p50_us", Int),
    ("during_p99_us", Int),
    ("after_calls", Int),
    ("after_errors", Int),
    ("after_p50_us", Int),
    ("after_p99_us", Int),
];

/// `CREATE TABLE` for a dialect's integer and text types.
fn create_table(int: &str, text: &str) -> String {
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|(name, kind)| match kind {
            Int => format!("    {name} {int} NOT NULL"),
            Text => format!("    {name} {text} NOT NULL"),
            OptText => format!("    {name} {text}"),
        })
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS ddlguard_ddl (\n{},\n    PRIMARY KEY (id)\n);\n\
         CREATE INDEX IF NOT EXISTS ddlguard_ddl_updated ON ddlguard_ddl (updated_ms);\n\
         CREATE INDEX IF NOT EXISTS ddlguard_ddl_at ON ddlguard_ddl (at_ms);\n",
        columns.join(",\n")
    )
}

/// The SQLite table (run when the file is opened).
pub(super) fn sqlite_schema() -> String {
    create_table("INTEGER", "TEXT")
}

/// The Postgres table, created under the store's advisory lock: proxies
/// starting together do not race.
pub(super) fn postgres_schema() -> String {
    format!(
        "BEGIN;\nSELECT pg_advisory_xact_lock(7140512351);\n{}COMMIT;\n",
        create_table("bigint", "text")
    )
}

/// Insert, or replace a row written before (the impact grows).
fn upsert(placeholder: impl Fn(usize) -> String) -> String {
    let names: Vec<&str> = COLUMNS.iter().map(|(n, _)| *n).collect();
    let values: Vec<String> = (1..=COLUMNS.len()).map(placeholder).collect();
    let set: Vec<String> = names[1..]
        .iter()
        .map(|n| format!("{n} = excluded.{n}"))
        .collect();
    format!(
        "INSERT INTO ddlguard_ddl ({}) VALUES ({}) ON CONFLICT (id) DO UPDATE SET {}",
        names.join(", "),
        values.join(", "),
        set.join(", ")
    )
}

/// The newest rows changed at or after the first parameter, at most the
/// second parameter of them.
fn select(since: &str, limit: &str) -> String {
    let names: Vec<&str> = COLUMNS.iter().map(|(n, _)| *n).collect();
    format!(
        "SELECT {} FROM ddlguard_ddl WHERE updated_ms >= {since} ORDER BY at_ms DESC LIMIT {limit}",
        names.join(", ")
    )
}

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Int(i64),
    Text(String),
    OptText(Option<String>),
}

fn int(n: u64) -> Cell {
    Cell::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn window_cells(w: &WindowStats) -> [Cell; 4] {
    [int(w.calls), int(w.errors), int(w.p50_us), int(w.p99_us)]
}

/// The row of `e`, in [`COLUMNS`] order.
fn row_of(e: &DdlEvent, updated_ms: u64) -> Vec<Cell> {
    let n = &e.notes;
    let rules: Vec<Value> = n
        .rules
        .iter()
        .map(|r| json!({"rule": r.rule, "action": r.action, "allowed_by_comment": r.allowed_by_comment}))
        .collect();
    let mut row = vec![
        Cell::Text(e.id.clone()),
        int(e.at_ms),
        int(updated_ms),
        Cell::Text(e.client.application_name.clone()),
        Cell::Text(e.client.user.clone()),
        Cell::Text(e.client.database.clone()),
        Cell::Text(e.client.client_addr.clone()),
        Cell::Text(e.command.clone()),
        Cell::Text(e.object.clone()),
        Cell::OptText(e.target.clone()),
        Cell::OptText(e.on.clone()),
        Cell::Text(e.fingerprint.clone()),
        Cell::Text(e.outcome().to_string()),
        int(e.duration_us),
        Cell::Text(n.action.clone()),
        Cell::Text(Value::Array(rules).to_string()),
        int(u64::from(n.attempts)),
        int(n.preflight_wait_ms),
        int(n.lock_wait_ms),
        Cell::Text(json!(n.blockers).to_string()),
        Cell::Text(json!(n.terminated).to_string()),
        Cell::Text(e.impact.state.as_str().to_string()),
    ];
    for w in [&e.impact.before, &e.impact.during, &e.impact.after] {
        row.extend(window_cells(w));
    }
    row
}

/// A JSON array of text; anything else reads as empty (a row edited by
/// hand must not stop the log from loading).
fn texts(json: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(json).unwrap_or_default()
}

fn rule_hits(json: &str) -> Vec<RuleHit> {
    let Ok(Value::Array(list)) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|v| {
            Some(RuleHit {
                rule: v.get("rule")?.as_str()?.to_string(),
                action: v.get("action")?.as_str()?.to_string(),
                allowed_by_comment: v
                    .get("allowed_by_comment")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            })
        })
        .collect()
}

/// Reads the columns of one row by position (both drivers' rows).
trait Columns {
    type Error;
    fn int(&self, i: usize) -> Result<i64, Self::Error>;
    fn text(&self, i: usize) -> Result<String, Self::Error>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error>;

    fn count(&self, i: usize) -> Result<u64, Self::Error> {
        Ok(u64::try_from(self.int(i)?).unwrap_or(0))
    }

    fn window(&self, i: usize) -> Result<WindowStats, Self::Error> {
        Ok(WindowStats {
            calls: self.count(i)?,
            errors: self.count(i + 1)?,
            p50_us: self.count(i + 2)?,
            p99_us: self.count(i + 3)?,
        })
    }

    /// The event of a row read with [`select`].
    fn event(&self) -> Result<DdlEvent, Self::Error> {
        let outcome = self.text(12)?;
        Ok(DdlEvent {
            id: self.text(0)?,
            at_ms: self.count(1)?,
            client: ClientIdentity {
                application_name: self.text(3)?,
                user: self.text(4)?,
                database: self.text(5)?,
                client_addr: self.text(6)?,
            },
            command: self.text(7)?,
            object: self.text(8)?,
            target: self.opt_text(9)?,
            on: self.opt_text(10)?,
            fingerprint: self.text(11)?,
            error: (outcome != "ok").then_some(outcome),
            duration_us: self.count(13)?,
            notes: DdlNotes {
                action: self.text(14)?,
                rules: rule_hits(&self.text(15)?),
                attempts: u32::try_from(self.int(16)?).unwrap_or(0),
                preflight_wait_ms: self.count(17)?,
                lock_wait_ms: self.count(18)?,
                blockers: texts(&self.text(19)?),
                terminated: texts(&self.text(20)?),
            },
            impact: Impact {
                state: ImpactState::parse(&self.text(21)?),
                before: self.window(22)?,
                during: self.window(26)?,
                after: self.window(30)?,
            },
        })
    }
}

impl Columns for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        self.get(i)
    }
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn opt_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
}

impl Columns for tokio_postgres::Row {
    type Error = tokio_postgres::Error;
    fn int(&self, i: usize) -> Result<i64, tokio_postgres::Error> {
        self.try_get(i)
    }
    fn text(&self, i: usize) -> Result<String, tokio_postgres::Error> {
        self.try_get(i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, tokio_postgres::Error> {
        self.try_get(i)
    }
}

impl rusqlite::ToSql for Cell {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Cell::Int(n) => n.to_sql(),
            Cell::Text(t) => t.to_sql(),
            Cell::OptText(t) => t.to_sql(),
        }
    }
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl SqliteStore {
    /// Writes (or rewrites) events, in one transaction.
    pub async fn write_ddl(&self, events: Vec<DdlEvent>, now_ms: u64) -> Result<(), StoreError> {
        let conn = self.conn.clone();
        blocking(&self.path, move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare(&upsert(|i| format!("?{i}")))?;
                for e in &events {
                    stmt.execute(rusqlite::params_from_iter(row_of(e, now_ms)))?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// The newest `limit` events changed at or after `since_ms`.
    pub async fn read_ddl(&self, since_ms: u64, limit: usize) -> Result<Vec<DdlEvent>, StoreError> {
        let conn = self.conn.clone();
        blocking(&self.path, move || {
            let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            let mut stmt = conn.prepare(&select("?1", "?2"))?;
            let since = i64::try_from(since_ms).unwrap_or(i64::MAX);
            let rows = stmt.query_map(rusqlite::params![since, limit_of(limit)], |r| r.event())?;
            rows.collect()
        })
        .await
    }
}

impl PostgresStore {
    /// Writes (or rewrites) events, in one transaction.
    pub async fn write_ddl(&self, events: Vec<DdlEvent>, now_ms: u64) -> Result<(), StoreError> {
        let mut client = self.client.lock().await;
        let tx = client.transaction().await.map_err(|e| self.err(e))?;
        let stmt = tx
            .prepare(&upsert(|i| format!("${i}")))
            .await
            .map_err(|e| self.err(e))?;
        for e in &events {
            let row = row_of(e, now_ms);
            let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = row
                .iter()
                .map(|c| -> &(dyn tokio_postgres::types::ToSql + Sync) {
                    match c {
                        Cell::Int(n) => n,
                        Cell::Text(t) => t,
                        Cell::OptText(t) => t,
                    }
                })
                .collect();
            tx.execute(&stmt, &params).await.map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// The newest `limit` events changed at or after `since_ms`.
    pub async fn read_ddl(&self, since_ms: u64, limit: usize) -> Result<Vec<DdlEvent>, StoreError> {
        let client = self.client.lock().await;
        let since = i64::try_from(since_ms).unwrap_or(i64::MAX);
        let rows = client
            .query(&select("$1", "$2"), &[&since, &limit_of(limit)])
            .await
            .map_err(|e| self.err(e))?;
        // try_get: a store table altered by hand must not panic the flusher.
        rows.iter()
            .map(|r| r.event())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event with every field set, for the stores' round-trip tests.
    fn sample_event(id: &str, at_ms: u64) -> DdlEvent {
        DdlEvent {
            id: id.into(),
            at_ms,
            client: ClientIdentity {
                application_name: "migrate".into(),
                user: "u".into(),
                database: "d".into(),
                client_addr: "10.0.0.1".into(),
            },
            command: "alter table".into(),
            object: "table".into(),
            target: Some("app.users".into()),
            on: None,
            fingerprint: "alter table app.users add column x int".into(),
            error: Some("55P03".into()),
            duration_us: 1_500_000,
            notes: DdlNotes {
                rules: vec![RuleHit {
                    rule: "add-column-volatile-default".into(),
                    action: "warn".into(),
                    allowed_by_comment: Some("ok \"quoted\"".into()),
                }],
                action: "guard".into(),
                attempts: 5,
                preflight_wait_ms: 1200,
                lock_wait_ms: 500,
                blockers: vec!["pid 7 (app) idle in transaction 12s: select * from users".into()],
                terminated: vec!["7".into()],
            },
            impact: Impact {
                before: WindowStats {
                    calls: 10,
                    errors: 1,
                    p50_us: 100,
                    p99_us: 900,
                },
                during: WindowStats {
                    calls: 3,
                    errors: 0,
                    p50_us: 2000,
                    p99_us: 90_000,
                },
                after: WindowStats::default(),
                state: ImpactState::Partial,
            },
        }
    }

    #[tokio::test]
    async fn events_round_trip_through_sqlite_and_are_rewritten_by_id() {
        let dir = std::env::temp_dir().join(format!("ddlguard-ddl-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ddl.db");
        let store = SqliteStore::open(file.clone()).await.unwrap();
        let a = sample_event("a-1", 1_000);
        let mut b = sample_event("b-1", 2_000);
        b.target = None;
        b.error = None;
        b.notes = DdlNotes::forwarded();
        b.impact = Impact::default();
        store
            .write_ddl(vec![a.clone(), b.clone()], 10)
            .await
            .unwrap();
        assert_eq!(
            store.read_ddl(0, 10).await.unwrap(),
            vec![b.clone(), a.clone()]
        );
        assert_eq!(
            store.read_ddl(0, 1).await.unwrap(),
            vec![b.clone()],
            "newest first"
        );
        // A later write replaces the row and moves its updated_ms.
        let mut a2 = a.clone();
        a2.impact.state = ImpactState::Complete;
        a2.impact.after.calls = 4;
        store.write_ddl(vec![a2.clone()], 20).await.unwrap();
        assert_eq!(store.read_ddl(15, 10).await.unwrap(), vec![a2.clone()]);
        drop(store);
        // Reopened: the rows are still there.
        let store = SqliteStore::open(file).await.unwrap();
        assert_eq!(store.read_ddl(0, 10).await.unwrap(), vec![b, a2]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_json_in_a_row_reads_as_empty() {
        assert!(texts("not json").is_empty());
        assert!(rule_hits("[{\"rule\": 3}]").is_empty());
        assert_eq!(texts("[\"a\"]"), vec!["a".to_string()]);
    }
}

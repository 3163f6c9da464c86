//! Every report as one typed table, so that the admin console (typed
//! columns psql renders) and the HTTP API (JSON objects keyed by column
//! name) answer from the same code (DESIGN section 7).

mod clients;
pub mod columns;
mod ddl;
mod dependents;
mod errors;
mod queries;
mod settings;
mod tables;
mod unresolved;
mod usage;

pub use clients::clients;
pub use ddl::ddl;
pub use dependents::dependents;
pub use errors::errors;
pub use queries::queries;
pub use settings::{config, restart_keys_changed, rules};
pub use tables::tables;
pub use unresolved::unresolved;
pub use usage::usage;

use serde_json::{Map, Value};

/// The SQL type a column is sent as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `text`.
    Text,
    /// `int8`.
    Int,
    /// `float8`.
    Float,
    /// `timestamptz` (RFC 3339 text in JSON).
    Time,
}

/// One value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
    /// A float (milliseconds of latency and the like).
    Float(f64),
    /// A time, ms since the Unix epoch.
    Time(u64),
    /// SQL NULL / JSON null.
    Null,
}

impl Cell {
    /// Text from anything string-like.
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    /// Text, or NULL when absent.
    pub fn opt_text(s: Option<impl Into<String>>) -> Cell {
        s.map(|s| Cell::Text(s.into())).unwrap_or(Cell::Null)
    }

    /// An unsigned count (saturating at i64::MAX).
    pub fn count(n: u64) -> Cell {
        Cell::Int(i64::try_from(n).unwrap_or(i64::MAX))
    }

    /// Microseconds shown as milliseconds.
    pub fn ms(us: u64) -> Cell {
        Cell::Float(us as f64 / 1000.0)
    }

    fn to_json(&self) -> Value {
        match self {
            Cell::Text(s) => Value::String(s.clone()),
            Cell::Int(n) => Value::from(*n),
            Cell::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Cell::Time(ms) => Value::String(crate::admin::dependents::rfc3339(*ms)),
            Cell::Null => Value::Null,
        }
    }
}

/// A report: named, typed columns and rows of cells in that order.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Column names and types.
    pub columns: Vec<(&'static str, ColumnType)>,
    /// Rows; each has one cell per column.
    pub rows: Vec<Vec<Cell>>,
    /// Remarks for the reader (sent as NOTICEs by the console).
    pub notices: Vec<String>,
}

impl Report {
    /// An empty report with these columns.
    pub fn new(columns: Vec<(&'static str, ColumnType)>) -> Report {
        Report {
            columns,
            rows: Vec::new(),
            notices: Vec::new(),
        }
    }

    /// Adds a row (debug builds check it has one cell per column).
    pub fn push(&mut self, row: Vec<Cell>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// The rows as a JSON array of objects keyed by column name.
    pub fn to_json(&self) -> Value {
        Value::Array(
            self.rows
                .iter()
                .map(|row| {
                    let mut obj = Map::new();
                    for ((name, _), cell) in self.columns.iter().zip(row) {
                        obj.insert((*name).to_string(), cell.to_json());
                    }
                    Value::Object(obj)
                })
                .collect(),
        )
    }
}

impl Report {
    /// Adds a row of a per-client report: the four identity columns first
    /// (`application_name`, `user`, `database`, `client_addr`), then `rest`.
    pub fn push_client(
        &mut self,
        c: &crate::usage::ClientIdentity,
        rest: impl IntoIterator<Item = Cell>,
    ) {
        let mut row = client_cells(c);
        row.extend(rest);
        self.push(row);
    }
}

/// The identity cells the per-client reports start with.
pub(crate) fn client_cells(c: &crate::usage::ClientIdentity) -> Vec<Cell> {
    vec![
        Cell::text(&c.application_name),
        Cell::text(&c.user),
        Cell::text(&c.database),
        Cell::text(&c.client_addr),
    ]
}

/// The start of a window `span` long that ends now, ms since the epoch
/// (`SINCE 'interval'`, `?since=`, and `usage.window` by default).
pub fn since_ms(span: std::time::Duration) -> u64 {
    crate::usage::now_ms().saturating_sub(span.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys_follow_columns_and_times_are_rfc3339() {
        let mut r = Report::new(vec![
            ("name", ColumnType::Text),
            ("calls", ColumnType::Int),
            ("mean_ms", ColumnType::Float),
            ("last_seen", ColumnType::Time),
            ("column", ColumnType::Text),
        ]);
        r.push(vec![
            Cell::text("a"),
            Cell::count(3),
            Cell::ms(1500),
            Cell::Time(0),
            Cell::Null,
        ]);
        assert_eq!(
            r.to_json().to_string(),
            r#"[{"calls":3,"column":null,"last_seen":"1970-01-01T00:00:00.000Z","mean_ms":1.5,"name":"a"}]"#
        );
    }
}

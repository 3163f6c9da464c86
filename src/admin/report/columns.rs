//! The columns of every report, known without running it (the extended
//! protocol describes a statement before executing it).

use super::ColumnType::{self, Float, Int, Text, Time};

/// A report's columns.
pub type Columns = &'static [(&'static str, ColumnType)];

/// `SHOW CLIENTS`
pub const CLIENTS: Columns = &[
    ("application_name", Text),
    ("user", Text),
    ("database", Text),
    ("client_addr", Text),
    ("sessions", Int),
    ("calls", Int),
    ("errors", Int),
    ("statements", Int),
    ("first_seen", Time),
    ("last_seen", Time),
    ("old_shapes", Int),
];

/// `SHOW TABLES`
pub const TABLES: Columns = &[
    ("schema", Text),
    ("table", Text),
    ("reads", Int),
    ("writes", Int),
    ("clients", Int),
    ("columns_named", Int),
    ("implicit_use", Text),
    ("row_estimate", Int),
    ("last_seen", Time),
];

/// `SHOW USAGE`
pub const USAGE: Columns = &[
    ("application_name", Text),
    ("user", Text),
    ("database", Text),
    ("client_addr", Text),
    ("schema", Text),
    ("table", Text),
    ("column", Text),
    ("mode", Text),
    ("dependency", Text),
    ("calls", Int),
    ("errors", Int),
    ("mean_ms", Float),
    ("max_ms", Float),
    ("first_seen", Time),
    ("last_seen", Time),
    ("fingerprint", Text),
];

/// `SHOW DEPENDENTS` (the DESIGN section 7 contract's keys).
pub const DEPENDENTS: Columns = &[
    ("application_name", Text),
    ("user", Text),
    ("database", Text),
    ("client_addr", Text),
    ("dependency", Text),
    ("calls", Int),
    ("first_seen", Time),
    ("last_seen", Time),
    ("fingerprint", Text),
    ("implicit_use", Text),
    ("implicit_fingerprint", Text),
];

/// `SHOW UNRESOLVED`: columns the catalog could not place in one relation.
pub const UNRESOLVED: Columns = &[
    ("application_name", Text),
    ("user", Text),
    ("database", Text),
    ("client_addr", Text),
    ("column", Text),
    ("candidates", Text),
    ("mode", Text),
    ("calls", Int),
    ("last_seen", Time),
    ("fingerprint", Text),
];

/// `SHOW QUERIES`
pub const QUERIES: Columns = &[
    ("minute", Time),
    ("scope", Text),
    ("tables", Text),
    ("kind", Text),
    ("calls", Int),
    ("mean_ms", Float),
    ("p50_ms", Float),
    ("p95_ms", Float),
    ("p99_ms", Float),
    ("max_ms", Float),
    ("fingerprint", Text),
];

/// `SHOW ERRORS`
pub const ERRORS: Columns = &[
    ("application_name", Text),
    ("user", Text),
    ("database", Text),
    ("client_addr", Text),
    ("sqlstate", Text),
    ("errors", Int),
    ("calls", Int),
    ("last_error", Time),
    ("fingerprint", Text),
];

/// `SHOW DDL`
pub const DDL: Columns = &[
    ("at", Time),
    ("application_name", Text),
    ("user", Text),
    ("database", Text),
    ("client_addr", Text),
    ("command", Text),
    ("object", Text),
    ("target", Text),
    ("on", Text),
    ("outcome", Text),
    ("duration_ms", Float),
    ("fingerprint", Text),
    ("id", Text),
    ("action", Text),
    ("rules", Text),
    ("attempts", Int),
    ("preflight_wait_ms", Int),
    ("lock_wait_ms", Int),
    ("blockers", Text),
    ("terminated", Text),
    ("impact", Text),
    ("before_calls", Int),
    ("before_errors", Int),
    ("before_p50_ms", Float),
    ("before_p99_ms", Float),
    ("during_calls", Int),
    ("during_errors", Int),
    ("during_p50_ms", Float),
    ("during_p99_ms", Float),
    ("after_calls", Int),
    ("after_errors", Int),
    ("after_p50_ms", Float),
    ("after_p99_ms", Float),
];

/// `SHOW RULES`
pub const RULES: Columns = &[
    ("rule", Text),
    ("action", Text),
    ("default", Text),
    ("category", Text),
    ("lock", Text),
    ("summary", Text),
];

/// `SHOW CONFIG`
pub const CONFIG: Columns = &[("key", Text), ("value", Text), ("applies", Text)];

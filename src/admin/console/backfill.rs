//! The console's backfill commands, on the same engine as the HTTP API:
//!
//! - `BACKFILL [(BATCH n, KEY col, MAX_RATE n, DATABASE name, ALLOW_SUBQUERY)] table SET col = expr [, ...] [WHERE condition]`
//! - `SHOW BACKFILLS`
//! - `PAUSE BACKFILL id`, `RESUME BACKFILL id`, `CANCEL BACKFILL id`
//!
//! Each answers job rows (the new or changed job, or all of them).

use crate::admin::command::CommandError;
use crate::admin::report::{Cell, ColumnType, Report};
use crate::admin::view::AdminView;
use crate::analysis::tokens::Token;
use crate::backfill::{Action, BackfillError, BackfillRequest, Job};
use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// A backfill command of the console.
#[derive(Debug, Clone, PartialEq)]
pub enum BackfillCommand {
    /// `BACKFILL ...`
    Create(Box<BackfillRequest>),
    /// `SHOW BACKFILLS`
    Show,
    /// `PAUSE|RESUME|CANCEL BACKFILL id`
    Act(u64, Action),
}

// A rate is never NaN here (the parser refuses it), so equality is total.
impl Eq for BackfillCommand {}

/// The commands, as the console's 42601 lists them.
pub const VALID: &str = "BACKFILL [(BATCH n, KEY col, MAX_RATE n, DATABASE name, ALLOW_SUBQUERY)] table SET col = expr [WHERE condition], SHOW BACKFILLS, PAUSE|RESUME|CANCEL BACKFILL id";

const USAGE: &str = "BACKFILL [(BATCH n, KEY col, MAX_RATE n, DATABASE name, ALLOW_SUBQUERY)] table SET col = expr [WHERE condition]";

/// The columns of every backfill answer.
pub const COLUMNS: &[(&str, ColumnType)] = &[
    ("id", ColumnType::Int),
    ("state", ColumnType::Text),
    ("database", ColumnType::Text),
    ("table", ColumnType::Text),
    ("key", ColumnType::Text),
    ("set", ColumnType::Text),
    ("where", ColumnType::Text),
    ("rows_done", ColumnType::Int),
    ("rows_scanned", ColumnType::Int),
    ("rows_estimated", ColumnType::Int),
    ("current_key", ColumnType::Text),
    ("rate", ColumnType::Float),
    ("eta_s", ColumnType::Float),
    ("batch_size", ColumnType::Int),
    ("pause_ms", ColumnType::Int),
    ("throttle_reason", ColumnType::Text),
    ("baseline_p95_ms", ColumnType::Float),
    ("traffic_p95_ms", ColumnType::Float),
    ("error", ColumnType::Text),
    ("created", ColumnType::Time),
    ("updated", ColumnType::Time),
];

fn syntax(message: impl Into<String>) -> CommandError {
    CommandError::Syntax(message.into())
}

/// Parses a backfill command; `Ok(None)` when `sql` is none.
pub fn parse(sql: &str) -> Result<Option<BackfillCommand>, CommandError> {
    let trimmed = sql.trim().trim_end_matches(';').trim();
    let lower = trimmed.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    match words.as_slice() {
        ["show", "backfills"] => return Ok(Some(BackfillCommand::Show)),
        [verb @ ("pause" | "resume" | "cancel"), "backfill", id] => {
            let action = match *verb {
                "pause" => Action::Pause,
                "resume" => Action::Resume,
                _ => Action::Cancel,
            };
            let id = id.parse::<u64>().map_err(|_| {
                syntax(format!(
                    "{verb} backfill needs a job id: {} BACKFILL 3",
                    verb.to_uppercase()
                ))
            })?;
            return Ok(Some(BackfillCommand::Act(id, action)));
        }
        ["pause" | "resume" | "cancel", "backfill", ..] => {
            return Err(syntax(
                "write PAUSE BACKFILL id, RESUME BACKFILL id or CANCEL BACKFILL id",
            ))
        }
        [first, ..] if *first == "backfill" || first.starts_with("backfill(") => {}
        _ => return Ok(None),
    }
    let rest = trimmed["backfill".len()..].trim_start();
    let mut req = BackfillRequest::default();
    let rest = match rest.strip_prefix('(') {
        Some(inner) => {
            let close = inner
                .find(')')
                .ok_or_else(|| syntax(format!("unclosed option list; write {USAGE}")))?;
            options(&inner[..close], &mut req)?;
            &inner[close + 1..]
        }
        None => rest,
    };
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, &format!("UPDATE {rest}"))
        .map_err(|e| syntax(format!("cannot read the backfill ({e}); write {USAGE}")))?;
    let Some(Statement::Update(u)) = statements.pop().filter(|_| statements.is_empty()) else {
        return Err(syntax(format!("one backfill per command; write {USAGE}")));
    };
    if u.from.is_some() || u.returning.is_some() || !u.table.joins.is_empty() {
        return Err(syntax(format!(
            "FROM, RETURNING and joins are not part of a backfill; write {USAGE}"
        )));
    }
    req.table = u.table.relation.to_string();
    req.set = u
        .assignments
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    req.where_clause = u.selection.as_ref().map(|w| w.to_string());
    Ok(Some(BackfillCommand::Create(Box::new(req))))
}

/// `BATCH n, KEY col, MAX_RATE n, DATABASE name, ALLOW_SUBQUERY`.
fn options(text: &str, req: &mut BackfillRequest) -> Result<(), CommandError> {
    let toks = crate::analysis::tokens::tokens(text)
        .map_err(|_| syntax(format!("unterminated quote in the options; write {USAGE}")))?;
    for option in toks.split(|t| *t == Token::Punct(',')) {
        let name = |t: Option<&Token>| match t {
            Some(Token::Word(w)) => Some(w.clone()),
            Some(Token::Ident(s)) | Some(Token::Str(s)) => Some(s.clone()),
            _ => None,
        };
        let (Some(Token::Word(key)), value) = (option.first(), option.get(1)) else {
            return Err(syntax(format!("empty option; write {USAGE}")));
        };
        let value = name(value);
        let number = |v: &Option<String>| {
            v.as_deref()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| syntax(format!("{} takes a number above 0", key.to_uppercase())))
        };
        match key.as_str() {
            "batch" => req.batch = Some(number(&value)? as usize),
            "max_rate" => req.max_rate = Some(number(&value)? as f64),
            "key" => req.key = Some(value.ok_or_else(|| syntax("KEY takes a column name"))?),
            "database" => {
                req.database = Some(value.ok_or_else(|| syntax("DATABASE takes a database name"))?)
            }
            "allow_subquery" => req.allow_subquery = true,
            other => {
                return Err(syntax(format!(
                    "unknown backfill option {other}; the options are BATCH n, KEY col, MAX_RATE n, DATABASE name, ALLOW_SUBQUERY"
                )))
            }
        }
    }
    Ok(())
}

/// Runs a backfill command on the engine (from a blocking thread of the
/// proxy's runtime) and answers job rows.
pub fn run(h: &dyn AdminView, cmd: &BackfillCommand) -> Result<Report, BackfillError> {
    let engine = h.backfills().ok_or(BackfillError::Stopped)?;
    let runtime = tokio::runtime::Handle::current();
    runtime.block_on(engine.ready());
    let jobs = match cmd {
        BackfillCommand::Show => engine.list(),
        BackfillCommand::Create(req) => vec![runtime.block_on(engine.create((**req).clone()))?],
        BackfillCommand::Act(id, action) => vec![runtime.block_on(engine.act(*id, *action))?],
    };
    Ok(report(&jobs))
}

/// Jobs as console rows.
pub fn report(jobs: &[Job]) -> Report {
    let mut r = Report::new(COLUMNS.to_vec());
    for j in jobs {
        let float = |v: Option<f64>| v.map(Cell::Float).unwrap_or(Cell::Null);
        r.push(vec![
            Cell::count(j.id),
            Cell::text(j.state.as_str()),
            Cell::text(&j.database),
            Cell::text(j.qualified_table()),
            Cell::text(&j.key),
            Cell::text(&j.set),
            Cell::text(&j.where_clause),
            Cell::count(j.rows_done),
            Cell::count(j.rows_scanned),
            Cell::count(j.rows_estimated),
            Cell::opt_text(j.current_key.clone()),
            Cell::Float((j.rate * 10.0).round() / 10.0),
            float(j.eta_seconds.map(|s| s.round())),
            Cell::count(j.batch_size),
            Cell::count(j.pause_ms),
            Cell::text(&j.throttle_reason),
            float(j.baseline_p95_ms),
            float(j.traffic_p95_ms),
            Cell::opt_text(j.error.clone()),
            Cell::Time(j.created_ms),
            Cell::Time(j.updated_ms),
        ]);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(sql: &str) -> BackfillRequest {
        match parse(sql) {
            Ok(Some(BackfillCommand::Create(r))) => *r,
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn backfill_commands_parse() {
        let r = create("BACKFILL users SET email_lower = lower(email);");
        assert_eq!(
            (r.table.as_str(), r.set.as_str()),
            ("users", "email_lower = lower(email)")
        );
        assert_eq!(r.where_clause, None);
        let r = create(
            "backfill (batch 500, key id, max_rate 2000, database app, allow_subquery) app.\"Users\" SET a = 1, b = b * 2 WHERE a IS NULL",
        );
        assert_eq!(r.table, "app.\"Users\"");
        assert_eq!(r.set, "a = 1, b = b * 2");
        assert_eq!(r.where_clause.as_deref(), Some("a IS NULL"));
        assert_eq!(
            (r.batch, r.key.as_deref(), r.max_rate),
            (Some(500), Some("id"), Some(2000.0))
        );
        assert_eq!(
            (r.database.as_deref(), r.allow_subquery),
            (Some("app"), true)
        );
        assert_eq!(parse("SHOW BACKFILLS"), Ok(Some(BackfillCommand::Show)));
        assert_eq!(
            parse("pause backfill 3;"),
            Ok(Some(BackfillCommand::Act(3, Action::Pause)))
        );
        assert_eq!(
            parse("CANCEL BACKFILL 12"),
            Ok(Some(BackfillCommand::Act(12, Action::Cancel)))
        );
        assert_eq!(parse("SHOW CLIENTS"), Ok(None));
    }

    #[test]
    fn backfill_mistakes_are_syntax_errors() {
        for bad in [
            "BACKFILL users",
            "BACKFILL (batch 0) users SET a = 1",
            "BACKFILL (speed 3) users SET a = 1",
            "BACKFILL (batch 5 users SET a = 1",
            "BACKFILL users SET a = 1 FROM other",
            "BACKFILL users SET a = 1; DROP TABLE users",
            "RESUME BACKFILL",
            "RESUME BACKFILL three",
        ] {
            assert!(
                matches!(parse(bad), Err(CommandError::Syntax(_))),
                "{bad}: {:?}",
                parse(bad)
            );
        }
    }
}

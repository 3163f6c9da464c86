//! The admin console's commands and their grammar (DESIGN section 7).

use super::dependents::Target;
use super::report::page::{Page, PageError, MAX_LIMIT};
use crate::analysis::tokens::Token;
use std::time::Duration;
use thiserror::Error;

/// One console command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `SHOW CLIENTS`
    Clients,
    /// `SHOW TABLES`
    Tables,
    /// `SHOW USAGE [table[.column]]`
    Usage(Option<Target>),
    /// `SHOW DEPENDENTS table[.column] [SINCE 'interval']`
    Dependents(Target, Option<Duration>),
    /// `SHOW UNRESOLVED [table[.column]]`
    Unresolved(Option<Target>),
    /// `SHOW QUERIES [table]`
    Queries(Option<Target>),
    /// `SHOW ERRORS [SINCE 'interval']`
    Errors(Option<Duration>),
    /// `SHOW DDL [SINCE 'interval']`
    Ddl(Option<Duration>),
    /// `SHOW RULES`
    Rules,
    /// `SHOW CONFIG`
    Config,
    /// `RELOAD`
    Reload,
    /// `SET ...`: accepted and ignored, as drivers send some on connect.
    Set,
}

/// One console command with the page of rows it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// What to run.
    pub command: Command,
    /// `[LIMIT n] [AFTER 'cursor']` (default: the first 1000 rows).
    pub page: Page,
}

/// The commands, as the 42601 error lists them.
pub const VALID: &str = "SHOW CLIENTS, SHOW TABLES, SHOW USAGE [table[.column]], \
SHOW DEPENDENTS table[.column] [SINCE 'interval'], SHOW QUERIES [table], \
SHOW ERRORS [SINCE 'interval'], SHOW UNRESOLVED [table[.column]], SHOW DDL [SINCE 'interval'], SHOW RULES, SHOW CONFIG, RELOAD; \
a SHOW takes [LIMIT n] [AFTER 'cursor'] at its end";

/// Why a command was not understood (SQLSTATE 42601).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CommandError {
    /// Not a console command at all.
    #[error("unknown admin console command {0:?}")]
    Unknown(String),
    /// A known command written wrong.
    #[error("{0}")]
    Syntax(String),
}

/// The command's tokens; statement separators are dropped (one command
/// per Query, a trailing `;` allowed).
fn tokens(sql: &str) -> Result<Vec<Token>, CommandError> {
    let toks = crate::analysis::tokens::tokens(sql).map_err(|u| {
        let what = if u.quote == '"' {
            "quoted name"
        } else {
            "string"
        };
        CommandError::Syntax(format!("unterminated {what} in {sql:?}"))
    })?;
    Ok(toks
        .into_iter()
        .filter(|t| *t != Token::Punct(';'))
        .collect())
}

/// Reads `name[.name[.name]]` starting at `i`; returns the parts and the
/// next index. Unquoted names fold to lower case, quoted ones keep case.
fn name(toks: &[Token], mut i: usize) -> (Vec<String>, usize) {
    let mut parts = Vec::new();
    loop {
        match toks.get(i) {
            // A leading SINCE starts the clause, it is not a name.
            Some(Token::Word(w)) if !(parts.is_empty() && w == "since") => parts.push(w.clone()),
            Some(Token::Ident(s)) => parts.push(s.clone()),
            _ => break,
        }
        i += 1;
        if toks.get(i) == Some(&Token::Punct('.')) {
            i += 1;
        } else {
            break;
        }
    }
    (parts, i)
}

fn target(parts: &[String], with_column: bool) -> Option<Target> {
    let t = |schema: Option<&String>, table: &String, column: Option<&String>| Target {
        schema: schema.cloned().unwrap_or_else(|| "public".into()),
        table: table.clone(),
        column: column.cloned(),
    };
    match (parts, with_column) {
        ([table], _) => Some(t(None, table, None)),
        ([table, column], true) => Some(t(None, table, Some(column))),
        ([schema, table], false) => Some(t(Some(schema), table, None)),
        ([schema, table, column], true) => Some(t(Some(schema), table, Some(column))),
        _ => None,
    }
}

/// Parses an interval as Postgres or humans write it: `'1 hour'`,
/// `'30 minutes'`, `'2h'`, `'1 day 2 hours'`, `'01:30:00'`.
pub fn parse_interval(text: &str) -> Result<Duration, CommandError> {
    let t = text.trim();
    let hms: Vec<&str> = t.split(':').collect();
    if hms.len() == 3 {
        let n: Vec<u64> = hms.iter().filter_map(|p| p.trim().parse().ok()).collect();
        if n.len() == 3 {
            return n[0]
                .checked_mul(3600)
                .and_then(|h| h.checked_add(n[1].checked_mul(60)?))
                .and_then(|hm| hm.checked_add(n[2]))
                .map(Duration::from_secs)
                .ok_or_else(|| CommandError::Syntax(format!("interval {text:?} is too long")));
        }
    }
    // humantime wants "1hour 30min": join each number to its unit.
    let mut joined = String::new();
    for word in t.split_whitespace() {
        if !joined.is_empty() && !joined.ends_with(|c: char| c.is_ascii_digit()) {
            joined.push(' ');
        }
        joined.push_str(word);
    }
    humantime::parse_duration(&joined).map_err(|e| {
        CommandError::Syntax(format!(
            "invalid interval {text:?} ({e}); write e.g. '30 minutes', '1 hour', '7 days'"
        ))
    })
}

fn since(toks: &[Token], i: usize, usage: &str) -> Result<(Option<Duration>, usize), CommandError> {
    match toks.get(i) {
        None => Ok((None, i)),
        Some(Token::Word(w)) if w == "since" => match toks.get(i + 1) {
            Some(Token::Str(s)) => Ok((Some(parse_interval(s)?), i + 2)),
            _ => Err(CommandError::Syntax(format!(
                "SINCE needs a quoted interval: {usage}"
            ))),
        },
        Some(t) => Err(unexpected(t, usage)),
    }
}

fn unexpected(t: &Token, usage: &str) -> CommandError {
    let word = match t {
        Token::Word(w) => w.clone(),
        Token::Ident(s) => format!("\"{s}\""),
        Token::Str(s) => format!("'{s}'"),
        Token::Punct(c) => c.to_string(),
    };
    CommandError::Syntax(format!("unexpected {word}; write {usage}"))
}

fn done(toks: &[Token], i: usize, usage: &str) -> Result<(), CommandError> {
    match toks.get(i) {
        Some(t) => Err(unexpected(t, usage)),
        None => Ok(()),
    }
}

fn too_many_parts(parts: &[String], usage: &str) -> CommandError {
    CommandError::Syntax(format!(
        "{:?} has too many dotted parts; write {usage}",
        parts.join(".")
    ))
}

/// An optional `table[.column]` (or `[schema.]table`) after `SHOW X`, and
/// nothing after it.
fn optional_target(
    toks: &[Token],
    with_column: bool,
    usage: &str,
) -> Result<Option<Target>, CommandError> {
    let (parts, i) = name(toks, 2);
    done(toks, i, usage)?;
    if parts.is_empty() {
        return Ok(None);
    }
    target(&parts, with_column)
        .map(Some)
        .ok_or_else(|| too_many_parts(&parts, usage))
}

/// Removes trailing `LIMIT n` and `AFTER 'cursor'` (in either order).
fn page_clauses(toks: &mut Vec<Token>) -> Result<Page, CommandError> {
    let (mut limit, mut after) = (None, None);
    while toks.len() >= 4 {
        let n = toks.len();
        match (&toks[n - 2], &toks[n - 1]) {
            (Token::Word(w), Token::Word(v)) if w == "limit" && limit.is_none() => {
                limit = Some(v.parse::<usize>().map_err(|_| {
                    CommandError::Syntax(format!(
                        "LIMIT needs a number of rows between 1 and {MAX_LIMIT}"
                    ))
                })?);
            }
            (Token::Word(w), Token::Str(c)) if w == "after" && after.is_none() => {
                after = Some(c.clone());
            }
            _ => break,
        }
        toks.truncate(n - 2);
    }
    Page::parse(limit, after.as_deref()).map_err(|e| {
        CommandError::Syntax(match e {
            PageError::Limit => format!("LIMIT needs a number of rows between 1 and {MAX_LIMIT}"),
            PageError::Cursor => "AFTER needs a cursor from a previous NOTICE".to_string(),
        })
    })
}

/// Parses one console command.
pub fn parse(sql: &str) -> Result<Command, CommandError> {
    parse_request(sql).map(|r| r.command)
}

/// Parses one console command and its page clauses.
pub fn parse_request(sql: &str) -> Result<Request, CommandError> {
    let mut toks = tokens(sql)?;
    let page = if matches!(toks.first(), Some(Token::Word(w)) if w == "show") {
        page_clauses(&mut toks)?
    } else {
        Page::default()
    };
    parse_tokens(sql, &toks).map(|command| Request { command, page })
}

fn parse_tokens(sql: &str, toks: &[Token]) -> Result<Command, CommandError> {
    let word = |i: usize| match toks.get(i) {
        Some(Token::Word(w)) => Some(w.as_str()),
        _ => None,
    };
    let unknown = || CommandError::Unknown(sql.trim().to_string());
    match (word(0), word(1)) {
        (Some("reload"), None) if toks.len() == 1 => Ok(Command::Reload),
        (Some("set"), _) => Ok(Command::Set),
        (Some("show"), Some(what)) => {
            let simple = |c: Command, usage: &str| done(toks, 2, usage).map(|_| c);
            match what {
                "clients" => simple(Command::Clients, "SHOW CLIENTS"),
                "tables" => simple(Command::Tables, "SHOW TABLES"),
                "rules" => simple(Command::Rules, "SHOW RULES"),
                "config" => simple(Command::Config, "SHOW CONFIG"),
                "usage" => {
                    optional_target(toks, true, "SHOW USAGE [table[.column]]").map(Command::Usage)
                }
                "unresolved" => optional_target(toks, true, "SHOW UNRESOLVED [table[.column]]")
                    .map(Command::Unresolved),
                "queries" => {
                    optional_target(toks, false, "SHOW QUERIES [table]").map(Command::Queries)
                }
                "dependents" => {
                    let usage = "SHOW DEPENDENTS table[.column] [SINCE 'interval']";
                    let (parts, i) = name(toks, 2);
                    if parts.is_empty() {
                        return Err(CommandError::Syntax(format!("which table? write {usage}")));
                    }
                    let t = target(&parts, true).ok_or_else(|| too_many_parts(&parts, usage))?;
                    let (interval, i) = since(toks, i, usage)?;
                    done(toks, i, usage)?;
                    Ok(Command::Dependents(t, interval))
                }
                "errors" => {
                    let usage = "SHOW ERRORS [SINCE 'interval']";
                    let (interval, i) = since(toks, 2, usage)?;
                    done(toks, i, usage)?;
                    Ok(Command::Errors(interval))
                }
                "ddl" => {
                    let usage = "SHOW DDL [SINCE 'interval']";
                    let (interval, i) = since(toks, 2, usage)?;
                    done(toks, i, usage)?;
                    Ok(Command::Ddl(interval))
                }
                _ => Err(unknown()),
            }
        }
        _ => Err(unknown()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(schema: &str, table: &str, column: Option<&str>) -> Target {
        Target {
            schema: schema.into(),
            table: table.into(),
            column: column.map(Into::into),
        }
    }

    #[test]
    fn every_command_parses() {
        assert_eq!(parse("SHOW CLIENTS;"), Ok(Command::Clients));
        assert_eq!(parse("show tables"), Ok(Command::Tables));
        assert_eq!(parse("SHOW USAGE"), Ok(Command::Usage(None)));
        assert_eq!(
            parse("SHOW UNRESOLVED j1_tbl.i"),
            Ok(Command::Unresolved(Some(t("public", "j1_tbl", Some("i")))))
        );
        assert_eq!(
            parse("SHOW USAGE users.email"),
            Ok(Command::Usage(Some(t("public", "users", Some("email")))))
        );
        assert_eq!(
            parse("SHOW USAGE billing.invoices.amount"),
            Ok(Command::Usage(Some(t(
                "billing",
                "invoices",
                Some("amount")
            ))))
        );
        assert_eq!(
            parse("SHOW DEPENDENTS \"Users\".\"Email\" SINCE '1 hour'"),
            Ok(Command::Dependents(
                t("public", "Users", Some("Email")),
                Some(Duration::from_secs(3600))
            ))
        );
        assert_eq!(
            parse("SHOW DEPENDENTS users"),
            Ok(Command::Dependents(t("public", "users", None), None))
        );
        assert_eq!(
            parse("SHOW QUERIES app.users"),
            Ok(Command::Queries(Some(t("app", "users", None))))
        );
        assert_eq!(parse("SHOW QUERIES"), Ok(Command::Queries(None)));
        assert_eq!(
            parse("SHOW ERRORS SINCE '30 minutes'"),
            Ok(Command::Errors(Some(Duration::from_secs(1800))))
        );
        assert_eq!(parse("SHOW ERRORS"), Ok(Command::Errors(None)));
        assert_eq!(parse("SHOW DDL"), Ok(Command::Ddl(None)));
        assert_eq!(
            parse("SHOW DDL SINCE '2 hours'"),
            Ok(Command::Ddl(Some(Duration::from_secs(7200))))
        );
        assert!(parse("SHOW DDL users").is_err());
        assert_eq!(parse("SHOW RULES"), Ok(Command::Rules));
        assert_eq!(parse("SHOW CONFIG"), Ok(Command::Config));
        assert_eq!(parse("RELOAD;"), Ok(Command::Reload));
        assert_eq!(parse("SET extra_float_digits = 3"), Ok(Command::Set));
    }

    #[test]
    fn mistakes_are_reported() {
        assert!(matches!(parse("SELECT 1"), Err(CommandError::Unknown(_))));
        assert!(matches!(parse("SHOW POOLS"), Err(CommandError::Unknown(_))));
        assert!(matches!(
            parse("SHOW DEPENDENTS"),
            Err(CommandError::Syntax(_))
        ));
        assert!(matches!(
            parse("SHOW ERRORS SINCE 1h"),
            Err(CommandError::Syntax(_))
        ));
        assert!(matches!(
            parse("SHOW ERRORS SINCE 'a while'"),
            Err(CommandError::Syntax(_))
        ));
        assert!(matches!(
            parse("SHOW CLIENTS now"),
            Err(CommandError::Syntax(_))
        ));
        assert!(matches!(
            parse("SHOW USAGE 'x"),
            Err(CommandError::Syntax(_))
        ));
    }

    #[test]
    fn page_clauses_end_a_show_in_either_order() {
        let r = parse_request("SHOW USAGE users LIMIT 5;").unwrap();
        assert_eq!(r.command, Command::Usage(Some(t("public", "users", None))));
        assert_eq!(r.page.limit, 5);
        let cursor = crate::admin::report::page::encode_cursor(&vec![]);
        let r = parse_request(&format!("SHOW ERRORS SINCE '1h' AFTER '{cursor}' LIMIT 2")).unwrap();
        assert_eq!(r.command, Command::Errors(Some(Duration::from_secs(3600))));
        assert_eq!((r.page.limit, r.page.after), (2, Some(vec![])));
        assert_eq!(parse_request("SHOW DDL").unwrap().page, Page::default());
        for bad in [
            "SHOW USAGE LIMIT 0",
            "SHOW USAGE LIMIT many",
            "SHOW USAGE LIMIT 100001",
            "SHOW USAGE AFTER 'not a cursor'",
        ] {
            assert!(
                matches!(parse_request(bad), Err(CommandError::Syntax(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn huge_intervals_are_errors_not_overflows() {
        assert!(parse_interval("99999999999999999:0:0").is_err());
    }

    #[test]
    fn intervals_in_several_spellings() {
        for (text, secs) in [
            ("1 hour", 3600),
            ("30 minutes", 1800),
            ("2h", 7200),
            ("1 day 2 hours", 93_600),
            ("01:30:00", 5400),
        ] {
            assert_eq!(
                parse_interval(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
    }
}

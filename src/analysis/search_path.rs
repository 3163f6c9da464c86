//! The session's `search_path`: how `SET`/`RESET` statements and the
//! startup packet change it, and its canonical text form.
//!
//! Postgres does not report `search_path` to the client (it is not a
//! `GUC_REPORT` setting before version 18), so the proxy follows the
//! statements that change it. Unqualified names are resolved through it
//! (DESIGN section 5). A change applies to the messages sent after the
//! one that made it: a multi-statement simple Query is one analysis, so a
//! `SET search_path` inside it does not re-resolve its own other
//! statements (the session's path afterwards is right).

use super::tokens::Token;

/// A change to the session's `search_path` made by one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchPathChange {
    /// `SET [SESSION] search_path ...`: the new list of schemas.
    Set(Vec<String>),
    /// `SET LOCAL search_path ...`: until the transaction ends.
    Local(Vec<String>),
    /// `RESET search_path`, `RESET ALL`, `DISCARD ALL`,
    /// `SET search_path TO DEFAULT`: back to the server's default.
    Reset,
}

/// Test on a fingerprint (once per statement shape): could one of its
/// statements change `search_path`? Only then is the raw text parsed by
/// [`parse_changes`].
pub fn may_change(fingerprint: &str) -> bool {
    fingerprint.split(';').any(|statement| {
        let st = statement.trim_start();
        (st.starts_with("set ") && st.contains("search_path"))
            || st.starts_with("reset ")
            || st.starts_with("discard all")
    })
}

/// The tokens of `sql`; text with an unterminated quote changes nothing
/// (Postgres rejects it too).
fn tokens(sql: &str) -> Vec<Token> {
    super::tokens::tokens(sql).unwrap_or_default()
}

/// Splits a list setting's text the way Postgres' `SplitIdentifierString`
/// does: comma separated, unquoted names folded to lower case, `"..."`
/// kept as written.
pub fn split_list(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for t in tokens(text) {
        match t {
            Token::Word(w) => current.get_or_insert_with(String::new).push_str(&w),
            Token::Ident(i) => current.get_or_insert_with(String::new).push_str(&i),
            Token::Punct(',') => {
                if let Some(c) = current.take() {
                    out.push(c);
                }
            }
            Token::Str(_) | Token::Punct(_) => {}
        }
    }
    if let Some(c) = current {
        out.push(c);
    }
    out
}

/// The `search_path` changes made by the statements of `sql`, in order
/// (a simple Query may hold several statements).
pub fn parse_changes(sql: &str) -> Vec<SearchPathChange> {
    tokens(sql)
        .split(|t| *t == Token::Punct(';'))
        .filter_map(change_of)
        .collect()
}

fn change_of(toks: &[Token]) -> Option<SearchPathChange> {
    let word = |i: usize| match toks.get(i) {
        Some(Token::Word(w)) => Some(w.as_str()),
        _ => None,
    };
    match word(0)? {
        "reset" => match word(1)? {
            "search_path" | "all" => Some(SearchPathChange::Reset),
            _ => None,
        },
        "discard" => (word(1)? == "all").then_some(SearchPathChange::Reset),
        "set" => {
            let (local, mut i) = match word(1)? {
                "local" => (true, 2),
                "session" => (false, 2),
                _ => (false, 1),
            };
            if word(i)? != "search_path" {
                return None;
            }
            i += 1;
            match toks.get(i) {
                Some(Token::Word(w)) if w == "to" => i += 1,
                Some(Token::Punct('=')) => i += 1,
                _ => return None,
            }
            if word(i) == Some("default") {
                return Some(SearchPathChange::Reset);
            }
            let mut schemas = Vec::new();
            for t in &toks[i..] {
                match t {
                    Token::Word(w) => schemas.push(w.clone()),
                    Token::Ident(s) => schemas.push(s.clone()),
                    // search_path is GUC_LIST_QUOTE: a string is one schema
                    // name, case kept ('a, b' names the schema "a, b").
                    Token::Str(s) => schemas.push(s.clone()),
                    Token::Punct(',') => {}
                    Token::Punct(_) => break,
                }
            }
            Some(if local {
                SearchPathChange::Local(schemas)
            } else {
                SearchPathChange::Set(schemas)
            })
        }
        _ => None,
    }
}

/// The `search_path` a startup packet sets: a `search_path` parameter, or
/// `-c search_path=...` / `--search_path=...` in `options`.
pub fn from_startup(search_path: Option<&str>, options: Option<&str>) -> Option<Vec<String>> {
    if let Some(p) = search_path {
        return Some(split_list(p));
    }
    let options = options?;
    // Options are whitespace separated; `\ ` escapes a space.
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    args.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        args.push(cur);
    }
    let mut found = None;
    let mut i = 0;
    while i < args.len() {
        let setting = if args[i] == "-c" {
            i += 1;
            args.get(i).map(String::as_str)
        } else if let Some(rest) = args[i].strip_prefix("--") {
            Some(rest)
        } else {
            args[i].strip_prefix("-c")
        };
        if let Some((k, v)) = setting.and_then(|s| s.split_once('=')) {
            if k.replace('-', "_") == "search_path" {
                found = Some(split_list(v));
            }
        }
        i += 1;
    }
    found
}

/// Canonical text of a list (as `SHOW search_path` prints it): names that
/// need quotes are quoted, joined by ", ". Empty means the server default.
pub fn canonical(schemas: &[String]) -> String {
    schemas
        .iter()
        .map(|s| {
            let plain = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$')
                && !s.starts_with(|c: char| c.is_ascii_digit());
            if plain {
                s.clone()
            } else {
                format!("\"{}\"", s.replace('"', "\"\""))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The schemas to search for a session of `user` whose path is `canonical`
/// text ("" for the server default, `"$user", public`). `$user` names the
/// login's own schema and, as in Postgres, counts only when that schema
/// exists (`schema_exists`).
pub fn effective(
    canonical_text: &str,
    user: &str,
    schema_exists: impl Fn(&str) -> bool,
) -> Vec<String> {
    let list = if canonical_text.is_empty() {
        vec!["$user".to_string(), "public".to_string()]
    } else {
        split_list(canonical_text)
    };
    list.into_iter()
        .filter_map(|s| {
            if s != "$user" {
                Some(s)
            } else if schema_exists(user) {
                Some(user.to_string())
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_change(sql: &str) -> Option<SearchPathChange> {
        parse_changes(sql).into_iter().next()
    }

    fn set(v: &[&str]) -> Option<SearchPathChange> {
        Some(SearchPathChange::Set(
            v.iter().map(|s| s.to_string()).collect(),
        ))
    }

    #[test]
    fn set_statements_in_their_spellings() {
        assert_eq!(
            parse_change("SET search_path TO app, public"),
            set(&["app", "public"])
        );
        assert_eq!(
            parse_change("set SESSION search_path = \"App\",public;"),
            set(&["App", "public"])
        );
        assert_eq!(
            parse_change("SET search_path = 'App', 'a, b'"),
            set(&["App", "a, b"])
        );
        assert_eq!(
            parse_change("/* app: billing */ SET search_path TO billing"),
            set(&["billing"])
        );
        assert_eq!(
            parse_change("SET search_path TO \"$user\", public"),
            set(&["$user", "public"])
        );
        assert_eq!(
            parse_change("SET LOCAL search_path TO app"),
            Some(SearchPathChange::Local(vec!["app".into()]))
        );
        assert_eq!(
            parse_change("SET search_path TO DEFAULT"),
            Some(SearchPathChange::Reset)
        );
        assert_eq!(
            parse_change("RESET search_path"),
            Some(SearchPathChange::Reset)
        );
        assert_eq!(parse_change("reset all"), Some(SearchPathChange::Reset));
        assert_eq!(parse_change("DISCARD ALL"), Some(SearchPathChange::Reset));
        assert_eq!(parse_change("SET statement_timeout = 5"), None);
        assert_eq!(parse_change("RESET statement_timeout"), None);
        assert_eq!(parse_change("SELECT 1"), None);
        assert_eq!(
            parse_changes("SET search_path TO x; SELECT 1; RESET search_path"),
            vec![
                SearchPathChange::Set(vec!["x".into()]),
                SearchPathChange::Reset
            ]
        );
    }

    #[test]
    fn cheap_prefilter_lets_every_change_through() {
        for sql in [
            "set search_path to $1",
            "set local search_path = app",
            "reset search_path",
            "reset all",
            "discard all",
        ] {
            assert!(may_change(sql), "{sql}");
        }
        assert!(!may_change("select * from search_path"));
        assert!(may_change("begin; set local search_path = $1"));
        assert!(!may_change("set application_name = $1"));
    }

    #[test]
    fn startup_parameters_and_options() {
        assert_eq!(
            from_startup(Some("app,public"), None),
            Some(vec!["app".into(), "public".into()])
        );
        assert_eq!(
            from_startup(None, Some("-c search_path=app,public -c work_mem=4MB")),
            Some(vec!["app".into(), "public".into()])
        );
        assert_eq!(
            from_startup(None, Some("--search-path=Sales")),
            Some(vec!["sales".into()])
        );
        assert_eq!(from_startup(None, Some("-c work_mem=4MB")), None);
        assert_eq!(from_startup(None, None), None);
    }

    #[test]
    fn canonical_text_round_trips_and_user_expands() {
        let list = vec![
            "app".to_string(),
            "Mixed Case".to_string(),
            "$user".to_string(),
        ];
        let text = canonical(&list);
        assert_eq!(text, "app, \"Mixed Case\", $user");
        assert_eq!(split_list(&text), list);
        assert_eq!(
            effective(&text, "alice", |_| true),
            vec!["app", "Mixed Case", "alice"]
        );
        assert_eq!(effective("", "bob", |s| s == "bob"), vec!["bob", "public"]);
        assert_eq!(effective("", "bob", |_| false), vec!["public"]);
    }
}

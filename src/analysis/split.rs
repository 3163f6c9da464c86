//! Splits a query string into statements as Postgres' lexer reads it: a
//! semicolon inside a string (standard, `E''`, dollar-quoted), a quoted
//! identifier or a comment (nested block comments included) ends nothing.
//! The statement gate uses it to judge each statement of a multi-statement
//! `Query` on its own, with byte offsets to cut the text where one is held.

use super::fingerprint::{skip_block_comment, skip_dollar_string, skip_quoted_ident, skip_string};
use std::ops::Range;

/// The byte ranges of the statements in `sql`, without the separating
/// semicolons and without leading white space and comments. Empty
/// statements (`;;`) are left out. Unterminated strings or comments run to
/// the end of the text, as the server would read them (and then refuse).
pub fn statements(sql: &str) -> Vec<Range<usize>> {
    statements_in(sql.as_bytes(), Strings::Standard)
}

/// How the session reads `'...'` strings: `standard_conforming_strings` is
/// on (the default since 9.1), or off, where a backslash escapes in every
/// string (the server reports the setting in ParameterStatus).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strings {
    /// `standard_conforming_strings = on`: only `E''` strings take backslash escapes.
    #[default]
    Standard,
    /// `standard_conforming_strings = off`: every string does.
    Backslash,
}

/// [`statements`] over raw bytes (text in any client encoding Postgres
/// accepts: the bytes that matter to the split are ASCII).
pub fn statements_in(sql: &[u8], strings: Strings) -> Vec<Range<usize>> {
    scan(sql, false, strings)
        .into_iter()
        .map(|p| p.range)
        .collect()
}

/// True when `word` (lower case) appears in `sql` as a word outside
/// strings, quoted identifiers and comments, in any letter case.
pub fn has_word(sql: &[u8], strings: Strings, words: &[&str]) -> bool {
    let mut found = false;
    walk(sql, strings, |b, range| {
        let w = &b[range];
        if words.iter().any(|x| w.eq_ignore_ascii_case(x.as_bytes())) {
            found = true;
        }
        !found
    });
    found
}

/// One piece of a script file as psql reads it (for `ddlguard lint`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// The statement (or meta-command) without leading white space and
    /// comments, and without its terminating semicolon.
    pub range: Range<usize>,
    /// Where the piece's leading comments start (right after the previous
    /// piece): override comments on the lines above a statement belong to it.
    pub lead: usize,
    /// A psql meta-command (`\i`, `\set`, ...): it runs to the end of its line.
    pub meta: bool,
}

/// The pieces of a psql script: statements as [`statements`] finds them,
/// and psql meta-commands (a backslash outside quotes and comments, up to
/// the end of the line). A meta-command inside a statement ends it.
pub fn script(sql: &str) -> Vec<Piece> {
    scan(sql.as_bytes(), true, Strings::Standard)
}

/// Calls `word` for each word (identifier or keyword, unquoted) of `b`
/// outside strings, quoted identifiers and comments, until it returns false.
fn walk(b: &[u8], strings: Strings, mut word: impl FnMut(&[u8], Range<usize>) -> bool) {
    lex(b, strings, false, |kind, range| {
        kind != Lexeme::Word || word(b, range)
    });
}

/// What [`lex`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lexeme {
    /// White space or a comment.
    Skip,
    /// A `;` ending a statement.
    Semicolon,
    /// A psql meta-command, to the end of its line (when asked for).
    Meta,
    /// An unquoted word.
    Word,
    /// Anything else that belongs to a statement: a string, a quoted
    /// identifier, a dollar-quoted body, punctuation.
    Other,
}

/// Reads `b` one lexeme at a time as Postgres' lexer does (and psql, for
/// meta-commands when `meta`), calling `each` until it returns false.
fn lex(b: &[u8], strings: Strings, meta: bool, mut each: impl FnMut(Lexeme, Range<usize>) -> bool) {
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let (kind, end) = match c {
            b'-' if b.get(i + 1) == Some(&b'-') => (Lexeme::Skip, line_end(b, i)),
            b'/' if b.get(i + 1) == Some(&b'*') => (Lexeme::Skip, skip_block_comment(b, i)),
            b';' => (Lexeme::Semicolon, i + 1),
            b'\\' if meta => (
                Lexeme::Meta,
                memchr::memchr(b'\n', &b[i..]).map_or(b.len(), |p| i + p),
            ),
            c if is_space(c) => (Lexeme::Skip, i + 1),
            b'\'' => (Lexeme::Other, skip_string(b, i + 1, escapes(b, i, strings))),
            b'"' => (Lexeme::Other, skip_quoted_ident(b, i + 1)),
            b'$' if starts_dollar_quote(b, i) => {
                (Lexeme::Other, skip_dollar_string(b, i).unwrap_or(i + 1))
            }
            c if is_word_byte(c) => {
                let mut j = i + 1;
                while j < b.len() && is_word_byte(b[j]) {
                    j += 1;
                }
                (Lexeme::Word, j)
            }
            _ => (Lexeme::Other, i + 1),
        };
        if !each(kind, i..end) {
            return;
        }
        i = end;
    }
}

/// Where a `--` comment starting at `i` ends: after its line break (`\n`
/// or `\r`, as Postgres' lexer reads it), or at the end.
fn line_end(b: &[u8], i: usize) -> usize {
    memchr::memchr2(b'\n', b'\r', &b[i..]).map_or(b.len(), |p| i + p + 1)
}

/// White space as Postgres' lexer reads it (`\v` too, since 16).
fn is_space(c: u8) -> bool {
    c.is_ascii_whitespace() || c == 0x0b
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut at = offset.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = memchr::memchr_iter(b'\n', before.as_bytes()).count() + 1;
    let line_start = memchr::memrchr(b'\n', before.as_bytes()).map_or(0, |p| p + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn scan(b: &[u8], meta: bool, strings: Strings) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut lead = 0;
    lex(b, strings, meta, |kind, r| {
        match kind {
            Lexeme::Skip => {}
            Lexeme::Semicolon => {
                if let Some(s) = start.take() {
                    out.push(Piece {
                        range: s..trim_end(b, s, r.start),
                        lead,
                        meta: false,
                    });
                }
                lead = r.end;
            }
            Lexeme::Meta => {
                if let Some(s) = start.take() {
                    out.push(Piece {
                        range: s..trim_end(b, s, r.start),
                        lead,
                        meta: false,
                    });
                    lead = r.start;
                }
                out.push(Piece {
                    range: r.start..trim_end(b, r.start, r.end),
                    lead,
                    meta: true,
                });
                lead = r.end;
            }
            Lexeme::Word | Lexeme::Other => {
                start.get_or_insert(r.start);
            }
        }
        true
    });
    if let Some(s) = start {
        out.push(Piece {
            range: s..trim_end(b, s, b.len()),
            lead,
            meta: false,
        });
    }
    out
}

/// True when `sql` holds at most one statement. Cheap for the common case
/// (no semicolon, or only white space after the first one); anything else
/// is decided by a full split.
pub fn is_single(sql: &str) -> bool {
    is_single_in(sql.as_bytes(), Strings::Standard)
}

/// [`is_single`] over raw bytes.
pub fn is_single_in(b: &[u8], strings: Strings) -> bool {
    match memchr::memchr(b';', b) {
        None => true,
        Some(p) if b[p + 1..].iter().all(|c| is_space(*c)) => true,
        Some(_) => statements_in(b, strings).len() <= 1,
    }
}

/// The first word of `statement` (a range from `statements`, or a whole
/// single-statement text with leading comments), lower-cased into `buf`;
/// empty when it does not start with a word. ASCII letters, matched by its
/// callers against byte strings (the gate does on every statement, and a
/// UTF-8 check for a `str` cost more than finding the word).
pub fn first_word<'a>(statement: &[u8], buf: &'a mut [u8; 16]) -> &'a [u8] {
    let b = statement;
    let mut i = 0;
    loop {
        match b.get(i) {
            Some(c) if is_space(*c) || *c == b'(' => i += 1,
            Some(b'-') if b.get(i + 1) == Some(&b'-') => i = line_end(b, i),
            Some(b'/') if b.get(i + 1) == Some(&b'*') => i = skip_block_comment(b, i),
            _ => break,
        }
    }
    let mut n = 0;
    while let Some(c) = b.get(i + n) {
        if !c.is_ascii_alphabetic() || n == buf.len() {
            break;
        }
        buf[n] = c.to_ascii_lowercase();
        n += 1;
    }
    &buf[..n]
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// True when the string opened at `quote` takes backslash escapes.
fn escapes(b: &[u8], quote: usize, strings: Strings) -> bool {
    strings == Strings::Backslash || escapes_backslash(b, quote)
}

/// `E'...'` (or `e'...'`) strings treat backslash as an escape; `U&'...'`
/// and standard strings do not (standard_conforming_strings is on since 9.1).
fn escapes_backslash(b: &[u8], quote: usize) -> bool {
    quote > 0 && matches!(b[quote - 1], b'e' | b'E') && (quote < 2 || !is_word_byte(b[quote - 2]))
}

/// A `$` starts a dollar quote only where an identifier cannot continue
/// (`a$1$` is one identifier; `$1` is a parameter).
fn starts_dollar_quote(b: &[u8], i: usize) -> bool {
    (i == 0 || !is_word_byte(b[i - 1])) && !b.get(i + 1).is_some_and(u8::is_ascii_digit)
}

fn trim_end(b: &[u8], start: usize, end: usize) -> usize {
    let mut e = end;
    while e > start && is_space(b[e - 1]) {
        e -= 1;
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(sql: &str) -> Vec<&str> {
        statements(sql).into_iter().map(|r| &sql[r]).collect()
    }

    #[test]
    fn splits_on_semicolons_outside_quotes_and_comments() {
        let cases: &[(&str, &[&str])] = &[
            ("select 1", &["select 1"]),
            ("select 1;", &["select 1"]),
            ("  select 1 ;  select 2  ", &["select 1", "select 2"]),
            (";;select 1;;", &["select 1"]),
            ("select ';'; select 2", &["select ';'", "select 2"]),
            ("select 'it''s;'; x", &["select 'it''s;'", "x"]),
            ("select E'\\';'; x", &["select E'\\';'", "x"]),
            ("select '\\'; x", &["select '\\'", "x"]),
            ("select \"a;b\"; x", &["select \"a;b\"", "x"]),
            ("select $$a;b$$; x", &["select $$a;b$$", "x"]),
            ("select $f$ $$; $f$; x", &["select $f$ $$; $f$", "x"]),
            ("select $1; x", &["select $1", "x"]),
            ("select a$b; x", &["select a$b", "x"]),
            ("-- c;\nselect 1; x", &["select 1", "x"]),
            ("/* a /* b; */ c; */ select 1; x", &["select 1", "x"]),
            (
                "select 1 -- tail; comment\n; x",
                &["select 1 -- tail; comment", "x"],
            ),
            (
                "set lock_timeout = '1s'; alter table t add c int",
                &["set lock_timeout = '1s'", "alter table t add c int"],
            ),
            ("select 'open;", &["select 'open;"]),
            ("", &[]),
            ("  -- only a comment", &[]),
        ];
        for (sql, want) in cases {
            assert_eq!(&split(sql), want, "{sql:?}");
        }
    }

    #[test]
    fn backslash_strings_when_standard_conforming_strings_is_off() {
        let sql = b"select 'x\\' , $$' ; truncate items; -- $$";
        assert_eq!(statements_in(sql, Strings::Standard).len(), 1);
        assert_eq!(statements_in(sql, Strings::Backslash).len(), 2);
        let bytes = b"truncate items /* caf\xe9 */; select 1";
        assert_eq!(statements_in(bytes, Strings::Standard).len(), 2);
    }

    #[test]
    fn words_outside_strings_and_comments() {
        let s = Strings::Standard;
        assert!(has_word(
            b"WITH d AS (DELETE FROM t) SELECT 1",
            s,
            &["delete"]
        ));
        assert!(!has_word(
            b"with d as (select 'delete' /* delete */) select 1",
            s,
            &["delete"]
        ));
        assert!(!has_word(b"select deleted from t", s, &["delete"]));
    }

    #[test]
    fn single_statement_checks_agree_with_the_split() {
        for sql in [
            "select 1",
            "select 1;",
            "select 1;  \n",
            "select ';'",
            "select 1; select 2",
            "select 1; -- done",
            "begin; alter table t add c int; commit;",
        ] {
            assert_eq!(is_single(sql), statements(sql).len() <= 1, "{sql:?}");
        }
    }

    #[test]
    fn scripts_skip_meta_commands_and_keep_leading_comments() {
        let sql = "\\set ON_ERROR_STOP on\n-- ddlguard:allow x\nselect 1;\n  \\i other.sql\nselect '\\x' \\gset\nselect 2";
        let pieces = script(sql);
        let texts: Vec<(&str, bool)> = pieces
            .iter()
            .map(|p| (&sql[p.range.clone()], p.meta))
            .collect();
        assert_eq!(
            texts,
            [
                ("\\set ON_ERROR_STOP on", true),
                ("select 1", false),
                ("\\i other.sql", true),
                ("select '\\x'", false),
                ("\\gset", true),
                ("select 2", false),
            ]
        );
        assert!(sql[pieces[1].lead..pieces[1].range.end].contains("ddlguard:allow x"));
        assert_eq!(
            statements(sql).len(),
            2,
            "the wire splitter knows no meta-commands"
        );
    }

    #[test]
    fn line_and_column_count_characters() {
        let sql = "select 1;\n  sélect 2; x";
        assert_eq!(line_col(sql, 0), (1, 1));
        assert_eq!(line_col(sql, 12), (2, 3));
        let x = sql.find('x').unwrap();
        assert_eq!(line_col(sql, x), (2, 13));
    }

    #[test]
    fn first_word_skips_comments_and_parens() {
        let mut buf = [0u8; 16];
        assert_eq!(first_word(b"  ALTER TABLE t", &mut buf), b"alter");
        assert_eq!(
            first_word(b"/* x */ -- y\n Drop index i", &mut buf),
            b"drop"
        );
        assert_eq!(first_word(b"(select 1)", &mut buf), b"select");
        assert_eq!(first_word(b"$1", &mut buf), b"");
        assert_eq!(
            first_word(b"materializedviewsxyz", &mut buf),
            b"materializedview"
        );
    }
}

//! A lexer that keeps byte positions, so that rewrites can splice the
//! client's own text (`CONCURRENTLY`, `NOT VALID`) instead of re-printing a
//! parsed tree, and so that the lexical fallback can read what sqlparser
//! cannot parse.

use crate::analysis::fingerprint::{skip_block_comment, skip_quoted_ident, skip_string};

/// One token and where it is in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tok {
    /// Unquoted words folded to lower case; quoted identifiers unquoted;
    /// strings keep their quotes; punctuation as written.
    pub text: String,
    /// True for a `"quoted"` identifier.
    pub quoted: bool,
    /// Byte offset where the token starts.
    pub start: usize,
    /// Byte offset just after the token.
    pub end: usize,
}

impl Tok {
    /// True when this is the unquoted keyword `kw` (lower case).
    pub fn is(&self, kw: &str) -> bool {
        !self.quoted && self.text == kw
    }
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// The tokens of one statement; comments and whitespace vanish. An
/// unterminated string or identifier ends the list (the text is then not
/// valid SQL anyway).
pub fn lex(sql: &str) -> Vec<Tok> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i = skip_block_comment(b, i);
        } else if let Some(end) = dollar_quoted(sql, i) {
            i = end;
            out.push(tok(start, i, sql[start..i].to_string(), false));
        } else if c == b'\'' {
            i = skip_string(b, i + 1, false).min(b.len());
            out.push(tok(start, i, sql[start..i].to_string(), false));
        } else if c == b'"' {
            i = skip_quoted_ident(b, i + 1).min(b.len());
            let body = sql[start..i].trim_matches('"').replace("\"\"", "\"");
            out.push(tok(start, i, body, true));
        } else if is_word_byte(c) {
            while i < b.len() && is_word_byte(b[i]) {
                i += 1;
            }
            out.push(tok(start, i, sql[start..i].to_lowercase(), false));
        } else {
            let len = sql[i..].chars().next().map_or(1, char::len_utf8);
            i += len;
            out.push(tok(start, i, sql[start..i].to_string(), false));
        }
    }
    out
}

/// The end of a `$tag$ ... $tag$` string starting at `i`, if one starts there
/// (a function body: its `;` and `--` are not the statement's).
fn dollar_quoted(sql: &str, i: usize) -> Option<usize> {
    let b = sql.as_bytes();
    if b.get(i) != Some(&b'$') || (i > 0 && is_word_byte(b[i - 1])) {
        return None;
    }
    let tag_len = b[i + 1..]
        .iter()
        .position(|&c| !(c.is_ascii_alphanumeric() || c == b'_'))?;
    if b.get(i + 1 + tag_len) != Some(&b'$') || b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let delim = &sql[i..i + tag_len + 2];
    let body = i + delim.len();
    Some(
        sql[body..]
            .find(delim)
            .map_or(sql.len(), |p| body + p + delim.len()),
    )
}

/// The statements of a multi-statement text, split at top-level `;` (not
/// inside strings, quoted identifiers, comments or `$$` bodies); empty ones
/// are left out. The gate decides each in order.
pub fn split(sql: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for t in lex(sql) {
        if t.text == ";" && !t.quoted {
            out.push(&sql[start..t.end]);
            start = t.end;
        }
    }
    out.push(&sql[start..]);
    out.into_iter()
        .filter(|s| !lex(s).iter().all(|t| t.text == ";"))
        .collect()
}

fn tok(start: usize, end: usize, text: String, quoted: bool) -> Tok {
    Tok {
        text,
        quoted,
        start,
        end,
    }
}

/// Quotes an identifier for SQL text when Postgres would not read it back
/// unchanged otherwise.
pub fn ident(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_lowercase() || b == b'_' || (i > 0 && b.is_ascii_digit()));
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// `schema.name` as SQL text, each part quoted when needed.
pub fn qualified(name: &crate::analysis::RelationName) -> String {
    match &name.schema {
        Some(s) => format!("{}.{}", ident(s), ident(&name.name)),
        None => ident(&name.name),
    }
}

/// A string literal.
pub fn literal(text: &str) -> String {
    // An E'' literal with quotes and backslashes escaped reads the same
    // whatever the session's standard_conforming_strings.
    format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_positions_and_skip_comments() {
        let sql = "CREATE /* x */ INDEX \"My\"\"Idx\" ON t ('a''b') -- tail";
        let t = lex(sql);
        let words: Vec<&str> = t.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(
            words,
            ["create", "index", "My\"Idx", "on", "t", "(", "'a''b'", ")"]
        );
        assert_eq!(&sql[t[1].start..t[1].end], "INDEX");
        assert!(t[2].quoted && !t[1].quoted);
        assert!(lex("select 'open").len() == 2);
    }

    #[test]
    fn dollar_bodies_and_multi_statement_texts() {
        let sql = "CREATE FUNCTION f() RETURNS int AS $b$ SELECT 1; -- x\n$b$ LANGUAGE sql; DROP TABLE t;";
        let parts = split(sql);
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert!(parts[0].ends_with("LANGUAGE sql;"), "{parts:?}");
        assert_eq!(parts[1].trim(), "DROP TABLE t;");
        assert_eq!(split("SELECT $1; ; SELECT 'a;b'").len(), 2);
        assert_eq!(lex("SELECT $$ a ; b $$")[1].text, "$$ a ; b $$");
        assert_eq!(lex("SELECT a$b$c")[1].text, "a$b$c");
    }

    #[test]
    fn identifiers_are_quoted_only_when_needed() {
        assert_eq!(ident("users"), "users");
        assert_eq!(ident("Users"), "\"Users\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(ident("1a"), "\"1a\"");
    }
}

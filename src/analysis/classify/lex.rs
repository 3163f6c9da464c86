//! Tokens of a fingerprint text (already lower-cased, literals as `$n`,
//! comments gone but for the fold marker), and the split of a text into
//! its statements.

/// One token of a fingerprint text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A keyword or unquoted identifier (lower case).
    Word(String),
    /// A quoted identifier, quotes removed and `""` unescaped: kept exact.
    Quoted(String),
    /// A literal or a `$n` placeholder: never a name.
    Param,
    /// Punctuation or an operator (`.`, `(`, `,`, `;`, `+`, `::`, ...).
    Punct(String),
}

impl Tok {
    /// The keyword, if the token is an unquoted word.
    pub fn word(&self) -> Option<&str> {
        match self {
            Tok::Word(w) => Some(w),
            _ => None,
        }
    }

    /// True for the unquoted word `w`.
    pub fn is(&self, w: &str) -> bool {
        self.word() == Some(w)
    }

    /// True for the punctuation `p`.
    pub fn is_punct(&self, p: &str) -> bool {
        matches!(self, Tok::Punct(x) if x == p)
    }

    /// The identifier, folded or exact, when the token can be a name.
    pub fn ident(&self) -> Option<&str> {
        match self {
            Tok::Word(w) | Tok::Quoted(w) => Some(w),
            _ => None,
        }
    }
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Tokens of `text` with their byte ranges.
pub fn tokens(text: &str) -> Vec<(Tok, usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i = crate::analysis::fingerprint::skip_block_comment(b, i);
            continue;
        }
        let tok = if c == b'"' {
            i = crate::analysis::fingerprint::skip_quoted_ident(b, i + 1);
            let inner = text.get(start + 1..i.saturating_sub(1)).unwrap_or("");
            Tok::Quoted(inner.replace("\"\"", "\""))
        } else if c == b'$' && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            Tok::Param
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            Tok::Param
        } else if is_word_byte(c) {
            while i < b.len() && is_word_byte(b[i]) {
                i += 1;
            }
            Tok::Word(text[start..i].to_ascii_lowercase())
        } else if matches!(c, b'(' | b')' | b',' | b';' | b'.' | b'[' | b']') {
            i += 1;
            Tok::Punct(text[start..i].to_string())
        } else {
            i += 1;
            while i < b.len()
                && !b[i].is_ascii_whitespace()
                && !is_word_byte(b[i])
                && !matches!(b[i], b'(' | b')' | b',' | b';' | b'.' | b'[' | b']' | b'"')
            {
                i += 1;
            }
            // Stay on a char boundary whatever the bytes.
            while i < b.len() && !text.is_char_boundary(i) {
                i += 1;
            }
            Tok::Punct(text[start..i].to_string())
        };
        out.push((tok, start, i));
    }
    out
}

/// The statements of a fingerprint text, trimmed, empty ones left out.
/// Splits at `;` outside parentheses and outside `BEGIN ATOMIC ... END`
/// bodies (SQL-standard function bodies hold `;`).
pub fn statements(text: &str) -> Vec<&str> {
    let toks = tokens(text);
    let mut out = Vec::new();
    let mut depth = 0i32;
    // Open BEGIN ATOMIC / CASE blocks inside an atomic body.
    let mut atomic = 0i32;
    let mut start = 0usize;
    for (k, (tok, s, e)) in toks.iter().enumerate() {
        match tok {
            Tok::Punct(p) if p == "(" => depth += 1,
            Tok::Punct(p) if p == ")" => depth -= 1,
            Tok::Word(w) if w == "atomic" && k > 0 && toks[k - 1].0.is("begin") => atomic += 1,
            Tok::Word(w) if w == "case" && atomic > 0 => atomic += 1,
            Tok::Word(w) if w == "end" && atomic > 0 => atomic -= 1,
            Tok::Punct(p) if p == ";" && depth <= 0 && atomic == 0 => {
                let part = text[start..*s].trim();
                if !part.is_empty() {
                    out.push(part);
                }
                start = *e;
            }
            _ => {}
        }
    }
    let part = text[start..].trim();
    if !part.is_empty() {
        out.push(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_but_not_atomic_bodies_or_parentheses() {
        assert_eq!(
            statements("set lock_timeout = $1; alter table t add x int;"),
            vec!["set lock_timeout = $1", "alter table t add x int"]
        );
        let f = "create function f() returns int language sql begin atomic select $1; select case when true then $2 end; end";
        assert_eq!(statements(f), vec![f]);
        assert_eq!(
            statements("create rule r as on insert to t do (insert into a values($1); insert into b values($2))"),
            vec!["create rule r as on insert to t do (insert into a values($1); insert into b values($2))"]
        );
    }

    #[test]
    fn quoted_identifiers_stay_exact_and_numbers_are_params() {
        let t: Vec<Tok> = tokens("drop index \"My\"\"Idx\", $1, 314159")
            .into_iter()
            .map(|(t, _, _)| t)
            .collect();
        assert_eq!(t[2], Tok::Quoted("My\"Idx".into()));
        assert_eq!(t[4], Tok::Param);
        assert_eq!(t[6], Tok::Param);
    }
}

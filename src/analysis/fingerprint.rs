//! The single-pass lexer that turns SQL text into its normalized fingerprint.
//!
//! Literals become `$n`, lists of literals fold to one shape, keywords and
//! unquoted identifiers fold to lower case, whitespace and comments vanish.
//! Texts that differ only in literal values share one fingerprint, which is
//! the key of the analysis cache and the only query text ddlguard stores
//! (no literal value ever reaches a report, a log or a metric).

use xxhash_rust::xxh3::xxh3_64;

/// What a folded list keeps after its first item: `in($1 /*, ... */)`.
const FOLD_MARKER: &str = "/*, ... */";

/// A normalized statement text and its stable 64-bit id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Normalized text, e.g. `select * from users where id = $1`.
    pub text: String,
    /// xxh3-64 of `text`: stable across processes and versions of ddlguard.
    pub id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A word: keyword or unquoted identifier (already lower-cased).
    Word,
    /// A quoted identifier.
    Quoted,
    /// A literal or parameter, written as `$n`.
    Literal,
    /// Punctuation or an operator.
    Punct,
}

/// Builds the fingerprint of `sql`.
pub fn fingerprint(sql: &str) -> Fingerprint {
    let mut out = Normalizer::with_capacity(sql.len());
    lex(sql, &mut out);
    out.finish()
}

/// What the lexer emits, token by token. The normalizer builds the
/// fingerprint from these calls alone (it never sees the text itself), so
/// two texts whose calls are equal up to the literals have one fingerprint:
/// what lets [`super::shape_key`] stand in for it as a cache key.
pub(crate) trait Sink {
    /// A literal or a comment at `start..end` of the text (a literal's value
    /// is never passed on).
    fn cut(&mut self, kind: Cut, start: usize, end: usize);
    /// A quoted identifier or an operator, as written. Sinks that only want
    /// the cut-outs (the shape key, templates) keep these defaults.
    fn push(&mut self, _tok: Tok, _s: &str) {}
    /// A keyword or unquoted identifier, as written.
    fn word(&mut self, _w: &str) {}
    /// One of `( ) , ; [ ] . :`.
    fn punct(&mut self, _c: u8) {}
}

/// What the lexer cuts out of a statement's text: never part of its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cut {
    Literal,
    Comment,
    /// Our own fold marker comment, `/*, ... */`.
    Fold,
}

impl Sink for Normalizer {
    fn cut(&mut self, kind: Cut, _: usize, _: usize) {
        match kind {
            Cut::Literal => Normalizer::literal(self),
            Cut::Comment => {}
            Cut::Fold => Normalizer::fold_marker(self),
        }
    }
    fn push(&mut self, tok: Tok, s: &str) {
        Normalizer::push(self, tok, s);
    }
    fn word(&mut self, w: &str) {
        Normalizer::word(self, w);
    }
    fn punct(&mut self, c: u8) {
        Normalizer::punct(self, c);
    }
}

/// Bytes that continue a word: letters, digits, `_`, `$` and every byte of
/// a multi-byte character. A table: words are most of a statement's bytes,
/// and one lookup per byte is cheaper than four comparisons.
static IN_WORD: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80;
        c += 1;
    }
    t
};

/// The lexer: skips whitespace and comments, tells `out` every token.
pub(crate) fn lex<S: Sink>(sql: &str, out: &mut S) {
    let mut i = 0;
    while i < sql.len() {
        i = token(sql, i, out);
    }
}

/// One step of [`lex`]: the token (or whitespace run) that starts at `i`,
/// told to `out`; returns where the next one starts. The lexer carries no
/// state from one token to the next, which is what lets a template
/// (`super::template`) lex just the literals of a text it otherwise compares.
#[inline(always)]
pub(crate) fn token<S: Sink>(sql: &str, mut i: usize, out: &mut S) -> usize {
    let b = sql.as_bytes();
    {
        let c = b[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c => {
                // Whitespace comes in runs (indentation): one tight loop.
                i += 1;
                while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0c) {
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                let start = i;
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                out.cut(Cut::Comment, start, i);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = skip_block_comment(b, i);
                // Our own fold marker: fingerprinting a fingerprint gives it back.
                let kind = if &b[i..end] == FOLD_MARKER.as_bytes() {
                    Cut::Fold
                } else {
                    Cut::Comment
                };
                out.cut(kind, i, end);
                i = end;
            }
            b'\'' => {
                let start = i;
                i = skip_string(b, i + 1, false);
                out.cut(Cut::Literal, start, i);
            }
            b'"' => {
                let end = skip_quoted_ident(b, i + 1);
                out.push(Tok::Quoted, &sql[i..end]);
                i = end;
            }
            b'$' => {
                let start = i;
                if b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    out.cut(Cut::Literal, start, i);
                } else if let Some(end) = skip_dollar_string(b, i) {
                    i = end;
                    out.cut(Cut::Literal, start, i);
                } else {
                    out.push(Tok::Punct, "$");
                    i += 1;
                }
            }
            b'0'..=b'9' => {
                let start = i;
                i = skip_number(b, i);
                out.cut(Cut::Literal, start, i);
            }
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let start = i;
                i = skip_number(b, i);
                out.cut(Cut::Literal, start, i);
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let start = i;
                i += 1;
                while i < b.len() && IN_WORD[b[i] as usize] {
                    i += 1;
                }
                let word = &sql[start..i];
                // String prefixes: E'..', B'..', X'..', N'..', U&'..'.
                if b.get(i) == Some(&b'\'')
                    && word.len() == 1
                    && matches!(c | 0x20, b'e' | b'b' | b'x' | b'n')
                {
                    i = skip_string(b, i + 1, c | 0x20 == b'e');
                    out.cut(Cut::Literal, start, i);
                } else if word.len() == 1
                    && c | 0x20 == b'u'
                    && b.get(i) == Some(&b'&')
                    && b.get(i + 1) == Some(&b'\'')
                {
                    i = skip_string(b, i + 2, false);
                    out.cut(Cut::Literal, start, i);
                } else if word.len() == 1
                    && c | 0x20 == b'u'
                    && b.get(i) == Some(&b'&')
                    && b.get(i + 1) == Some(&b'"')
                {
                    let end = skip_quoted_ident(b, i + 2);
                    out.push(Tok::Quoted, &sql[start..end]);
                    i = end;
                } else {
                    out.word(word);
                }
            }
            b':' if b.get(i + 1) == Some(&b':') => {
                out.push(Tok::Punct, "::");
                i += 2;
            }
            b'(' | b')' | b',' | b';' | b'[' | b']' | b'.' | b':' => {
                out.punct(c);
                i += 1;
            }
            _ if is_op_char(c) => {
                let start = i;
                while i < b.len() && is_op_char(b[i]) {
                    // `--` and `/*` start comments even inside operators.
                    if (b[i] == b'-' && b.get(i + 1) == Some(&b'-'))
                        || (b[i] == b'/' && b.get(i + 1) == Some(&b'*'))
                    {
                        break;
                    }
                    i += 1;
                }
                out.push(Tok::Punct, &sql[start..i]);
            }
            _ => {
                // Anything else (stray bytes): keep it, one char at a time.
                let len = utf8_len(c);
                let end = (i + len).min(b.len());
                out.push(Tok::Punct, sql.get(i..end).unwrap_or("?"));
                i = end;
            }
        }
    }
    i
}

/// Appends a decimal number without the formatting machinery.
fn push_number(out: &mut String, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for d in digits[..len].iter().rev() {
        out.push(*d as char);
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xf0..=0xff => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

fn is_op_char(c: u8) -> bool {
    matches!(
        c,
        b'+' | b'-'
            | b'*'
            | b'/'
            | b'<'
            | b'>'
            | b'='
            | b'~'
            | b'!'
            | b'@'
            | b'#'
            | b'%'
            | b'^'
            | b'&'
            | b'|'
            | b'`'
            | b'?'
    )
}

pub(crate) fn skip_block_comment(b: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

/// Skips a '...' body starting after the opening quote; `backslash` for E''.
pub(crate) fn skip_string(b: &[u8], mut i: usize, backslash: bool) -> usize {
    while i < b.len() {
        match b[i] {
            b'\\' if backslash => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

pub(crate) fn skip_quoted_ident(b: &[u8], mut i: usize) -> usize {
    while let Some(p) = memchr::memchr(b'"', &b[i..]) {
        i += p;
        if b.get(i + 1) == Some(&b'"') {
            i += 2;
            continue;
        }
        return i + 1;
    }
    b.len()
}

/// `$tag$ ... $tag$`; `None` if `$` does not start a dollar-quoted string.
pub(crate) fn skip_dollar_string(b: &[u8], start: usize) -> Option<usize> {
    let mut j = start + 1;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80) {
        j += 1;
    }
    if b.get(j) != Some(&b'$') {
        return None;
    }
    let tag = &b[start..=j];
    let mut k = j + 1;
    while k + tag.len() <= b.len() {
        if b[k] == b'$' && &b[k..k + tag.len()] == tag {
            return Some(k + tag.len());
        }
        k += 1;
    }
    Some(b.len())
}

/// The end of the number that starts at `i` (a digit, or `.` before one):
/// the lexer's number rule, which templates use to match numbers too.
pub(crate) fn skip_number(b: &[u8], mut i: usize) -> usize {
    if b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B')) {
        i += 2;
        while i < b.len() && (b[i].is_ascii_hexdigit() || b[i] == b'_') {
            i += 1;
        }
        return i;
    }
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_' || b[i] == b'.') {
        // `1..2` is not a number continuation (array slices).
        if b[i] == b'.' && b.get(i + 1) == Some(&b'.') {
            return i;
        }
        i += 1;
    }
    if i < b.len() && (b[i] | 0x20) == b'e' {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            i = j;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

/// Writes normalized tokens and folds literal lists.
struct Normalizer {
    text: String,
    prev: Option<Tok>,
    prev_punct: u8,
    literals: usize,
    /// Open parentheses: (byte offset after '(', only literals so far,
    /// literal items, literal count at the opening).
    groups: Vec<(usize, bool, usize, usize)>,
    /// End offset of the last folded group and the literal count after it,
    /// to fold runs of rows `(..), (..)` into the first.
    last_folded: Option<(usize, usize)>,
}

impl Normalizer {
    fn with_capacity(n: usize) -> Self {
        Normalizer {
            text: String::with_capacity(n.min(4096)),
            prev: None,
            prev_punct: 0,
            literals: 0,
            groups: Vec::new(),
            last_folded: None,
        }
    }

    fn space_before(&self, tok: Tok, s: &str) -> bool {
        let Some(prev) = self.prev else { return false };
        if prev == Tok::Punct && matches!(self.prev_punct, b'(' | b'[' | b'.' | b':') {
            return false;
        }
        if prev == Tok::Punct && self.text.ends_with("::") {
            return false;
        }
        if tok == Tok::Punct {
            return !matches!(
                s.as_bytes().first(),
                Some(b')' | b',' | b';' | b']' | b'[' | b'.' | b':')
            ) && s != "::"
                && !(s == "(" && matches!(prev, Tok::Word | Tok::Quoted));
        }
        true
    }

    fn push(&mut self, tok: Tok, s: &str) {
        self.begin(tok, s);
        self.text.push_str(s);
    }

    /// Spacing and bookkeeping before a token's text is appended.
    fn begin(&mut self, tok: Tok, s: &str) {
        if tok != Tok::Literal {
            if let Some(g) = self.groups.last_mut() {
                if !(tok == Tok::Punct && s == ",") {
                    g.1 = false;
                }
            }
        }
        if self.space_before(tok, s) {
            self.text.push(' ');
        }
        self.prev = Some(tok);
        self.prev_punct = if tok == Tok::Punct {
            s.as_bytes()[0]
        } else {
            0
        };
        if (tok != Tok::Punct || s != ",") && !(tok == Tok::Punct && s == "(") {
            // Anything but a comma between two folded rows breaks the row run.
            self.last_folded = None;
        }
    }

    fn word(&mut self, w: &str) {
        self.begin(Tok::Word, w);
        let start = self.text.len();
        self.text.push_str(w);
        self.text[start..].make_ascii_lowercase();
    }

    fn literal(&mut self) {
        self.literals += 1;
        if let Some(g) = self.groups.last_mut() {
            g.2 += 1;
        }
        let last_folded = self.last_folded;
        self.begin(Tok::Literal, "$");
        self.text.push('$');
        push_number(&mut self.text, self.literals);
        self.last_folded = last_folded;
    }

    /// A fold marker inside a group counts as more literal items.
    fn fold_marker(&mut self) {
        if let Some(g) = self.groups.last_mut() {
            g.2 += 1;
        }
    }

    fn punct(&mut self, c: u8) {
        match c {
            b'(' => {
                let folded_before = self.last_folded;
                self.push(Tok::Punct, "(");
                self.last_folded = folded_before;
                self.groups.push((self.text.len(), true, 0, self.literals));
            }
            b')' => {
                if let Some((start, only_literals, items, literals_before)) = self.groups.pop() {
                    if only_literals && items >= 2 {
                        // `(1, 2, 3)` of any length becomes `($k /*, ... */)` (still valid
                        // SQL, so a stored fingerprint can be analysed again), and
                        // the literals after it are numbered as if it had one.
                        let first_end = self.text[start..]
                            .find(',')
                            .map(|p| start + p)
                            .unwrap_or(self.text.len());
                        self.text.truncate(first_end);
                        self.text.push(' ');
                        self.text.push_str(FOLD_MARKER);
                        self.text.push(')');
                        self.literals = literals_before + 1;
                        self.prev = Some(Tok::Punct);
                        self.prev_punct = b')';
                        let open = start - 1;
                        // A run of folded rows `(..), (..)` keeps only the first.
                        if let Some((prev_end, literals_after)) = self.last_folded {
                            if self
                                .text
                                .get(prev_end..open)
                                .is_some_and(|between| between.trim() == ",")
                            {
                                self.text.truncate(prev_end);
                                self.literals = literals_after;
                                return;
                            }
                        }
                        self.last_folded = Some((self.text.len(), self.literals));
                        return;
                    }
                    if let Some(outer) = self.groups.last_mut() {
                        outer.1 = false;
                    }
                }
                self.push(Tok::Punct, ")");
            }
            _ => {
                let s = match c {
                    b',' => ",",
                    b';' => ";",
                    b'[' => "[",
                    b']' => "]",
                    b'.' => ".",
                    b':' => ":",
                    _ => "?",
                };
                self.push(Tok::Punct, s);
            }
        }
    }

    fn finish(mut self) -> Fingerprint {
        while self.text.ends_with(';') || self.text.ends_with(' ') {
            self.text.pop();
        }
        let id = xxh3_64(self.text.as_bytes());
        Fingerprint {
            text: self.text,
            id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(s: &str) -> String {
        fingerprint(s).text
    }

    #[test]
    fn literals_become_numbered_parameters() {
        assert_eq!(
            fp("SELECT * FROM users WHERE id = 42"),
            "select * from users where id = $1"
        );
        assert_eq!(
            fp("select name from users where email = 'a@b.c' and age > 1.5e3"),
            "select name from users where email = $1 and age > $2"
        );
        assert_eq!(fp("SELECT $1, $2"), "select $1, $2");
    }

    #[test]
    fn texts_differing_in_literals_share_a_fingerprint() {
        let a = fingerprint("SELECT * FROM t WHERE id = 1 AND s = 'x'");
        let b = fingerprint("select *   from t\nwhere id = 99999 and s = E'it''s \\' here'");
        assert_eq!(a, b);
        assert_ne!(a.id, fingerprint("SELECT * FROM t WHERE id = 1").id);
    }

    #[test]
    fn in_lists_of_any_length_fold() {
        let one = fp("SELECT * FROM t WHERE id IN (1, 2)");
        assert_eq!(one, "select * from t where id in($1 /*, ... */)");
        assert_eq!(one, fp("SELECT * FROM t WHERE id IN (1, 2, 3, 4, 5, 6, 7)"));
        assert_eq!(fp("SELECT * FROM t WHERE id IN ($1, $2, $3)"), one);
    }

    #[test]
    fn literals_after_a_folded_list_are_numbered_alike() {
        let a = fp("SELECT * FROM t WHERE id IN (1, 2, 3) AND x = 5");
        assert_eq!(a, "select * from t where id in($1 /*, ... */) and x = $2");
        assert_eq!(a, fp("SELECT * FROM t WHERE id IN (7, 8) AND x = 9"));
        let rows = fp("INSERT INTO t VALUES (1, 2), (3, 4), (5, 6) RETURNING id, 'z'");
        assert_eq!(rows, "insert into t values($1 /*, ... */) returning id, $2");
        assert_eq!(rows, fp("INSERT INTO t VALUES (1, 2) RETURNING id, 'q'"));
    }

    #[test]
    fn multi_row_values_fold() {
        let a = fp("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')");
        assert_eq!(a, "insert into t(a, b) values($1 /*, ... */)");
        assert_eq!(a, fp("insert into t (a, b) values (5, 'q')"));
    }

    #[test]
    fn quoted_identifiers_keep_case_and_comments_vanish() {
        assert_eq!(
            fp("SELECT \"Users\".\"Email\" /* c /* nested */ */ FROM \"Users\" -- tail"),
            "select \"Users\".\"Email\" from \"Users\""
        );
    }

    #[test]
    fn dollar_quotes_casts_and_operators() {
        assert_eq!(fp("SELECT $$a 'b' c$$::text"), "select $1::text");
        assert_eq!(fp("SELECT $tag$x$tag$ || 'y'"), "select $1 || $2");
        assert_eq!(
            fp("SELECT data->>'k' FROM t WHERE data @> '{}'"),
            "select data ->> $1 from t where data @> $2"
        );
        assert_eq!(fp("SELECT a[1:2] FROM t"), "select a[$1:$2] from t");
    }

    #[test]
    fn folded_fingerprints_parse_and_analyse_like_the_original() {
        use crate::analysis::analyze_uncached;
        for sql in [
            "SELECT email FROM users WHERE id IN (1, 2, 3) AND org_id = 7",
            "INSERT INTO users (id, email) VALUES (1, 'a'), (2, 'b') ON CONFLICT (id) DO NOTHING",
        ] {
            let original = analyze_uncached(sql, fingerprint(sql));
            let text = original.fingerprint.text.clone();
            let again = analyze_uncached(&text, fingerprint(&text));
            assert!(again.parsed, "{text}");
            assert_eq!(again.fingerprint, original.fingerprint, "{text}");
            assert_eq!(
                (again.relations, again.columns),
                (original.relations, original.columns)
            );
        }
    }

    #[test]
    fn no_literal_survives() {
        let secret = "SELECT * FROM accounts WHERE ssn = '123-45-6789' AND pin = 4242 AND note = E'p\\'w' AND d = $q$hunter2$q$";
        let f = fp(secret);
        for leak in ["123", "4242", "hunter2", "p\\'w"] {
            assert!(!f.contains(leak), "{f}");
        }
    }
}

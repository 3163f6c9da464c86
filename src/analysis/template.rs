//! A statement text seen before, kept with where its literals and comments
//! are, so that the next text of the same shape is recognized by comparing
//! bytes instead of lexing it.
//!
//! A session usually sends one shape again and again with other values
//! (`... WHERE aid = 12345`, then `... WHERE aid = 678`). Its tracker keeps
//! the template of the statement it ran last; a new text matches when the
//! runs between the template's cut-outs (literals and comments) are the
//! same bytes and each cut-out's place holds one of the same kind, found by
//! lexing that one token. Matching costs a few `memcmp`s and the literals'
//! lengths; a miss costs about as much and falls back to the memo's shape
//! key.
//!
//! Why a match means the same shape key, and so the same analysis: the
//! lexer carries no state from one token to the next. Over equal bytes from
//! equal starts it makes equal tokens, except where a token's end depends
//! on the bytes after it. For the last token of a run between cut-outs,
//! the only such byte outside the run is the first byte of the next
//! cut-out (a `$` operator's tag scan runs over the word after it, which
//! ends before a cut-out: one that starts with a letter is that letter and
//! a quote or `&`). A template therefore also requires that byte to be of
//! the same class (any digit, any ASCII letter, else the byte itself), for
//! which every such decision of the lexer is the same. A cut-out's end is
//! found by the lexer itself on the new text. The unit tests check the
//! claim on random texts built from the bytes that make these decisions; a
//! review ran 2.7 billion exhaustive and random pairs (invalid UTF-8 and
//! cuts inside characters included) without a counterexample.
//!
//! The text is the first one seen of its shape, literal values included. It
//! stays in memory (the per-thread memo and the sessions that ran it last)
//! and is never written anywhere: reports, logs and metrics only ever see
//! the fingerprint.

use super::fingerprint::{lex, skip_number, token, Cut, Sink};
use super::Analysis;
use std::sync::Arc;

/// Longer texts get no template (matching is for the short statements a
/// session repeats; the memo still takes texts up to 16 KiB).
pub(super) const MAX_TEXT: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    end: u32,
    kind: Cut,
    /// [`class`] of the first byte.
    first: u8,
}

/// The analysis of one shape with a text of that shape to recognize it by.
pub struct Template {
    /// The analyzer the analysis came from.
    owner: u64,
    analysis: Arc<Analysis>,
    /// `None` for texts over [`MAX_TEXT`]: never matched.
    text: Option<Box<str>>,
    spans: Box<[Span]>,
}

impl Template {
    /// The template of `sql`, whose analysis is `analysis`.
    pub(super) fn new(owner: u64, sql: &str, analysis: Arc<Analysis>) -> Template {
        if sql.len() > MAX_TEXT {
            return Template {
                owner,
                analysis,
                text: None,
                spans: Box::new([]),
            };
        }
        let mut sink = Spans {
            sql: sql.as_bytes(),
            spans: Vec::new(),
        };
        lex(sql, &mut sink);
        Template {
            owner,
            analysis,
            text: Some(sql.into()),
            spans: sink.spans.into_boxed_slice(),
        }
    }

    /// The analyzer whose analysis this is.
    pub(super) fn owner(&self) -> u64 {
        self.owner
    }

    /// The analysis of every text this template matches.
    pub fn analysis(&self) -> &Arc<Analysis> {
        &self.analysis
    }

    /// True when `sql` has this template's shape key: equal bytes between
    /// the cut-outs, and cut-outs of the same kinds (first bytes of the same
    /// class) in their places; and when it is UTF-8, so a caller can take
    /// it as text. Only the text from the first cut-out on is checked for
    /// UTF-8: the bytes before are the template's own.
    pub fn matches(&self, sql: &[u8]) -> bool {
        let Some(text) = self.text.as_deref() else {
            return false;
        };
        let old = text.as_bytes();
        let new = sql;
        let mut at_old = 0usize;
        let mut at_new = 0usize;
        // The text from the first cut-out on, and where it starts in `new`.
        let mut tail: Option<(&str, usize)> = None;
        for span in self.spans.iter() {
            let (start, end) = (span.start as usize, span.end as usize);
            let Some(run) = old.get(at_old..start) else {
                return false;
            };
            if new.get(at_new..at_new + run.len()) != Some(run) {
                return false;
            }
            at_new += run.len();
            match new.get(at_new) {
                Some(&c) if class(c) == span.first => {}
                _ => return false,
            }
            if span.first == b'0' && span.kind == Cut::Literal {
                // A number (`WHERE aid = 12345`): the lexer's own number
                // rule, without a token step and its UTF-8 view. A number
                // is ASCII, so a text whose cut-outs are all numbers is
                // UTF-8 when its other bytes equal the template's.
                at_new = skip_number(new, at_new);
                at_old = end;
                continue;
            }
            // A cut-out starts at an ASCII byte: a char boundary.
            let (rest, base) = match tail {
                Some(t) => t,
                None => match utf8(&new[at_new..]) {
                    Some(rest) => *tail.insert((rest, at_new)),
                    None => return false,
                },
            };
            let here = at_new - base;
            let mut first = FirstCut::default();
            let next = token(rest, here, &mut first);
            if first.kind != Some(span.kind) || first.start != here || first.end != next {
                return false;
            }
            at_new = base + next;
            at_old = end;
        }
        new.get(at_new..) == old.get(at_old..)
    }
}

/// `bytes` as text when they are UTF-8. The tail of a statement is
/// usually a few ASCII bytes (`12345;`), which `is_ascii` checks in a
/// fraction of what `str::from_utf8`'s setup costs on every call.
fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).ok()
}

/// The class of a cut-out's first byte: every digit alike, every ASCII
/// letter alike, any other byte itself. The tokens before a cut-out decide
/// their ends alike for bytes of one class.
fn class(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => b'0',
        b'a'..=b'z' | b'A'..=b'Z' => b'a',
        _ => c,
    }
}

/// Collects a text's cut-outs.
struct Spans<'a> {
    sql: &'a [u8],
    spans: Vec<Span>,
}

impl Sink for Spans<'_> {
    fn cut(&mut self, kind: Cut, start: usize, end: usize) {
        self.spans.push(Span {
            start: start as u32,
            end: end as u32,
            kind,
            first: self.sql.get(start).copied().map_or(0, class),
        });
    }
}

/// The first cut-out a token step tells of (a step tells at most one).
#[derive(Default)]
struct FirstCut {
    kind: Option<Cut>,
    start: usize,
    end: usize,
}

impl Sink for FirstCut {
    fn cut(&mut self, kind: Cut, start: usize, end: usize) {
        *self = FirstCut {
            kind: Some(kind),
            start,
            end,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fingerprint::fingerprint;
    use crate::analysis::shape_key::shape_key;
    use crate::analysis::Analyzer;

    fn template(sql: &str) -> Template {
        Template::new(
            0,
            sql,
            Arc::new(crate::analysis::analyze_uncached(sql, fingerprint(sql))),
        )
    }

    #[test]
    fn texts_that_differ_in_literals_and_comments_match() {
        let t = template("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;");
        assert!(t.matches("SELECT abalance FROM pgbench_accounts WHERE aid = 7;".as_bytes()));
        assert!(t.matches("SELECT abalance FROM pgbench_accounts WHERE aid = 1.5e3;".as_bytes()));
        assert!(!t.matches("SELECT abalance FROM pgbench_accounts WHERE aid = x;".as_bytes()));
        assert!(!t.matches("SELECT abalance FROM pgbench_accounts WHERE aid = 7".as_bytes()));
        assert!(!t.matches("SELECT abalance FROM pgbench_accounts WHERE aid = 7;;".as_bytes()));
        assert!(!t.matches("SELECT bbalance FROM pgbench_accounts WHERE aid = 7;".as_bytes()));
        // Numbers with more than digits.
        assert!(t.matches("SELECT abalance FROM pgbench_accounts WHERE aid = 7_000;".as_bytes()));
        assert!(t.matches("SELECT abalance FROM pgbench_accounts WHERE aid = 0x1F;".as_bytes()));
        assert!(!t.matches("SELECT abalance FROM pgbench_accounts WHERE aid = 7e;".as_bytes()));
        assert!(!t.matches("SELECT abalance FROM pgbench_accounts WHERE aid = 7.;;".as_bytes()));
        // A number, then a cut-out that is lexed and checked for UTF-8.
        let t = template("SELECT a FROM t WHERE id = 5 AND b = 'x'");
        assert!(t.matches("SELECT a FROM t WHERE id = 123456 AND b = 'y'".as_bytes()));
        assert!(!t.matches(b"SELECT a FROM t WHERE id = 123456 AND b = '\xff'"));
        assert!(!t.matches("SELECT a FROM t WHERE id = 12x AND b = 'y'".as_bytes()));

        let t = template("UPDATE t SET v = 'a''b', w = E'\\n' /* trace='1' */ WHERE id IN (1, 2)");
        assert!(t.matches(
            "UPDATE t SET v = 'x', w = E'y' /* trace='2' */ WHERE id IN (7, 3.5)".as_bytes()
        ));
        assert!(!t.matches("UPDATE t SET v = 'x', w = E'y' WHERE id IN (3, 4)".as_bytes()));
        assert!(!t.matches("UPDATE t SET v = 'x', w = y /* c */ WHERE id IN (3, 4)".as_bytes()));
        // A literal where a word was: `abc'x'` then `abc5` (one word).
        let t = template("SELECT abc'x'");
        assert!(!t.matches("SELECT abc5".as_bytes()));
        assert!(t.matches("SELECT abc'yy'".as_bytes()));
        // Not UTF-8 in a literal: no match (the tracker analyses no such text).
        assert!(!t.matches(b"SELECT abc'\xff'"));
        assert!(t.matches("SELECT abc'\u{e9}'".as_bytes()));
        // A template of a long text never matches; the memo still answers.
        let long = format!("SELECT {} FROM t WHERE id = 1", "a, ".repeat(MAX_TEXT));
        assert!(!template(&long).matches(long.as_bytes()));
    }

    /// The analysis `template_after` gives.
    fn after(a: &Analyzer, sql: &[u8], last: &mut Option<Arc<Template>>) -> Option<Arc<Analysis>> {
        a.template_after(sql, last).map(|t| t.analysis().clone())
    }

    #[test]
    fn the_session_analysis_counts_a_recognized_text_as_a_hit() {
        let a = Analyzer::new(16);
        let mut last = None;
        let first = after(
            &a,
            "SELECT email FROM users WHERE id = 1".as_bytes(),
            &mut last,
        )
        .unwrap();
        // On another thread, whose memo is empty: only the template can
        // answer without a new one (the memo would give this thread's own
        // template of the shape, the shared cache a new template).
        let kept = last.clone();
        let again = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    after(
                        &a,
                        "SELECT email FROM users WHERE id = 22".as_bytes(),
                        &mut last,
                    )
                })
                .join()
        })
        .unwrap()
        .unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let (Some(kept), Some(now)) = (&kept, &last) else {
            panic!("a template is kept");
        };
        assert!(Arc::ptr_eq(kept, now), "recognized by the template");
        assert_eq!(a.stats.hits.get(), 1);
        assert_eq!(a.stats.misses.get(), 1);
        // Another shape: analysed, and now the one recognized.
        let other = after(
            &a,
            "SELECT name FROM users WHERE id = 3".as_bytes(),
            &mut last,
        )
        .unwrap();
        assert_ne!(other.fingerprint, first.fingerprint);
        assert!(last
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(t.analysis(), &other)));
        // A template of another analyzer is not used.
        let b = Analyzer::new(16);
        let theirs = after(
            &b,
            "SELECT name FROM users WHERE id = 4".as_bytes(),
            &mut last,
        )
        .unwrap();
        assert_eq!(b.stats.misses.get(), 1);
        assert!(!Arc::ptr_eq(&theirs, &other));
        // A text that is not UTF-8 has no analysis, and the template stays.
        assert!(after(&b, b"SELECT name FROM users WHERE id = '\xff'", &mut last).is_none());
        assert!(last
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(t.analysis(), &theirs)));
    }

    /// The property the tracker relies on: a text a template matches has the
    /// template text's shape key and fingerprint. Random texts from the bytes
    /// that make the lexer's look-ahead decisions, changed inside and
    /// outside their cut-outs.
    #[test]
    fn a_match_means_the_same_shape_key_on_random_texts() {
        const PIECES: &[&str] = &[
            "SELECT",
            " ",
            " ",
            "a",
            "ab",
            "e",
            "E",
            "x",
            "u",
            "U",
            "b",
            "n",
            "_",
            "é",
            "&",
            "'",
            "''",
            "\"",
            "\"q\"",
            "U&\"z\"",
            "😀",
            "$",
            "$1",
            "$$",
            "$q$",
            "$a",
            "1",
            "12",
            "0x",
            "0",
            ".",
            "..",
            "e5",
            "e+",
            "-",
            "--",
            "\n",
            "/",
            "*",
            "/*",
            "*/",
            "/*, ... */",
            ":",
            "::",
            "(",
            ")",
            ",",
            "=",
            "<",
            "+",
            "\\",
            "\t",
            ";",
            "[",
            "]",
        ];
        const CUTS: &[&str] = &[
            "1",
            "23",
            "4.5",
            ".5",
            "1e5",
            "0x1f",
            "1..",
            "'x'",
            "''",
            "'a''b'",
            "E'\\''",
            "e'x'",
            "x'ff'",
            "b'1'",
            "n'y'",
            "u&'z'",
            "'é😀'",
            "$1",
            "$$a$$",
            "$q$b$q$",
            "-- c\n",
            "/* c */",
            "/* /* n */ */",
            "/*, ... */",
            "'open",
            "/* open",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let hash = ahash::RandomState::with_seeds(1, 2, 3, 4);
        let (mut matched, mut tried) = (0, 0);
        for _ in 0..40_000 {
            let mut old = String::new();
            for _ in 0..1 + next(12) {
                let set = if next(3) == 0 { CUTS } else { PIECES };
                old.push_str(set[next(set.len())]);
            }
            let t = template(&old);
            for _ in 0..4 {
                // Change the text inside a cut-out (most of the time) or at
                // any char boundary.
                let mut new = old.clone();
                let span =
                    (!t.spans.is_empty() && next(4) != 0).then(|| t.spans[next(t.spans.len())]);
                let (from, to) = match span {
                    Some(s) => (s.start as usize, s.end as usize),
                    None => {
                        let bounds: Vec<usize> = (0..=old.len())
                            .filter(|&i| old.is_char_boundary(i))
                            .collect();
                        let a = bounds[next(bounds.len())];
                        let b = bounds[next(bounds.len())];
                        (a.min(b), a.max(b))
                    }
                };
                let mut with = String::new();
                for _ in 0..1 + next(2) {
                    let set = if next(2) == 0 { CUTS } else { PIECES };
                    with.push_str(set[next(set.len())]);
                }
                new.replace_range(from..to, &with);
                tried += 1;
                if t.matches(new.as_bytes()) {
                    matched += 1;
                    assert_eq!(
                        shape_key(&old, &hash),
                        shape_key(&new, &hash),
                        "{old:?} matched {new:?}"
                    );
                    assert_eq!(fingerprint(&old), fingerprint(&new), "{old:?} / {new:?}");
                }
            }
        }
        // The test means something only if many texts matched.
        eprintln!("{matched} of {tried} matched");
        assert!(matched > tried / 20, "{matched} of {tried} matched");
    }
}

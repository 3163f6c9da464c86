//! A cheap stand-in for the fingerprint as the key of a statement's
//! analysis: the statement's text as written, its literals and comments
//! cut out, hashed.
//!
//! Every simple-protocol statement is looked up by its shape. Normalizing
//! it (spacing rules, lower case, list folding) and hashing the result cost
//! more than the lookup itself; copying the lexer's tokens into a key and
//! comparing it cost half of what is left. The shape key runs the same
//! lexer, which only reports where literals and comments are, and hashes
//! the text between them in a few long runs.
//!
//! Equal texts between the cut-outs, with the cut-outs of the same kinds in
//! the same order, mean equal token streams up to literal values: the lexer
//! starts afresh after each cut-out. The fingerprint is built from that
//! stream alone, so equal keys have equal fingerprints (the reverse need not
//! hold: `SELECT  a` and `select a` have two keys and one fingerprint, which
//! only costs a second entry). The key is a 64-bit hash with a seed of the
//! process' own and the hashed length beside it: two shapes that collide
//! cannot be written on purpose, and by chance about once in 2^64.

use super::fingerprint::{lex, Cut, Sink};
use std::hash::{BuildHasher, Hasher};

/// Bytes that never occur in UTF-8 text (0xF5-0xFF) mark what was cut out,
/// so the hashed bytes are an unambiguous encoding of the texts between.
const LITERAL: u8 = 0xF5;
const COMMENT: u8 = 0xF6;
const FOLD: u8 = 0xF7;

/// What [`shape_key`] gives: compared and hashed by the memo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShapeKey {
    hash: u64,
    /// Bytes hashed, cut-out marks included.
    len: u32,
}

/// The shape key of `sql`, hashed with `seed`.
pub fn shape_key(sql: &str, seed: &ahash::RandomState) -> ShapeKey {
    let mut sink = KeySink {
        sql: sql.as_bytes(),
        hasher: seed.build_hasher(),
        from: 0,
        len: 0,
    };
    lex(sql, &mut sink);
    sink.hash_to(sql.len(), None);
    ShapeKey {
        hash: sink.hasher.finish(),
        len: sink.len as u32,
    }
}

struct KeySink<'a> {
    sql: &'a [u8],
    hasher: ahash::AHasher,
    /// Where the text not hashed yet starts.
    from: usize,
    len: usize,
}

impl KeySink<'_> {
    /// Hashes the text up to `start`, then `mark`.
    fn hash_to(&mut self, start: usize, mark: Option<u8>) {
        if let Some(run) = self.sql.get(self.from..start) {
            if !run.is_empty() {
                self.hasher.write(run);
                self.len += run.len();
            }
        }
        if let Some(m) = mark {
            self.hasher.write_u8(m);
            self.len += 1;
        }
    }
}

impl Sink for KeySink<'_> {
    fn cut(&mut self, kind: Cut, start: usize, end: usize) {
        let mark = match kind {
            Cut::Literal => LITERAL,
            Cut::Comment => COMMENT,
            Cut::Fold => FOLD,
        };
        self.hash_to(start, Some(mark));
        self.from = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fingerprint;

    fn key(sql: &str) -> ShapeKey {
        thread_local! {
            static SEED: ahash::RandomState = ahash::RandomState::new();
        }
        SEED.with(|seed| shape_key(sql, seed))
    }

    #[test]
    fn texts_that_differ_only_in_literals_share_a_key() {
        assert_eq!(
            key("SELECT abalance FROM pgbench_accounts WHERE aid = 12345;"),
            key("SELECT abalance FROM pgbench_accounts WHERE aid = 7;")
        );
        assert_eq!(
            key("UPDATE t SET v = 'a''b', w = E'\\n' WHERE id IN (1, 2)"),
            key("UPDATE t SET v = 'x', w = E'y' WHERE id IN (3, 4)")
        );
        // Comments too (sqlcommenter puts a trace id in each statement).
        assert_eq!(
            key("SELECT a FROM t /* traceparent='00-4bf92f' */"),
            key("SELECT a FROM t /* traceparent='00-00f067' */")
        );
        assert_eq!(
            key("SELECT a -- one\nFROM t"),
            key("SELECT a -- two\nFROM t")
        );
    }

    #[test]
    fn texts_with_other_tokens_have_other_keys() {
        let pairs = [
            ("SELECT a FROM t", "SELECT b FROM t"),
            ("SELECT a FROM t WHERE x = 1", "SELECT a FROM t WHERE x = y"),
            ("SELECT 'a' 'b'", "SELECT 'a''b'"),
            ("SELECT a.b FROM t", "SELECT ab FROM t"),
            ("SELECT \"A\" FROM t", "SELECT a FROM t"),
            ("SELECT x<>1", "SELECT x<1"),
            ("SELECT (1, 2)", "SELECT (1, 2, 3)"),
            ("SELECT a FROM t", "SELECT a FROM t WHERE true"),
            ("SELECT a/**/b", "SELECT ab"),
            ("SELECT 1 -- c\n", "SELECT 1 -- c\n+ 2"),
            (
                "SELECT * FROM t WHERE id IN (1 /*, ... */)",
                "SELECT * FROM t WHERE id IN (1 /* c */)",
            ),
        ];
        for (a, b) in pairs {
            assert_ne!(key(a), key(b), "{a} vs {b}");
        }
    }

    /// The property the cache relies on: one key, one fingerprint. Every
    /// pair of statements here with equal keys must have equal fingerprints.
    #[test]
    fn equal_keys_have_equal_fingerprints() {
        let corpus = [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 1",
            "SELECT abalance FROM pgbench_accounts WHERE aid = 99999",
            "select abalance from pgbench_accounts where aid = 3",
            "SELECT * FROM t WHERE id IN (1, 2, 3)",
            "SELECT * FROM t WHERE id IN (4, 5, 6)",
            "SELECT * FROM t WHERE id IN (1, 2, 3 /*, ... */)",
            "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
            "INSERT INTO t VALUES (3, 'c'), (4, 'd')",
            "SELECT $1::int, x'ff', b'01', n'x', u&'x', $$body$$, $q$x$q$",
            "SELECT $2::int, x'00', b'11', n'y', u&'y', $$other$$, $q$y$q$",
            "SELECT 1.5e3 + .5 - 0x1f",
            "SELECT 2.5e3 + .7 - 0x2f",
            "SELECT a -- comment 1\nFROM t",
            "SELECT a -- comment 2\nFROM t",
            "SELECT a /* c */ FROM t",
            "SELECT a /* d */ FROM t",
            "SELECT arr[1:2] FROM t",
            "SELECT arr[3:4] FROM t",
        ];
        for a in corpus {
            for b in corpus {
                if key(a) == key(b) {
                    assert_eq!(fingerprint(a), fingerprint(b), "{a} / {b}");
                }
            }
        }
    }

    /// The same property over the analysis corpus (284 statements from
    /// ORMs and migrations), each also with its digits changed.
    #[test]
    fn equal_keys_have_equal_fingerprints_over_the_corpus() {
        #[derive(serde::Deserialize)]
        struct Corpus {
            case: Vec<Case>,
        }
        #[derive(serde::Deserialize)]
        struct Case {
            sql: String,
        }
        let text = include_str!("../../tests/fixtures/analysis_corpus.toml");
        let corpus: Corpus = toml::from_str(text).expect("the corpus parses");
        let mut all: Vec<String> = Vec::new();
        for c in corpus.case {
            let shifted: String = c
                .sql
                .chars()
                .map(|ch| match ch.to_digit(10) {
                    Some(d) => char::from_digit((d + 1) % 10, 10).unwrap_or(ch),
                    None => ch,
                })
                .collect();
            all.push(c.sql);
            all.push(shifted);
        }
        let keyed: Vec<(ShapeKey, String)> =
            all.iter().map(|s| (key(s), fingerprint(s).text)).collect();
        let mut shared = 0;
        for (i, (ka, fa)) in keyed.iter().enumerate() {
            for (kb, fb) in &keyed[i + 1..] {
                if ka == kb {
                    shared += 1;
                    assert_eq!(fa, fb);
                }
            }
        }
        // Digits sit in literals in most statements: many pairs share a key.
        assert!(shared > 100, "{shared} pairs shared a key");
    }
}

//! A cheap stand-in for the fingerprint as the key of a statement's
//! analysis: the lexer's token stream, literals reduced to a mark, words and
//! operators as written.
//!
//! Every simple-protocol statement is looked up by its shape. Normalizing
//! it (spacing rules, lower case, list folding) and hashing the result cost
//! more than the lookup itself; the shape key is the same lexer's output
//! copied as is. Equal keys mean equal token streams up to literal values,
//! and the fingerprint is built from that stream alone, so equal keys have
//! equal fingerprints (the reverse need not hold: `SELECT` and `select`
//! have two keys and one fingerprint, which only costs a second entry).

use super::fingerprint::{lex, Sink, Tok};

/// Bytes that never occur in UTF-8 text (0xF5-0xFF) mark each token's kind
/// and end, so the key is an unambiguous encoding of the token stream.
const LITERAL: u8 = 0xF5;
const FOLD: u8 = 0xF6;
/// 0xF7-0xFA: `PUSH` + the token kind.
const PUSH: u8 = 0xF7;
const WORD: u8 = 0xFB;
const PUNCT: u8 = 0xFC;
const END: u8 = 0xFF;

/// Writes the shape key of `sql` into `key` (cleared first).
pub fn shape_key(sql: &str, key: &mut Vec<u8>) {
    key.clear();
    key.reserve(sql.len() + 16);
    lex(sql, &mut KeySink(key));
}

struct KeySink<'a>(&'a mut Vec<u8>);

impl Sink for KeySink<'_> {
    fn literal(&mut self) {
        self.0.push(LITERAL);
    }

    fn fold_marker(&mut self) {
        self.0.push(FOLD);
    }

    fn push(&mut self, tok: Tok, s: &str) {
        let kind = match tok {
            Tok::Word => 0,
            Tok::Quoted => 1,
            Tok::Literal => 2,
            Tok::Punct => 3,
        };
        self.0.push(PUSH + kind);
        self.0.extend_from_slice(s.as_bytes());
        self.0.push(END);
    }

    fn word(&mut self, w: &str) {
        self.0.push(WORD);
        self.0.extend_from_slice(w.as_bytes());
        self.0.push(END);
    }

    fn punct(&mut self, c: u8) {
        self.0.push(PUNCT);
        self.0.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::fingerprint;

    fn key(sql: &str) -> Vec<u8> {
        let mut k = Vec::new();
        shape_key(sql, &mut k);
        k
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
        let keyed: Vec<(Vec<u8>, String)> =
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

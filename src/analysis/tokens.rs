//! A small tokenizer for the few statements whose values the proxy reads
//! (`SET search_path`, admin console commands). Comments, strings and
//! quoted identifiers are skipped by the fingerprint lexer's own rules.

use super::fingerprint::{skip_block_comment, skip_quoted_ident, skip_string};

/// One token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// Unquoted word, folded to lower case as Postgres folds identifiers.
    Word(String),
    /// `"Quoted"` identifier, case kept, `""` unescaped.
    Ident(String),
    /// `'string'` literal, `''` unescaped.
    Str(String),
    /// Any other character (`.`, `,`, `;`, `=`, ...).
    Punct(char),
}

/// A string or quoted identifier that never closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unterminated {
    /// `'` or `"`.
    pub quote: char,
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// The body between `start` (the opening quote) and `end` (just after the
/// closing one), with doubled quotes unescaped.
fn quoted(sql: &str, start: usize, end: usize, quote: char) -> Result<String, Unterminated> {
    let closed = end > start + 1 && sql.as_bytes()[end - 1] == quote as u8;
    if !closed {
        return Err(Unterminated { quote });
    }
    let doubled: String = [quote, quote].iter().collect();
    Ok(sql[start + 1..end - 1].replace(&doubled, &quote.to_string()))
}

/// Splits `sql` into tokens, skipping white space and comments.
pub fn tokens(sql: &str) -> Result<Vec<Token>, Unterminated> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            i = skip_block_comment(b, i);
        } else if c == b'\'' {
            let end = skip_string(b, i + 1, false);
            out.push(Token::Str(quoted(sql, i, end, '\'')?));
            i = end;
        } else if c == b'"' {
            let end = skip_quoted_ident(b, i + 1);
            out.push(Token::Ident(quoted(sql, i, end, '"')?));
            i = end;
        } else if is_word_byte(c) {
            let start = i;
            while i < b.len() && is_word_byte(b[i]) {
                i += 1;
            }
            out.push(Token::Word(sql[start..i].to_ascii_lowercase()));
        } else {
            // A multi-byte character never gets here (>= 0x80 is a word byte).
            out.push(Token::Punct(c as char));
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_fold_quotes_keep_case_comments_vanish() {
        assert_eq!(
            tokens(
                "SET /* a /* nested */ note */ Search_Path TO \"My \"\"App\"\"\", 'it''s' -- tail"
            )
            .unwrap(),
            vec![
                Token::Word("set".into()),
                Token::Word("search_path".into()),
                Token::Word("to".into()),
                Token::Ident("My \"App\"".into()),
                Token::Punct(','),
                Token::Str("it's".into()),
            ]
        );
        assert_eq!(tokens("a.b;").unwrap()[1], Token::Punct('.'));
        assert_eq!(tokens("SHOW 'x"), Err(Unterminated { quote: '\'' }));
        assert_eq!(tokens("\"x"), Err(Unterminated { quote: '"' }));
    }
}

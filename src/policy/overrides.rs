//! The override comment `-- ddlguard:allow RULE-ID reason` (also inside
//! `/* ... */`): it lets one statement through one rule and is recorded.

use super::tokens::Tok;

/// One override written in a statement's comments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The rule id it names.
    pub rule: String,
    /// The reason given (may be empty).
    pub reason: String,
}

const MARK: &str = "ddlguard:allow";

/// The overrides in the comments of `text` (occurrences inside strings or
/// identifiers, i.e. inside a token, do not count).
pub fn parse(text: &str, tokens: &[Tok]) -> Vec<Override> {
    let lower = text.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(p) = lower[from..].find(MARK) {
        let at = from + p;
        from = at + MARK.len();
        if tokens.iter().any(|t| t.start <= at && at < t.end) {
            continue;
        }
        let rest = &text[from..];
        let line = rest
            .split(['\n', '\r'])
            .next()
            .unwrap_or("")
            .split("*/")
            .next()
            .unwrap_or("");
        let mut words = line.trim().splitn(2, char::is_whitespace);
        let rule = words.next().unwrap_or("").to_ascii_lowercase();
        if rule.is_empty() {
            continue;
        }
        out.push(Override {
            rule,
            reason: words.next().unwrap_or("").trim().to_string(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::tokens::lex;

    #[test]
    fn comments_name_rules_and_reasons() {
        let sql = "-- ddlguard:allow truncate-table staging table, nobody reads it\nTRUNCATE t /* ddlguard:allow lock-table-explicit */";
        assert_eq!(
            parse(sql, &lex(sql)),
            vec![
                Override {
                    rule: "truncate-table".into(),
                    reason: "staging table, nobody reads it".into()
                },
                Override {
                    rule: "lock-table-explicit".into(),
                    reason: String::new()
                }
            ]
        );
        let inside = "SELECT '-- ddlguard:allow truncate-table x'";
        assert!(parse(inside, &lex(inside)).is_empty());
    }
}

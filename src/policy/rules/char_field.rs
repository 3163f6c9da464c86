//! `char-field`: char(n) / character(n) columns.

use super::support::new_columns;
use crate::policy::PolicySettings;

use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "char-field",
    summary: "char(n) / character(n) columns",
    lock: "none",
    why: "char pads with spaces, compares surprisingly, and is no faster than text",
    alternative: "use text (or varchar)",
    default: Action::Allow,
    category: Category::Advice,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, _ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    new_columns(st).into_iter().find_map(|c| {
        (c.type_name == "char"
            || c.type_name.starts_with("char(")
            || c.type_name.starts_with("character(")
            || c.type_name == "character")
            .then(|| Hit::new(format!("column {} is {}; prefer text", c.name, c.type_name)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn positive_and_negative() {
        assert!(hit(&RULE, "CREATE TABLE t (code char(3))").is_some());
        assert!(hit(&RULE, "CREATE TABLE t (code text)").is_none());
    }
}

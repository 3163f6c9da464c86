//! `prefer-text-field`: varchar(n) columns.

use super::support::new_columns;
use crate::policy::PolicySettings;

use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "prefer-text-field",
    summary: "varchar(n) columns",
    lock: "none",
    why: "raising the limit later is cheap, but lowering it rewrites the table; a CHECK on length is easier to change",
    alternative: "use text (with a CHECK (length(col) <= n) NOT VALID when a limit matters)",
    default: Action::Allow,
    category: Category::Advice,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, _ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    new_columns(st).into_iter().find_map(|c| {
        (c.type_name.starts_with("varchar(") || c.type_name.starts_with("character varying("))
            .then(|| Hit::new(format!("column {} is {}; prefer text", c.name, c.type_name)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn positive_and_negative() {
        assert!(hit(&RULE, "CREATE TABLE t (name varchar(20))").is_some());
        assert!(hit(&RULE, "CREATE TABLE t (name text)").is_none());
    }
}

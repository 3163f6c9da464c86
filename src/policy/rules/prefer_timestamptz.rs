//! `prefer-timestamptz`: timestamp without time zone columns.

use super::support::new_columns;
use crate::policy::PolicySettings;

use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "prefer-timestamptz",
    summary: "timestamp without time zone columns",
    lock: "none",
    why: "the value's meaning depends on the writer's time zone; changing the type later rewrites the table",
    alternative: "use timestamptz",
    default: Action::Allow,
    category: Category::Advice,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, _ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    new_columns(st).into_iter().find_map(|c| {
        matches!(
            c.type_name.as_str(),
            "timestamp" | "timestamp without time zone"
        )
        .then(|| {
            Hit::new(format!(
                "column {} is {}; prefer timestamptz",
                c.name, c.type_name
            ))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn positive_and_negative() {
        assert!(hit(&RULE, "CREATE TABLE t (at timestamp)").is_some());
        assert!(hit(&RULE, "CREATE TABLE t (at timestamptz)").is_none());
    }
}

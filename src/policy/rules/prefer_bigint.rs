//! `prefer-bigint`: integer / smallint (or serial) columns.

use super::support::new_columns;
use crate::policy::PolicySettings;

use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "prefer-bigint",
    summary: "integer / smallint (or serial) columns",
    lock: "none",
    why: "a 32-bit key runs out at 2^31 and changing the type later rewrites the table under ACCESS EXCLUSIVE",
    alternative: "use bigint (bigint identity for keys)",
    default: Action::Allow,
    category: Category::Advice,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, _ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    new_columns(st).into_iter().find_map(|c| {
        matches!(
            c.type_name.as_str(),
            "int"
                | "integer"
                | "int4"
                | "smallint"
                | "int2"
                | "serial"
                | "serial4"
                | "smallserial"
                | "serial2"
        )
        .then(|| {
            Hit::new(format!(
                "column {} is {}; bigint avoids a rewrite later",
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
        assert!(hit(&RULE, "CREATE TABLE t (id int)").is_some());
        assert!(hit(&RULE, "ALTER TABLE t ADD COLUMN n integer").is_some());
        assert!(hit(&RULE, "CREATE TABLE t (id bigint)").is_none());
    }
}

//! `drop-generated-expression`: ALTER COLUMN ... DROP EXPRESSION.

use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "drop-generated-expression",
    summary: "ALTER COLUMN ... DROP EXPRESSION",
    lock: "ACCESS EXCLUSIVE (brief)",
    why: "the column stops following its expression: new rows get NULL or whatever writers send, and readers that rely on the computed value get stale data",
    alternative: "make writers fill the column (or a trigger) before dropping the expression",
    default: Action::Warn,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::DropExpression { table, column } if !ctx.created_here(table) => Some(Hit::new(format!(
            "{table}.{column} stops being computed; readers relying on its value get stale or NULL data"
        ))),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn positive_and_negative() {
        assert!(hit(&RULE, "ALTER TABLE t ALTER COLUMN total DROP EXPRESSION").is_some());
        assert!(hit(&RULE, "ALTER TABLE t ALTER COLUMN total DROP DEFAULT").is_none());
    }
}

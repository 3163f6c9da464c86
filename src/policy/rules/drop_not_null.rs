//! `drop-not-null`: ALTER COLUMN ... DROP NOT NULL.

use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "drop-not-null",
    summary: "ALTER COLUMN ... DROP NOT NULL",
    lock: "ACCESS EXCLUSIVE (brief)",
    why: "readers that rely on the column never being NULL (NOT NULL in their types, no NULL handling) break on the first NULL written",
    alternative: "check that every reader handles NULL in this column before dropping the guarantee",
    default: Action::Warn,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::DropNotNull { table, column } if !ctx.created_here(table) => Some(Hit::new(format!(
            "DROP NOT NULL lets {table}.{column} hold NULL; readers may rely on it never doing so"
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
        assert!(hit(&RULE, "ALTER TABLE t ALTER COLUMN a DROP NOT NULL").is_some());
        assert!(hit(&RULE, "ALTER TABLE t ALTER COLUMN a SET DEFAULT 1").is_none());
    }
}

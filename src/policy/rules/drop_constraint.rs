//! `drop-constraint`: ALTER TABLE ... DROP CONSTRAINT.

use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "drop-constraint",
    summary: "ALTER TABLE ... DROP CONSTRAINT",
    lock: "ACCESS EXCLUSIVE (brief)",
    why: "a guarantee readers may rely on (uniqueness, a valid reference, a check) disappears; dropping a unique or primary key constraint also drops its index, so queries may slow down",
    alternative: "check that no reader relies on the constraint (and no query on its index) before dropping it",
    default: Action::Warn,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::DropConstraint { table, name } if !ctx.created_here(table) => Some(Hit::new(format!(
            "dropping constraint {name} removes a guarantee readers of {table} may rely on"
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
        assert!(hit(&RULE, "ALTER TABLE t DROP CONSTRAINT t_a_check").is_some());
        assert!(hit(&RULE, "ALTER TABLE t VALIDATE CONSTRAINT c").is_none());
    }
}

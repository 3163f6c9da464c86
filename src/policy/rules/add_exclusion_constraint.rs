//! `add-exclusion-constraint`: ADD EXCLUDE.

use super::support::relaxed;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "add-exclusion-constraint",
    summary: "ALTER TABLE ... ADD EXCLUDE",
    lock: "ACCESS EXCLUSIVE while the exclusion index is built and every row checked",
    why: "all reads and writes wait for the whole build; exclusion constraints have no NOT VALID or USING INDEX form",
    alternative: "create the table with the constraint and move the data over, or add it in a maintenance window",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::AddExclusion { table } if !relaxed(table, ctx, s) => Some(Hit::new(format!(
            "ADD EXCLUDE on {table} builds its index and checks every row under ACCESS EXCLUSIVE"
        ))),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn exclusion_is_found() {
        assert!(hit(
            &RULE,
            "ALTER TABLE t ADD CONSTRAINT e EXCLUDE USING gist (r WITH &&)"
        )
        .is_some());
        assert!(hit_in(
            &RULE,
            "ALTER TABLE t ADD CONSTRAINT e EXCLUDE USING gist (r WITH &&)",
            &created_t()
        )
        .is_none());
        assert!(hit(&RULE, "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)").is_none());
    }
}

//! `change-type-in-use`: ALTER COLUMN TYPE while another client used the column within usage.window.

use super::support::in_use;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, ObjectKind, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "change-type-in-use",
    summary: "ALTER COLUMN TYPE while another client used the column within usage.window",
    lock: "ACCESS EXCLUSIVE",
    why: "clients may get values of another type (drivers that decode by type OID break, prepared statements fail with 0A000 cached plan must not change result type)",
    alternative: "add a new column of the new type and move clients to it (expand and contract)",
    default: Action::Warn,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops
        .iter()
        .find_map(|op| match op {
            Op::AlterColumnType { table, column, .. } => in_use(
                ctx,
                ObjectKind::Table,
                table,
                Some(column),
                "ALTER COLUMN TYPE changes",
            ),
            _ => None,
        })
        .map(Hit::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn fires_only_when_another_client_used_it() {
        assert_fires_only_when_used(
            &RULE,
            "ALTER TABLE t ALTER COLUMN used_col TYPE bigint",
            "used_col",
            "ALTER TABLE t ALTER COLUMN other TYPE bigint",
        );
    }
}

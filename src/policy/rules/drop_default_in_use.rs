//! `drop-default-in-use`: DROP DEFAULT while a client inserts without naming that column.

use super::support::in_use;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, ObjectKind, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "drop-default-in-use",
    summary: "DROP DEFAULT while a client inserts without naming that column",
    lock: "ACCESS EXCLUSIVE (brief)",
    why:
        "clients that insert without naming the column now store NULL, or fail on NOT NULL columns",
    alternative: "make every client name the column in its INSERTs first, then drop the default",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops
        .iter()
        .find_map(|op| match op {
            Op::DropDefault { table, column } => in_use(
                ctx,
                ObjectKind::Table,
                table,
                Some(column),
                "DROP DEFAULT removes the default of",
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
            "ALTER TABLE t ALTER COLUMN used_col DROP DEFAULT",
            "used_col",
            "ALTER TABLE t ALTER COLUMN other DROP DEFAULT",
        );
    }
}

//! `rename-column-in-use`: RENAME COLUMN while another client used the column within usage.window.

use super::support::in_use;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, ObjectKind, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "rename-column-in-use",
    summary: "RENAME COLUMN while another client used the column within usage.window",
    lock: "ACCESS EXCLUSIVE (brief)",
    why: "clients that still name the old column fail with 42703 undefined_column as soon as the rename commits",
    alternative: "expand and contract: add the new column, write both, move readers, then drop the old one; or a view that keeps the old name",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops
        .iter()
        .find_map(|op| match op {
            Op::RenameColumn { table, from, .. } => in_use(
                ctx,
                ObjectKind::Table,
                table,
                Some(from),
                "RENAME COLUMN renames",
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
            "ALTER TABLE t RENAME COLUMN used_col TO c2",
            "used_col",
            "ALTER TABLE t RENAME COLUMN other TO c2",
        );
    }
}

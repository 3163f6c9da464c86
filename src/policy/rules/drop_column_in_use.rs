//! `drop-column-in-use`: DROP COLUMN while another client used the column within usage.window.

use super::support::in_use;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, ObjectKind, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "drop-column-in-use",
    summary: "DROP COLUMN while another client used the column within usage.window",
    lock: "ACCESS EXCLUSIVE (brief)",
    why: "clients that still read or write the column fail with 42703 undefined_column as soon as the drop commits",
    alternative: "stop using the column in every client first (SHOW DEPENDENTS names them), then drop it",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops
        .iter()
        .find_map(|op| match op {
            Op::DropColumn { table, columns } => columns.iter().find_map(|c| {
                in_use(
                    ctx,
                    ObjectKind::Table,
                    table,
                    Some(c),
                    "DROP COLUMN removes",
                )
            }),
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
            "ALTER TABLE t DROP COLUMN used_col",
            "used_col",
            "ALTER TABLE t DROP COLUMN other",
        );
    }
}

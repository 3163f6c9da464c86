//! `rename-table-in-use`: RENAME TABLE while another client used the table within usage.window.

use super::support::in_use;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, ObjectKind, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "rename-table-in-use",
    summary: "RENAME TABLE while another client used the table within usage.window",
    lock: "ACCESS EXCLUSIVE (brief)",
    why: "clients that still name the old table fail with 42P01 undefined_table as soon as the rename commits",
    alternative: "rename, then CREATE VIEW old_name AS SELECT * FROM new_name until every client moved; or move clients first",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops
        .iter()
        .find_map(|op| match op {
            Op::Rename {
                kind: ObjectKind::Table,
                name,
                ..
            } => in_use(ctx, ObjectKind::Table, name, None, "RENAME TABLE renames"),
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
            "ALTER TABLE used_t RENAME TO t2",
            "used_t",
            "ALTER TABLE other RENAME TO t2",
        );
    }
}

//! `alter-identity-in-use`: ALTER COLUMN ... identity change (ADD/SET GENERATED, DROP IDENTITY, RESTART) while the column is in use.

use super::support::in_use;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, ObjectKind, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "alter-identity-in-use",
    summary: "ALTER COLUMN ... identity change (ADD/SET GENERATED, DROP IDENTITY, RESTART) while the column is in use",
    lock: "ACCESS EXCLUSIVE (brief)",
    why: "clients that insert explicit values or rely on generated ones get errors or different values",
    alternative: "check with the clients named that they do not insert into the column or rely on its sequence, then change it",
    default: Action::Warn,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops
        .iter()
        .find_map(|op| match op {
            Op::AlterIdentity { table, column } => in_use(
                ctx,
                ObjectKind::Table,
                table,
                Some(column),
                "the identity change alters",
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
            "ALTER TABLE t ALTER COLUMN used_col DROP IDENTITY",
            "used_col",
            "ALTER TABLE t ALTER COLUMN other DROP IDENTITY",
        );
    }
}

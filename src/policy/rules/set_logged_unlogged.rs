//! `set-logged-unlogged`: ALTER TABLE ... SET LOGGED / SET UNLOGGED.

use super::support::relaxed;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "set-logged-unlogged",
    summary: "ALTER TABLE ... SET LOGGED / SET UNLOGGED",
    lock: "ACCESS EXCLUSIVE while the table is rewritten",
    why: "the whole table is rewritten (and, for SET LOGGED, written to the WAL) while all reads and writes wait",
    alternative: "create the table with the wanted persistence and copy the data in batches, or run it in a maintenance window",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::SetLogged { table, logged } if !relaxed(table, ctx, s) => Some(Hit::new(format!(
            "SET {} rewrites {table} under ACCESS EXCLUSIVE",
            if *logged { "LOGGED" } else { "UNLOGGED" }
        ))),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn persistence_changes_are_found() {
        assert!(hit(&RULE, "ALTER TABLE t SET LOGGED").is_some());
        assert!(hit(&RULE, "ALTER TABLE t SET UNLOGGED").is_some());
        assert!(hit_in(&RULE, "ALTER TABLE t SET LOGGED", &created_t()).is_none());
        assert!(hit(&RULE, "ALTER TABLE t ADD COLUMN a int").is_none());
    }
}

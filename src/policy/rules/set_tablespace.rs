//! `set-tablespace`: ALTER TABLE ... SET TABLESPACE.

use super::support::relaxed;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "set-tablespace",
    summary: "ALTER TABLE ... SET TABLESPACE",
    lock: "ACCESS EXCLUSIVE while the table is copied",
    why: "the whole table is copied to the new tablespace while all reads and writes wait",
    alternative: "create a copy in the new tablespace and switch over (logical replication or pg_repack), or run it in a maintenance window",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::SetTablespace { table } if !relaxed(table, ctx, s) => Some(Hit::new(format!(
            "SET TABLESPACE copies {table} under ACCESS EXCLUSIVE"
        ))),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn set_tablespace_is_found_even_unparsed() {
        assert!(hit(&RULE, "ALTER TABLE t SET TABLESPACE fast").is_some());
        assert!(hit_in(&RULE, "ALTER TABLE t SET TABLESPACE fast", &created_t()).is_none());
        assert!(hit(&RULE, "ALTER TABLE t SET LOGGED").is_none());
    }
}

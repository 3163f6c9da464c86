//! `update-delete-without-where`: UPDATE/DELETE without WHERE on a large table.

use super::support::relaxed;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "update-delete-without-where",
    summary: "UPDATE or DELETE without WHERE on a table above small_table_rows",
    lock: "ROW EXCLUSIVE, plus a row lock on every row until the transaction ends",
    why:
        "every row is locked until COMMIT (other writers wait) and the table bloats by its own size",
    alternative:
        "update or delete in key-range batches, each its own short transaction (ddlguard backfill)",
    default: Action::Warn,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::UpdateAll { table } | Op::DeleteAll { table } if !relaxed(table, ctx, s) => {
            let verb = if matches!(op, Op::UpdateAll { .. }) {
                "UPDATE"
            } else {
                "DELETE"
            };
            Some(Hit::new(format!(
                "{verb} without WHERE locks every row of {table} until the transaction ends"
            )))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn whole_table_writes_are_found() {
        assert!(hit(&RULE, "UPDATE t SET a = 1").is_some());
        assert!(hit(&RULE, "DELETE FROM t").is_some());
        assert!(hit(&RULE, "DELETE FROM t WHERE id < 100").is_none());
        let cat = catalog(50, &[]);
        let ctx = Context {
            catalog: Some(&cat),
            ..Context::default()
        };
        assert!(hit_in(&RULE, "DELETE FROM t", &ctx).is_none());
    }
}

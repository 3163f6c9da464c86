//! `add-column-generated-stored`: ADD COLUMN ... GENERATED ALWAYS AS (...) STORED.

use super::support::relaxed;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "add-column-generated-stored",
    summary: "ADD COLUMN ... GENERATED ALWAYS AS (...) STORED",
    lock: "ACCESS EXCLUSIVE while the whole table is rewritten",
    why: "the stored value is computed and written for every existing row while all reads and writes wait",
    alternative: "add a plain nullable column, fill it with a trigger for new rows and a batched backfill for old ones, or compute it in a view",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::AddColumn { table, column, .. }
            if column.generated_stored && !relaxed(table, ctx, s) =>
        {
            Some(Hit::new(format!(
                "stored generated column {table}.{} rewrites every row under ACCESS EXCLUSIVE",
                column.name
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
    fn stored_generated_columns_are_found() {
        assert!(hit(
            &RULE,
            "ALTER TABLE t ADD COLUMN d int GENERATED ALWAYS AS (a * 2) STORED"
        )
        .is_some());
        assert!(hit(&RULE, "ALTER TABLE t ADD COLUMN d int").is_none());
        assert!(hit_in(
            &RULE,
            "ALTER TABLE t ADD COLUMN d int GENERATED ALWAYS AS (a * 2) STORED",
            &created_t()
        )
        .is_none());
    }
}

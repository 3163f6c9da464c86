//! `add-column-not-null-no-default`: ADD COLUMN ... NOT NULL without DEFAULT.

use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "add-column-not-null-no-default",
    summary: "ADD COLUMN ... NOT NULL without DEFAULT",
    lock: "ACCESS EXCLUSIVE",
    why: "on a table with rows Postgres refuses it (existing rows would be NULL), failing the migration half-way",
    alternative: "ADD COLUMN with a constant DEFAULT (no rewrite on PG 11+), or add it nullable, backfill, then SET NOT NULL safely",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::AddColumn { table, column, .. }
            if column.not_null
                && column.default.is_none()
                && !column.identity
                && !column.is_serial()
                && !column.generated_stored
                && !ctx.created_here(table)
                && ctx.rows(table) != Some(0) =>
        {
            Some(Hit::new(format!(
                "NOT NULL column {table}.{} has no default: Postgres refuses it when {table} has rows",
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
    fn not_null_without_default_is_found() {
        assert!(hit(&RULE, "ALTER TABLE t ADD COLUMN a int NOT NULL").is_some());
        assert!(hit(&RULE, "ALTER TABLE t ADD COLUMN a int NOT NULL DEFAULT 0").is_none());
        assert!(hit(&RULE, "ALTER TABLE t ADD COLUMN a int").is_none());
        assert!(hit_in(
            &RULE,
            "ALTER TABLE t ADD COLUMN a int NOT NULL",
            &created_t()
        )
        .is_none());
    }
}

//! `add-column-serial-identity`: ADD COLUMN serial / bigserial / identity
//! to a table with rows.

use super::support::relaxed;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "add-column-serial-identity",
    summary: "ADD COLUMN serial / bigserial / GENERATED ... AS IDENTITY to a table with rows",
    lock: "ACCESS EXCLUSIVE while the whole table is rewritten",
    why: "a value from the sequence is written into every existing row while all reads and writes wait",
    alternative: "add a nullable bigint column, create the sequence and SET DEFAULT nextval(...), backfill in batches, then add the identity or NOT NULL safely",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::AddColumn { table, column, .. }
            if (column.is_serial() || column.identity) && !relaxed(table, ctx, s) =>
        {
            Some(Hit::new(format!(
                "new column {table}.{} ({}) fills every existing row from a sequence, rewriting the table under ACCESS EXCLUSIVE",
                column.name,
                if column.identity { "identity" } else { column.type_name.as_str() }
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
    fn serial_and_identity_columns_are_found() {
        assert!(hit(&RULE, "ALTER TABLE t ADD COLUMN n bigserial").is_some());
        assert!(hit(
            &RULE,
            "ALTER TABLE t ADD COLUMN n int GENERATED ALWAYS AS IDENTITY"
        )
        .is_some());
        assert!(hit(&RULE, "ALTER TABLE t ADD COLUMN n bigint").is_none());
        let cat = catalog(0, &[]);
        let ctx = Context {
            catalog: Some(&cat),
            ..Context::default()
        };
        assert!(hit_in(&RULE, "ALTER TABLE t ADD COLUMN n bigserial", &ctx).is_none());
    }
}

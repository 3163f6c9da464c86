//! `set-not-null-scan`: ALTER COLUMN ... SET NOT NULL.

use super::support::{no_constraint, pg_name, relaxed, single, validate};
use crate::policy::statement::Op;
use crate::policy::tokens::{ident, qualified};
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Plan, Rule, Statement, Step};

/// The rule.
pub const RULE: Rule = Rule {
    id: "set-not-null-scan",
    summary: "ALTER COLUMN ... SET NOT NULL",
    lock: "ACCESS EXCLUSIVE while every row is checked",
    why: "all reads and writes wait while the whole table is scanned for NULLs",
    alternative: "ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c; SET NOT NULL (PG 12+ uses the check and skips the scan); DROP CONSTRAINT c",
    default: Action::Rewrite,
    category: Category::Proxy,
    can_rewrite: true,
    check,
};

fn check(st: &Statement, ctx: &Context, s: &PolicySettings) -> Option<Hit> {
    let Some(Op::SetNotNull { table, column }) =
        st.ops.iter().find(|o| matches!(o, Op::SetNotNull { .. }))
    else {
        return None;
    };
    if relaxed(table, ctx, s) {
        return None;
    }
    let hit = Hit::new(format!(
        "SET NOT NULL on {table}.{column} scans every row under ACCESS EXCLUSIVE"
    ));
    if single(st).is_none() || ctx.server_version < 120000 {
        return Some(hit);
    }
    let name = pg_name(&[&table.name, column], "not_null_ddlguard");
    let (t, c, n) = (qualified(table), ident(column), ident(&name));
    Some(hit.plan(Plan {
        steps: vec![
            Step::new(
                format!("ALTER TABLE {t} ADD CONSTRAINT {n} CHECK ({c} IS NOT NULL) NOT VALID"),
                format!("add a NOT VALID check that {c} is not null"),
            )
            .only_if(no_constraint(table, &name)),
            validate(table, &name),
            Step::new(
                format!("ALTER TABLE {t} ALTER COLUMN {c} SET NOT NULL"),
                "set NOT NULL; the validated check spares the scan",
            ),
            Step::new(
                format!("ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {n}"),
                "drop the helper check",
            ),
        ],
        tag: "ALTER TABLE".into(),
        outside_transaction: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn set_not_null_goes_through_a_validated_check() {
        let plan = hit(&RULE, "ALTER TABLE t ALTER COLUMN email SET NOT NULL")
            .unwrap()
            .plan
            .unwrap();
        let sql: Vec<&str> = plan.steps.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            sql,
            [
                "ALTER TABLE t ADD CONSTRAINT t_email_not_null_ddlguard CHECK (email IS NOT NULL) NOT VALID",
                "ALTER TABLE t VALIDATE CONSTRAINT t_email_not_null_ddlguard",
                "ALTER TABLE t ALTER COLUMN email SET NOT NULL",
                "ALTER TABLE t DROP CONSTRAINT IF EXISTS t_email_not_null_ddlguard",
            ]
        );
    }

    #[test]
    fn other_changes_and_new_tables_pass() {
        assert!(hit(&RULE, "ALTER TABLE t ALTER COLUMN a DROP NOT NULL").is_none());
        assert!(hit_in(
            &RULE,
            "ALTER TABLE t ALTER COLUMN a SET NOT NULL",
            &created_t()
        )
        .is_none());
    }
}

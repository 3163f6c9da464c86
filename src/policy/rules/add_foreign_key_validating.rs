//! `add-foreign-key-validating`: ADD FOREIGN KEY (or ADD COLUMN ...
//! REFERENCES) without NOT VALID.

use super::support::{no_constraint, pg_name, relaxed, single, validate};
use crate::policy::statement::Op;
use crate::policy::tokens::{ident, qualified};
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Plan, Rule, Statement, Step};

/// The rule.
pub const RULE: Rule = Rule {
    id: "add-foreign-key-validating",
    summary: "ADD FOREIGN KEY (also ADD COLUMN ... REFERENCES) without NOT VALID",
    lock: "SHARE ROW EXCLUSIVE on both tables while every row is checked",
    why: "writes to the table and to the referenced table wait while all existing rows are validated",
    alternative: "ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID, then VALIDATE CONSTRAINT in its own transaction",
    default: Action::Rewrite,
    category: Category::Proxy,
    can_rewrite: true,
    check,
};

fn check(st: &Statement, ctx: &Context, s: &PolicySettings) -> Option<Hit> {
    let op = st.ops.iter().find(|o| {
        matches!(
            o,
            Op::AddForeignKey {
                not_valid: false,
                ..
            }
        )
    })?;
    let Op::AddForeignKey {
        table,
        constraint,
        columns,
        in_column,
        ..
    } = op
    else {
        return None;
    };
    if relaxed(table, ctx, s) {
        return None;
    }
    let hit = Hit::new(format!(
        "the new foreign key on {table} is validated against every row while writes to both tables wait"
    ));
    if single(st).is_none() {
        return Some(hit);
    }
    let cols: Vec<&str> = columns.iter().map(String::as_str).collect();
    let name = constraint.clone().unwrap_or_else(|| {
        let mut parts = vec![table.name.as_str()];
        parts.extend(cols.iter().copied());
        pg_name(&parts, "fkey")
    });
    let t = qualified(table);
    let mut steps = Vec::new();
    let add = match in_column {
        Some(c) => {
            steps.push(Step::new(
                format!("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {}", c.bare_sql),
                format!("add column {} without its foreign key", ident(&c.name)),
            ));
            format!(
                "ALTER TABLE {t} ADD CONSTRAINT {} FOREIGN KEY ({}) {} NOT VALID",
                ident(&name),
                ident(&c.name),
                c.references.clone().unwrap_or_default()
            )
        }
        None if constraint.is_some() => format!("{} NOT VALID", st.body()),
        None => format!(
            "{} NOT VALID",
            st.insert_after("add", &format!(" CONSTRAINT {}", ident(&name)))?
        ),
    };
    steps.push(
        Step::new(
            add,
            format!(
                "add foreign key {} without checking existing rows (NOT VALID)",
                ident(&name)
            ),
        )
        .only_if(no_constraint(table, &name)),
    );
    steps.push(validate(table, &name));
    Some(hit.plan(Plan {
        steps,
        tag: "ALTER TABLE".into(),
        outside_transaction: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn foreign_key_is_added_not_valid_then_validated() {
        let plan = hit(
            &RULE,
            "ALTER TABLE t ADD FOREIGN KEY (o_id) REFERENCES o (id)",
        )
        .unwrap()
        .plan
        .unwrap();
        let sql: Vec<&str> = plan.steps.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            sql,
            [
                "ALTER TABLE t ADD CONSTRAINT t_o_id_fkey FOREIGN KEY (o_id) REFERENCES o (id) NOT VALID",
                "ALTER TABLE t VALIDATE CONSTRAINT t_o_id_fkey"
            ]
        );
        assert!(plan.steps[0].only_if.is_some());
        let plan = hit(
            &RULE,
            "ALTER TABLE t ADD COLUMN o_id bigint NOT NULL DEFAULT 1 REFERENCES o (id) ON DELETE CASCADE",
        )
        .unwrap()
        .plan
        .unwrap();
        assert_eq!(
            plan.steps[0].sql,
            "ALTER TABLE t ADD COLUMN IF NOT EXISTS o_id BIGINT NOT NULL DEFAULT 1"
        );
        assert_eq!(
            plan.steps[1].sql,
            "ALTER TABLE t ADD CONSTRAINT t_o_id_fkey FOREIGN KEY (o_id) REFERENCES o (id) ON DELETE CASCADE NOT VALID"
        );
    }

    #[test]
    fn not_valid_or_new_tables_pass() {
        assert!(hit(
            &RULE,
            "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES o (id) NOT VALID"
        )
        .is_none());
        assert!(hit_in(
            &RULE,
            "ALTER TABLE t ADD FOREIGN KEY (a) REFERENCES o (id)",
            &created_t()
        )
        .is_none());
    }
}

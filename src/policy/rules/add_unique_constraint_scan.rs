//! `add-unique-constraint-scan`: ADD UNIQUE / PRIMARY KEY without USING
//! INDEX (also ADD COLUMN ... UNIQUE).

use super::support::{drop_invalid_index, index_in, no_constraint, pg_name, relaxed, single};
use crate::policy::statement::Op;
use crate::policy::tokens::{ident, qualified};
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Plan, Rule, Statement, Step};

/// The rule.
pub const RULE: Rule = Rule {
    id: "add-unique-constraint-scan",
    summary: "ADD UNIQUE / PRIMARY KEY without USING INDEX (also ADD COLUMN ... UNIQUE)",
    lock: "ACCESS EXCLUSIVE while the unique index is built",
    why: "all reads and writes wait while the index is built over the whole table",
    alternative:
        "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... UNIQUE / PRIMARY KEY USING INDEX",
    default: Action::Rewrite,
    category: Category::Proxy,
    can_rewrite: true,
    check,
};

fn check(st: &Statement, ctx: &Context, s: &PolicySettings) -> Option<Hit> {
    let op = st.ops.iter().find(|o| {
        matches!(
            o,
            Op::AddUnique {
                using_index: false,
                ..
            }
        )
    })?;
    let Op::AddUnique {
        table,
        constraint,
        primary,
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
    let kind = if *primary { "PRIMARY KEY" } else { "UNIQUE" };
    let hit = Hit::new(format!(
        "ADD {kind} on {table} builds its index under ACCESS EXCLUSIVE"
    ));
    if single(st).is_none() {
        return Some(hit);
    }
    let name = constraint.clone().unwrap_or_else(|| {
        if *primary {
            pg_name(&[&table.name], "pkey")
        } else {
            let mut parts = vec![table.name.as_str()];
            parts.extend(columns.iter().map(String::as_str));
            pg_name(&parts, "key")
        }
    });
    let t = qualified(table);
    let index = index_in(table, &name);
    let mut steps = Vec::new();
    if let Some(c) = in_column {
        steps.push(Step::new(
            format!("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {}", c.bare_sql),
            format!("add column {} without its constraint", ident(&c.name)),
        ));
    }
    steps.push(drop_invalid_index(&index));
    steps.push(Step::new(
        format!(
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {} ON {t} ({})",
            ident(&name),
            columns.join(", ")
        ),
        "build the unique index without blocking writes (CONCURRENTLY)",
    ));
    let note = if *primary {
        " (columns that are not yet NOT NULL are scanned: set them NOT NULL safely first)"
    } else {
        ""
    };
    steps.push(
        Step::new(
            format!(
                "ALTER TABLE {t} ADD CONSTRAINT {} {kind} USING INDEX {}",
                ident(&name),
                ident(&name)
            ),
            format!("attach the index as the {kind} constraint{note}"),
        )
        .only_if(no_constraint(table, &name)),
    );
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
    fn unique_goes_through_a_concurrent_index() {
        let plan = hit(&RULE, "ALTER TABLE t ADD UNIQUE (email)")
            .unwrap()
            .plan
            .unwrap();
        let sql: Vec<&str> = plan.steps.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            sql,
            [
                "DROP INDEX CONCURRENTLY IF EXISTS t_email_key",
                "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_email_key ON t (email)",
                "ALTER TABLE t ADD CONSTRAINT t_email_key UNIQUE USING INDEX t_email_key",
            ]
        );
        let pk = hit(
            &RULE,
            "ALTER TABLE s.t ADD CONSTRAINT t_pk PRIMARY KEY (id)",
        )
        .unwrap()
        .plan
        .unwrap();
        assert_eq!(
            pk.steps[2].sql,
            "ALTER TABLE s.t ADD CONSTRAINT t_pk PRIMARY KEY USING INDEX t_pk"
        );
        let col = hit(&RULE, "ALTER TABLE t ADD COLUMN code text UNIQUE")
            .unwrap()
            .plan
            .unwrap();
        assert_eq!(
            col.steps[0].sql,
            "ALTER TABLE t ADD COLUMN IF NOT EXISTS code TEXT"
        );
        assert_eq!(col.steps.len(), 4);
    }

    #[test]
    fn using_index_passes() {
        assert!(hit(&RULE, "ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX i").is_none());
        assert!(hit_in(&RULE, "ALTER TABLE t ADD UNIQUE (a)", &created_t()).is_none());
    }
}

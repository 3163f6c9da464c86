//! `add-check-validating`: ADD CHECK without NOT VALID.

use super::support::{no_constraint, pg_name, relaxed, single, validate};
use crate::policy::statement::Op;
use crate::policy::tokens::ident;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Plan, Rule, Statement, Step};

/// The rule.
pub const RULE: Rule = Rule {
    id: "add-check-validating",
    summary: "ADD CHECK without NOT VALID",
    lock: "ACCESS EXCLUSIVE while every row is checked",
    why: "all reads and writes of the table wait while the whole table is scanned",
    alternative:
        "ADD CONSTRAINT ... CHECK (...) NOT VALID, then VALIDATE CONSTRAINT in its own transaction",
    default: Action::Rewrite,
    category: Category::Proxy,
    can_rewrite: true,
    check,
};

fn check(st: &Statement, ctx: &Context, s: &PolicySettings) -> Option<Hit> {
    let op = st.ops.iter().find(|o| {
        matches!(
            o,
            Op::AddCheck {
                not_valid: false,
                ..
            }
        )
    })?;
    let Op::AddCheck {
        table,
        constraint,
        first_column,
        ..
    } = op
    else {
        return None;
    };
    if relaxed(table, ctx, s) {
        return None;
    }
    let hit = Hit::new(format!(
        "the new check on {table} scans every row under ACCESS EXCLUSIVE"
    ));
    if single(st).is_none() {
        return Some(hit);
    }
    let name = constraint.clone().unwrap_or_else(|| match first_column {
        Some(c) => pg_name(&[&table.name, c], "check"),
        None => pg_name(&[&table.name], "check"),
    });
    let add = match constraint {
        Some(_) => format!("{} NOT VALID", st.body()),
        None => format!(
            "{} NOT VALID",
            st.insert_after("add", &format!(" CONSTRAINT {}", ident(&name)))?
        ),
    };
    Some(hit.plan(Plan {
        steps: vec![
            Step::new(
                add,
                format!("add check {} without checking existing rows (NOT VALID)", ident(&name)),
            )
            .only_if(no_constraint(table, &name)),
            validate(table, &name),
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
    fn check_is_added_not_valid_then_validated() {
        let plan = hit(&RULE, "ALTER TABLE t ADD CHECK (price > 0);")
            .unwrap()
            .plan
            .unwrap();
        assert_eq!(
            plan.steps[0].sql,
            "ALTER TABLE t ADD CONSTRAINT t_price_check CHECK (price > 0) NOT VALID"
        );
        assert_eq!(
            plan.steps[1].sql,
            "ALTER TABLE t VALIDATE CONSTRAINT t_price_check"
        );
        let named = hit(&RULE, "ALTER TABLE t ADD CONSTRAINT pos CHECK (a > 0)")
            .unwrap()
            .plan
            .unwrap();
        assert_eq!(
            named.steps[0].sql,
            "ALTER TABLE t ADD CONSTRAINT pos CHECK (a > 0) NOT VALID"
        );
    }

    #[test]
    fn not_valid_passes() {
        assert!(hit(
            &RULE,
            "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID"
        )
        .is_none());
        assert!(hit_in(&RULE, "ALTER TABLE t ADD CHECK (a > 0)", &created_t()).is_none());
    }
}

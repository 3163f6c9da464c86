//! `domain-add-constraint-validating`: ALTER DOMAIN ... ADD CONSTRAINT
//! without NOT VALID.

use crate::policy::statement::Op;
use crate::policy::tokens::{ident, literal, qualified};
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Plan, Rule, Statement, Step};

/// The rule.
pub const RULE: Rule = Rule {
    id: "domain-add-constraint-validating",
    summary: "ALTER DOMAIN ... ADD CONSTRAINT without NOT VALID",
    lock: "SHARE on every table with a column of the domain while all of them are checked",
    why: "writes to every table using the domain wait while each of them is scanned",
    alternative: "ALTER DOMAIN ... ADD CONSTRAINT name ... NOT VALID, then ALTER DOMAIN ... VALIDATE CONSTRAINT name",
    default: Action::Rewrite,
    category: Category::Proxy,
    can_rewrite: true,
    check,
};

fn check(st: &Statement, _ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    let Some(Op::DomainAddConstraint {
        domain,
        constraint,
        not_valid: false,
    }) = st.ops.first()
    else {
        return None;
    };
    let hit = Hit::new(format!(
        "the new constraint on domain {domain} scans every table that uses it while writes wait"
    ));
    let Some(name) = constraint else {
        return Some(hit.hint("name the constraint (ADD CONSTRAINT name CHECK ...) so that ddlguard can add it NOT VALID and then validate it"));
    };
    let d = qualified(domain);
    Some(hit.plan(Plan {
        steps: vec![
            Step::new(
                format!("{} NOT VALID", st.body()),
                format!("add {} without checking existing values (NOT VALID)", ident(name)),
            )
            .only_if(format!(
                "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM pg_constraint WHERE contypid = {}::regtype AND conname = {})",
                literal(&d),
                literal(name)
            )),
            Step::new(
                format!("ALTER DOMAIN {d} VALIDATE CONSTRAINT {}", ident(name)),
                "validate existing values without blocking writes",
            ),
        ],
        tag: "ALTER DOMAIN".into(),
        outside_transaction: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn domain_constraint_is_added_not_valid() {
        let plan = hit(
            &RULE,
            "ALTER DOMAIN price ADD CONSTRAINT pos CHECK (VALUE > 0)",
        )
        .unwrap()
        .plan
        .unwrap();
        assert_eq!(
            plan.steps[0].sql,
            "ALTER DOMAIN price ADD CONSTRAINT pos CHECK (VALUE > 0) NOT VALID"
        );
        assert_eq!(
            plan.steps[1].sql,
            "ALTER DOMAIN price VALIDATE CONSTRAINT pos"
        );
        assert!(hit(&RULE, "ALTER DOMAIN price ADD CHECK (VALUE > 0)")
            .unwrap()
            .plan
            .is_none());
    }

    #[test]
    fn not_valid_passes() {
        assert!(hit(
            &RULE,
            "ALTER DOMAIN price ADD CONSTRAINT pos CHECK (VALUE > 0) NOT VALID"
        )
        .is_none());
    }
}

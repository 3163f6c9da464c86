//! `create-domain-with-constraint`: CREATE DOMAIN with a CHECK constraint.

use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "create-domain-with-constraint",
    summary: "CREATE DOMAIN with a CHECK constraint",
    lock: "none",
    why: "changing a domain's constraint later checks every column of every table that uses it, under locks",
    alternative: "put the CHECK on the table columns instead (they can be added NOT VALID and validated)",
    default: Action::Allow,
    category: Category::Advice,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, _ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::CreateDomain {
            name,
            has_constraint: true,
        } => Some(Hit::new(format!(
            "domain {name} carries a constraint; changing it later scans every table using it"
        ))),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn positive_and_negative() {
        assert!(hit(&RULE, "CREATE DOMAIN price AS numeric CHECK (VALUE > 0)").is_some());
        assert!(hit(&RULE, "CREATE DOMAIN price AS numeric").is_none());
    }
}

//! `enum-value-ordering`: ALTER TYPE ... ADD VALUE BEFORE / AFTER.

use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "enum-value-ordering",
    summary: "ALTER TYPE ... ADD VALUE BEFORE / AFTER",
    lock: "ACCESS EXCLUSIVE on the type (brief)",
    why: "values added out of order are compared through a slower path, and code that relies on the order of labels may change behaviour",
    alternative: "add new enum values at the end (no BEFORE / AFTER) unless the order matters",
    default: Action::Allow,
    category: Category::Advice,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, _ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::EnumAddValue {
            ty,
            positioned: true,
        } => Some(Hit::new(format!(
            "a value added BEFORE/AFTER changes the sort order of {ty}"
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
        assert!(hit(&RULE, "ALTER TYPE mood ADD VALUE 'meh' BEFORE 'ok'").is_some());
        assert!(hit(&RULE, "ALTER TYPE mood ADD VALUE 'meh'").is_none());
    }
}

//! `duplicate-column-assignment`: UPDATE that assigns the same column twice.

use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "duplicate-column-assignment",
    summary: "UPDATE that assigns the same column twice",
    lock: "none",
    why: "Postgres refuses it (42601 multiple assignments to same column), failing the migration",
    alternative: "assign each column once",
    default: Action::Allow,
    category: Category::Advice,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, _ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::Update { columns, .. } => columns
            .iter()
            .enumerate()
            .find(|(i, c)| columns[..*i].contains(c))
            .map(|(_, c)| Hit::new(format!("column {c} is assigned twice"))),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn positive_and_negative() {
        assert!(hit(&RULE, "UPDATE t SET a = 1, a = 2 WHERE id = 1").is_some());
        assert!(hit(&RULE, "UPDATE t SET a = 1, b = 2 WHERE id = 1").is_none());
    }
}

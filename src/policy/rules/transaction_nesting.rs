//! `transaction-nesting`: BEGIN inside a transaction block.

use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "transaction-nesting",
    summary: "BEGIN inside a transaction block",
    lock: "none",
    why: "Postgres ignores the inner BEGIN with a warning; the COMMIT that follows ends the outer transaction early (migration tools already wrap each migration in one)",
    alternative: "remove BEGIN/COMMIT from migrations that the tool runs in a transaction",
    default: Action::Allow,
    category: Category::Advice,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops
        .iter()
        .any(|op| matches!(op, Op::Begin))
        .then_some(())
        .filter(|_| ctx.in_transaction)
        .map(|_| Hit::new("BEGIN inside a transaction block is ignored; the next COMMIT ends the outer transaction"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn positive_and_negative() {
        assert!(hit_in(&RULE, "BEGIN", &in_tx()).is_some());
        assert!(hit(&RULE, "BEGIN").is_none());
        assert!(hit_in(&RULE, "COMMIT", &in_tx()).is_none());
    }
}

//! `uncommitted-transaction`: BEGIN without a COMMIT later in the file.

use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "uncommitted-transaction",
    summary: "BEGIN without a COMMIT later in the file",
    lock: "none",
    why: "the transaction stays open after the migration; its locks are held until the connection closes",
    alternative: "end every BEGIN with COMMIT in the same file",
    default: Action::Allow,
    category: Category::Advice,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    (ctx.commit_follows == Some(false) && st.ops.iter().any(|op| matches!(op, Op::Begin))).then(
        || {
            Hit::new(
                "BEGIN is never committed in this file; the transaction and its locks stay open",
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn positive_and_negative() {
        assert!(hit_in(
            &RULE,
            "BEGIN",
            &Context {
                commit_follows: Some(false),
                ..Context::default()
            }
        )
        .is_some());
        assert!(hit(&RULE, "BEGIN").is_none());
    }
}

//! `drop-function-in-use`: DROP FUNCTION / PROCEDURE while another client called it within usage.window.

use super::support::dropped_in_use;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, ObjectKind, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "drop-function-in-use",
    summary: "DROP FUNCTION / PROCEDURE while another client called it within usage.window",
    lock: "ACCESS EXCLUSIVE on the function",
    why: "clients that still call it fail with 42883 undefined_function",
    alternative: "stop calling the function in every client first, then drop it",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    dropped_in_use(st, ctx, &[ObjectKind::Function], "DROP FUNCTION removes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn fires_only_when_another_client_used_it() {
        assert_fires_only_when_used(
            &RULE,
            "DROP FUNCTION used_f(int)",
            "used_f",
            "DROP FUNCTION other()",
        );
    }
}

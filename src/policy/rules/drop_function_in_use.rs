//! `drop-function-in-use`: DROP FUNCTION / PROCEDURE while another client called it within usage.window.

use super::support::in_use;
use crate::policy::statement::Op;
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
    st.ops
        .iter()
        .find_map(|op| match op {
            Op::Drop {
                kind: ObjectKind::Function,
                names,
                ..
            } => names
                .iter()
                .find_map(|n| in_use(ctx, ObjectKind::Function, n, None, "DROP FUNCTION removes")),
            _ => None,
        })
        .map(Hit::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn fires_only_when_another_client_used_it() {
        let found = hit_in(&RULE, "DROP FUNCTION used_f(int)", &used("used_f")).expect("in use");
        assert!(
            found.reason.contains("billing@reporter"),
            "{}",
            found.reason
        );
        assert!(
            found.reason.contains("explicit") && found.reason.contains("select a from t"),
            "{}",
            found.reason
        );
        assert!(hit(&RULE, "DROP FUNCTION used_f(int)").is_none());
        assert!(hit_in(&RULE, "DROP FUNCTION other()", &used("used_f")).is_none());
    }
}

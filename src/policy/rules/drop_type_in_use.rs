//! `drop-type-in-use`: DROP TYPE / DOMAIN while another client used it within usage.window.

use super::support::in_use;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, ObjectKind, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "drop-type-in-use",
    summary: "DROP TYPE / DOMAIN while another client used it within usage.window",
    lock: "ACCESS EXCLUSIVE on the type",
    why: "clients that still cast to or name the type fail with 42704 undefined_object",
    alternative: "stop using the type in every client first, then drop it",
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
                kind: ObjectKind::Type,
                names,
                ..
            } => names
                .iter()
                .find_map(|n| in_use(ctx, ObjectKind::Type, n, None, "DROP TYPE removes")),
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
        let found = hit_in(&RULE, "DROP TYPE used_ty", &used("used_ty")).expect("in use");
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
        assert!(hit(&RULE, "DROP TYPE used_ty").is_none());
        assert!(hit_in(&RULE, "DROP TYPE other", &used("used_ty")).is_none());
    }
}

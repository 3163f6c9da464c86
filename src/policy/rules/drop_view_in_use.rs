//! `drop-view-in-use`: DROP VIEW / MATERIALIZED VIEW while another client used it within usage.window.

use super::support::in_use;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, ObjectKind, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "drop-view-in-use",
    summary: "DROP VIEW / MATERIALIZED VIEW while another client used it within usage.window",
    lock: "ACCESS EXCLUSIVE on the view",
    why: "clients that still query the view fail with 42P01 undefined_table",
    alternative: "stop using the view in every client first, then drop it",
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
                kind: kind @ (ObjectKind::View | ObjectKind::MaterializedView),
                names,
                ..
            } => names
                .iter()
                .find_map(|n| in_use(ctx, *kind, n, None, "DROP VIEW removes")),
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
        let found = hit_in(&RULE, "DROP VIEW used_v", &used("used_v")).expect("in use");
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
        assert!(hit(&RULE, "DROP VIEW used_v").is_none());
        assert!(hit_in(&RULE, "DROP VIEW other", &used("used_v")).is_none());
    }
}

//! `drop-table-in-use`: DROP TABLE while another client used the table within usage.window.

use super::support::in_use;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, ObjectKind, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "drop-table-in-use",
    summary: "DROP TABLE while another client used the table within usage.window",
    lock: "ACCESS EXCLUSIVE",
    why: "clients that still use the table fail with 42P01 undefined_table as soon as the drop commits",
    alternative: "stop using the table in every client first (SHOW DEPENDENTS names them), then drop it",
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
                kind: ObjectKind::Table,
                names,
                ..
            } => names
                .iter()
                .find_map(|n| in_use(ctx, ObjectKind::Table, n, None, "DROP TABLE removes")),
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
        let found = hit_in(&RULE, "DROP TABLE used_t", &used("used_t")).expect("in use");
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
        assert!(hit(&RULE, "DROP TABLE used_t").is_none());
        assert!(hit_in(&RULE, "DROP TABLE other", &used("used_t")).is_none());
    }
}

//! `drop-view-in-use`: DROP VIEW / MATERIALIZED VIEW while another client used it within usage.window.

use super::support::dropped_in_use;
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
    dropped_in_use(
        st,
        ctx,
        &[ObjectKind::View, ObjectKind::MaterializedView],
        "DROP VIEW removes",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn fires_only_when_another_client_used_it() {
        assert_fires_only_when_used(&RULE, "DROP VIEW used_v", "used_v", "DROP VIEW other");
    }
}

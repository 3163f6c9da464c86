//! `drop-table-in-use`: DROP TABLE while another client used the table within usage.window.

use super::support::dropped_in_use;
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
    dropped_in_use(st, ctx, &[ObjectKind::Table], "DROP TABLE removes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn fires_only_when_another_client_used_it() {
        assert_fires_only_when_used(&RULE, "DROP TABLE used_t", "used_t", "DROP TABLE other");
    }
}

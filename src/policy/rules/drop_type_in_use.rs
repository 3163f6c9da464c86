//! `drop-type-in-use`: DROP TYPE / DOMAIN while another client used it within usage.window.

use super::support::dropped_in_use;
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
    dropped_in_use(st, ctx, &[ObjectKind::Type], "DROP TYPE removes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn fires_only_when_another_client_used_it() {
        assert_fires_only_when_used(&RULE, "DROP TYPE used_ty", "used_ty", "DROP TYPE other");
    }
}

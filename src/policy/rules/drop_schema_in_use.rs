//! `drop-schema-in-use`: DROP SCHEMA while another client used an object in it within usage.window.

use super::support::dropped_in_use;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, ObjectKind, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "drop-schema-in-use",
    summary: "DROP SCHEMA while another client used an object in it within usage.window",
    lock: "ACCESS EXCLUSIVE on every object dropped",
    why: "clients that still use its objects fail; with CASCADE everything inside is gone",
    alternative: "move clients off the schema first, then drop it",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    dropped_in_use(st, ctx, &[ObjectKind::Schema], "DROP SCHEMA removes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn fires_only_when_another_client_used_it() {
        assert_fires_only_when_used(
            &RULE,
            "DROP SCHEMA used_s CASCADE",
            "used_s",
            "DROP SCHEMA other",
        );
    }
}

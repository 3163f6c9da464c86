//! `drop-sequence-in-use`: DROP SEQUENCE while another client used it within usage.window.

use super::support::dropped_in_use;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, ObjectKind, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "drop-sequence-in-use",
    summary: "DROP SEQUENCE while another client used it within usage.window",
    lock: "ACCESS EXCLUSIVE on the sequence",
    why: "clients calling nextval on it (or inserting into a table whose default does) fail",
    alternative: "stop using the sequence first (drop the defaults that call it), then drop it",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    dropped_in_use(st, ctx, &[ObjectKind::Sequence], "DROP SEQUENCE removes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn fires_only_when_another_client_used_it() {
        assert_fires_only_when_used(
            &RULE,
            "DROP SEQUENCE used_s",
            "used_s",
            "DROP SEQUENCE other",
        );
    }
}

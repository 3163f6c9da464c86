//! `drop-schema-in-use`: DROP SCHEMA while another client used an object in it within usage.window.

use super::support::in_use;
use crate::policy::statement::Op;
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
    st.ops
        .iter()
        .find_map(|op| match op {
            Op::Drop {
                kind: ObjectKind::Schema,
                names,
                ..
            } => names
                .iter()
                .find_map(|n| in_use(ctx, ObjectKind::Schema, n, None, "DROP SCHEMA removes")),
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
        let found = hit_in(&RULE, "DROP SCHEMA used_s CASCADE", &used("used_s")).expect("in use");
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
        assert!(hit(&RULE, "DROP SCHEMA used_s CASCADE").is_none());
        assert!(hit_in(&RULE, "DROP SCHEMA other", &used("used_s")).is_none());
    }
}

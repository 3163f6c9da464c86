//! `drop-sequence-in-use`: DROP SEQUENCE while another client used it within usage.window.

use super::support::in_use;
use crate::policy::statement::Op;
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
    st.ops
        .iter()
        .find_map(|op| match op {
            Op::Drop {
                kind: ObjectKind::Sequence,
                names,
                ..
            } => names
                .iter()
                .find_map(|n| in_use(ctx, ObjectKind::Sequence, n, None, "DROP SEQUENCE removes")),
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
        let found = hit_in(&RULE, "DROP SEQUENCE used_s", &used("used_s")).expect("in use");
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
        assert!(hit(&RULE, "DROP SEQUENCE used_s").is_none());
        assert!(hit_in(&RULE, "DROP SEQUENCE other", &used("used_s")).is_none());
    }
}

//! `enum-value-rename-in-use`: ALTER TYPE ... RENAME VALUE while another client used the enum within usage.window.

use super::support::in_use;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, ObjectKind, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "enum-value-rename-in-use",
    summary: "ALTER TYPE ... RENAME VALUE while another client used the enum within usage.window",
    lock: "ACCESS EXCLUSIVE on the type (brief)",
    why: "clients that still send or compare the old label fail with 22P02 invalid_text_representation",
    alternative: "add the new value, move clients to it, then stop using the old one",
    default: Action::Warn,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops
        .iter()
        .find_map(|op| match op {
            Op::EnumRenameValue { ty } => in_use(
                ctx,
                ObjectKind::Type,
                ty,
                None,
                "RENAME VALUE changes a label of",
            ),
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
        let found = hit_in(
            &RULE,
            "ALTER TYPE used_ty RENAME VALUE 'a' TO 'b'",
            &used("used_ty"),
        )
        .expect("in use");
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
        assert!(hit(&RULE, "ALTER TYPE used_ty RENAME VALUE 'a' TO 'b'").is_none());
        assert!(hit_in(
            &RULE,
            "ALTER TYPE other RENAME VALUE 'a' TO 'b'",
            &used("used_ty")
        )
        .is_none());
    }
}

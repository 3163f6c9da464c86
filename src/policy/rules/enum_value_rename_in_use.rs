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
        assert_fires_only_when_used(
            &RULE,
            "ALTER TYPE used_ty RENAME VALUE 'a' TO 'b'",
            "used_ty",
            "ALTER TYPE other RENAME VALUE 'a' TO 'b'",
        );
    }
}

//! `rename-in-use`: RENAME of a view, sequence, function, type or schema while another client used it within usage.window.

use super::support::in_use;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, ObjectKind, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "rename-in-use",
    summary: "RENAME of a view, sequence, function, type or schema while another client used it within usage.window",
    lock: "ACCESS EXCLUSIVE on the object (brief)",
    why: "clients that still use the old name fail as soon as the rename commits",
    alternative: "create the new object (or a view / wrapper with the new name) beside the old one, move clients, then drop the old one",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops
        .iter()
        .find_map(|op| match op {
            Op::Rename { kind, name, .. }
                if !matches!(
                    kind,
                    ObjectKind::Table | ObjectKind::Index | ObjectKind::Other
                ) =>
            {
                in_use(
                    ctx,
                    *kind,
                    name,
                    None,
                    &format!("RENAME of {} renames", kind.as_str()),
                )
            }
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
            "ALTER VIEW used_v RENAME TO v2",
            "used_v",
            "ALTER VIEW other RENAME TO v2",
        );
    }

    #[test]
    fn reads_alter_function_and_alter_schema_renames() {
        assert_fires_only_when_used(
            &RULE,
            "ALTER FUNCTION used_f(int) RENAME TO g",
            "used_f",
            "ALTER FUNCTION other(int) RENAME TO g",
        );
        assert_fires_only_when_used(
            &RULE,
            "ALTER SCHEMA used_s RENAME TO s2",
            "used_s",
            "ALTER SCHEMA other RENAME TO s2",
        );
    }
}

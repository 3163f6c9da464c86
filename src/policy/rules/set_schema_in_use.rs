//! `set-schema-in-use`: SET SCHEMA while another client used the object within usage.window.

use super::support::in_use;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "set-schema-in-use",
    summary: "SET SCHEMA while another client used the object within usage.window",
    lock: "ACCESS EXCLUSIVE on the object (brief)",
    why: "clients that name the object by its old schema (or find it through search_path) fail as soon as the move commits",
    alternative: "move clients to the new schema-qualified name first (a view or search_path entry can bridge), then move the object",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops
        .iter()
        .find_map(|op| match op {
            Op::SetSchema { kind, name, .. } => in_use(ctx, *kind, name, None, "SET SCHEMA moves"),
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
            "ALTER TABLE used_t SET SCHEMA archive",
            "used_t",
            "ALTER TABLE other SET SCHEMA archive",
        );
    }

    #[test]
    fn reads_alter_function_set_schema() {
        assert_fires_only_when_used(
            &RULE,
            "ALTER FUNCTION used_f(int) SET SCHEMA archive",
            "used_f",
            "ALTER FUNCTION other(int) SET SCHEMA archive",
        );
    }
}

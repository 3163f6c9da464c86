//! `drop-extension`: DROP EXTENSION.

use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, ObjectKind, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "drop-extension",
    summary: "DROP EXTENSION",
    lock: "ACCESS EXCLUSIVE on the extension's objects",
    why: "its functions, types and operators disappear for every client (with CASCADE, so do the columns and indexes that use them)",
    alternative: "check that no client calls the extension's functions or uses its types, then drop it",
    default: Action::Warn,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, _ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::Drop {
            kind: ObjectKind::Extension,
            names,
            ..
        } => {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            Some(Hit::new(format!(
                "DROP EXTENSION {} removes its functions, types and operators for every client",
                names.join(", ")
            )))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn positive_and_negative() {
        assert!(hit(&RULE, "DROP EXTENSION pgcrypto").is_some());
        assert!(hit(&RULE, "DROP TABLE x").is_none());
    }
}

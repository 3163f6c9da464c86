//! `drop-database`: DROP DATABASE.

use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, ObjectKind, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "drop-database",
    summary: "DROP DATABASE",
    lock: "exclusive use of the database (fails while anyone is connected; WITH (FORCE) disconnects them)",
    why: "everything in the database is gone for every client, irreversibly",
    alternative: "do it by hand outside the proxy after a backup; never from a migration",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, _ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::Drop {
            kind: ObjectKind::Database,
            names,
            ..
        } => Some(Hit::new(format!(
            "DROP DATABASE {} removes everything in it, irreversibly",
            names.first().map(|n| n.to_string()).unwrap_or_default()
        ))),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn positive_and_negative() {
        assert!(hit(&RULE, "DROP DATABASE prod").is_some());
        assert!(hit(&RULE, "DROP SCHEMA s").is_none());
    }
}

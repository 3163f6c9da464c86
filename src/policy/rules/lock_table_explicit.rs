//! `lock-table-explicit`: LOCK TABLE in a mode that blocks reads or writes.

use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "lock-table-explicit",
    summary: "LOCK TABLE in a mode that blocks reads or writes",
    lock: "as requested: SHARE and above block writes, ACCESS EXCLUSIVE (the default) blocks reads too",
    why: "the lock is held until the transaction ends, and everything queued behind it waits as long",
    alternative: "lock only what the migration needs, as late as possible, with a short lock_timeout (ddlguard's guarded execution does this for DDL)",
    default: Action::Warn,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

const BLOCKING: &[&str] = &[
    "share",
    "share row exclusive",
    "exclusive",
    "access exclusive",
];

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::Lock { tables, mode }
            if BLOCKING.contains(&mode.as_str()) && !tables.iter().all(|t| ctx.created_here(t)) =>
        {
            let what = if mode == "access exclusive" {
                "reads and writes"
            } else {
                "writes"
            };
            let names: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
            Some(Hit::new(format!(
                "LOCK {} IN {} MODE blocks {what} until the transaction ends",
                names.join(", "),
                mode.to_uppercase()
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
    fn blocking_modes_are_found() {
        assert!(hit(&RULE, "LOCK TABLE t").is_some());
        assert!(hit(&RULE, "LOCK TABLE t IN SHARE MODE").is_some());
        assert!(hit(&RULE, "LOCK TABLE t IN ROW EXCLUSIVE MODE").is_none());
        assert!(hit(&RULE, "LOCK TABLE t IN SHARE UPDATE EXCLUSIVE MODE").is_none());
    }
}

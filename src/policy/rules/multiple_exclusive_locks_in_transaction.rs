//! `multiple-exclusive-locks-in-transaction`: one transaction takes ACCESS
//! EXCLUSIVE on more than one table.

use super::support::access_exclusive_targets;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "multiple-exclusive-locks-in-transaction",
    summary: "one transaction takes ACCESS EXCLUSIVE on more than one table",
    lock: "ACCESS EXCLUSIVE on several tables, held together until COMMIT",
    why: "the first table stays locked while the transaction waits for the next lock, so traffic on both queues; opposite lock orders in two sessions deadlock",
    alternative: "change one table per transaction (one migration per table)",
    default: Action::Warn,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    if !ctx.in_transaction || ctx.exclusive_locked.is_empty() {
        return None;
    }
    let other = access_exclusive_targets(st)
        .into_iter()
        .find(|t| !ctx.locked_here(t) && !ctx.created_here(t))?;
    let held: Vec<String> = ctx.exclusive_locked.iter().map(|t| t.to_string()).collect();
    Some(Hit::new(format!(
        "this transaction already holds ACCESS EXCLUSIVE on {} and now takes it on {other}",
        held.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;
    use crate::policy::statement::Name;

    #[test]
    fn a_second_exclusive_lock_is_found() {
        let ctx = Context {
            in_transaction: true,
            exclusive_locked: vec![Name {
                schema: None,
                name: "a".into(),
            }],
            ..Context::default()
        };
        assert!(hit_in(&RULE, "ALTER TABLE b ADD COLUMN x int", &ctx).is_some());
        assert!(hit_in(&RULE, "ALTER TABLE a ADD COLUMN x int", &ctx).is_none());
        assert!(hit_in(&RULE, "ALTER TABLE b ADD COLUMN x int", &in_tx()).is_none());
    }
}

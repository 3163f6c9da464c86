//! `drop-index-nonconcurrent`: DROP INDEX without CONCURRENTLY.

use crate::policy::statement::Op;
use crate::policy::tokens::qualified;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Plan, Rule, Statement, Step};

/// The rule.
pub const RULE: Rule = Rule {
    id: "drop-index-nonconcurrent",
    summary: "DROP INDEX without CONCURRENTLY",
    lock: "ACCESS EXCLUSIVE on the index's table",
    why: "the drop waits for every running query on the table and, while it waits, blocks all new reads and writes queued behind it",
    alternative: "DROP INDEX CONCURRENTLY IF EXISTS ..., one index per statement, outside a transaction block",
    default: Action::Rewrite,
    category: Category::Proxy,
    can_rewrite: true,
    check,
};

fn check(st: &Statement, _ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    let Some(Op::DropIndex {
        names,
        concurrently: false,
        cascade,
        ..
    }) = st.ops.first()
    else {
        return None;
    };
    let list: Vec<String> = names.iter().map(qualified).collect();
    let hit = Hit::new(format!(
        "DROP INDEX {} takes ACCESS EXCLUSIVE on its table",
        list.join(", ")
    ));
    if *cascade || names.is_empty() {
        return Some(hit.hint(
            "drop the dependent objects first, then DROP INDEX CONCURRENTLY IF EXISTS (CONCURRENTLY does not support CASCADE)",
        ));
    }
    let steps = list
        .iter()
        .map(|n| {
            Step::new(
                format!("DROP INDEX CONCURRENTLY IF EXISTS {n}"),
                format!("drop {n} without blocking its table"),
            )
        })
        .collect();
    Some(hit.plan(Plan {
        steps,
        tag: "DROP INDEX".into(),
        outside_transaction: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn each_index_is_dropped_concurrently() {
        let plan = hit(&RULE, "DROP INDEX a, s.\"B\"").unwrap().plan.unwrap();
        let sql: Vec<&str> = plan.steps.iter().map(|s| s.sql.as_str()).collect();
        assert_eq!(
            sql,
            [
                "DROP INDEX CONCURRENTLY IF EXISTS a",
                "DROP INDEX CONCURRENTLY IF EXISTS s.\"B\""
            ]
        );
        assert_eq!(plan.tag, "DROP INDEX");
        assert!(hit(&RULE, "DROP INDEX a CASCADE").unwrap().plan.is_none());
    }

    #[test]
    fn concurrent_drop_passes() {
        assert!(hit(&RULE, "DROP INDEX CONCURRENTLY IF EXISTS a").is_none());
        assert!(hit(&RULE, "DROP TABLE a").is_none());
    }
}

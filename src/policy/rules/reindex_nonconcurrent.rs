//! `reindex-nonconcurrent`: REINDEX without CONCURRENTLY.

use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Plan, Rule, Statement, Step};

/// The rule.
pub const RULE: Rule = Rule {
    id: "reindex-nonconcurrent",
    summary: "REINDEX without CONCURRENTLY",
    lock: "ACCESS EXCLUSIVE on each index, SHARE on its table (writes blocked; reads that use the index blocked)",
    why: "the rebuild blocks writes to the table and queries that use the index for as long as it runs",
    alternative: "REINDEX ... CONCURRENTLY (PG 12+), outside a transaction block; a failed run leaves invalid `_ccnew` indexes to drop before retrying",
    default: Action::Rewrite,
    category: Category::Proxy,
    can_rewrite: true,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    let Some(Op::Reindex {
        kind,
        concurrently: false,
        ..
    }) = st.ops.first()
    else {
        return None;
    };
    let hit = Hit::new(format!(
        "REINDEX {} blocks writes (and reads through the index) while it rebuilds",
        kind.to_uppercase()
    ));
    if kind == "system" || ctx.server_version < 120000 {
        return Some(
            hit.hint("run it in a maintenance window: this REINDEX has no concurrent form"),
        );
    }
    let Some(sql) = st.insert_after(kind, " CONCURRENTLY") else {
        return Some(hit);
    };
    Some(hit.plan(Plan {
        steps: vec![Step::new(
            sql,
            "rebuild without blocking writes (CONCURRENTLY); if it fails, drop the invalid *_ccnew index it leaves and retry",
        )],
        tag: "REINDEX".into(),
        outside_transaction: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn reindex_gets_concurrently() {
        let plan = hit(&RULE, "REINDEX (VERBOSE) TABLE public.t;")
            .unwrap()
            .plan
            .unwrap();
        assert_eq!(
            plan.steps[0].sql,
            "REINDEX (VERBOSE) TABLE CONCURRENTLY public.t"
        );
        assert_eq!(plan.tag, "REINDEX");
        assert!(hit(&RULE, "REINDEX SYSTEM db").unwrap().plan.is_none());
    }

    #[test]
    fn concurrent_reindex_passes() {
        assert!(hit(&RULE, "REINDEX INDEX CONCURRENTLY i").is_none());
        assert!(hit(&RULE, "VACUUM t").is_none());
    }
}

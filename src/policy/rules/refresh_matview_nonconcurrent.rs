//! `refresh-matview-nonconcurrent`: REFRESH MATERIALIZED VIEW without CONCURRENTLY.

use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Plan, Rule, Statement, Step};

/// The rule.
pub const RULE: Rule = Rule {
    id: "refresh-matview-nonconcurrent",
    summary: "REFRESH MATERIALIZED VIEW without CONCURRENTLY",
    lock: "ACCESS EXCLUSIVE on the materialized view while it is recomputed",
    why: "every read of the view waits until the query behind it has run again",
    alternative: "REFRESH MATERIALIZED VIEW CONCURRENTLY (needs a unique index on the view)",
    default: Action::Warn,
    category: Category::Proxy,
    can_rewrite: true,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    let Some(Op::RefreshMatview {
        view,
        concurrently: false,
    }) = st.ops.first()
    else {
        return None;
    };
    if ctx.created_here(view) {
        return None;
    }
    let hit = Hit::new(format!(
        "REFRESH blocks every read of {view} until it is recomputed"
    ));
    if !ctx.usage.has_unique_index(view) {
        return Some(hit.hint(
            "create a unique index on the view (CREATE UNIQUE INDEX CONCURRENTLY), then REFRESH MATERIALIZED VIEW CONCURRENTLY",
        ));
    }
    let sql = st.insert_after("view", " CONCURRENTLY")?;
    Some(hit.plan(Plan {
        steps: vec![Step::new(
            sql,
            "refresh while readers keep reading (CONCURRENTLY)",
        )],
        tag: "REFRESH MATERIALIZED VIEW".into(),
        outside_transaction: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn refresh_is_found_and_rewritten_when_an_index_allows() {
        let found = hit(&RULE, "REFRESH MATERIALIZED VIEW mv").unwrap();
        assert!(found.plan.is_none());
        let plan = hit_in(&RULE, "REFRESH MATERIALIZED VIEW mv", &used("mv"))
            .unwrap()
            .plan
            .unwrap();
        assert_eq!(
            plan.steps[0].sql,
            "REFRESH MATERIALIZED VIEW CONCURRENTLY mv"
        );
        assert_eq!(plan.tag, "REFRESH MATERIALIZED VIEW");
        assert!(hit(&RULE, "REFRESH MATERIALIZED VIEW CONCURRENTLY mv").is_none());
    }
}

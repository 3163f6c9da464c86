//! `create-index-nonconcurrent`: CREATE INDEX without CONCURRENTLY.

use super::support::{drop_invalid_index, index_in, relaxed};
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Plan, Rule, Statement, Step};

/// The rule.
pub const RULE: Rule = Rule {
    id: "create-index-nonconcurrent",
    summary: "CREATE [UNIQUE] INDEX without CONCURRENTLY on an existing table",
    lock: "SHARE (blocks INSERT, UPDATE, DELETE for the whole build)",
    why: "the build reads the whole table while writes wait; on a large table that is minutes of refused writes",
    alternative: "CREATE INDEX CONCURRENTLY IF NOT EXISTS ..., outside a transaction block; drop and rebuild an index a failed concurrent build left invalid",
    default: Action::Rewrite,
    category: Category::Proxy,
    can_rewrite: true,
    check,
};

fn check(st: &Statement, ctx: &Context, s: &PolicySettings) -> Option<Hit> {
    let Some(Op::CreateIndex {
        table,
        name,
        concurrently: false,
        if_not_exists,
        ..
    }) = st.ops.first()
    else {
        return None;
    };
    if relaxed(table, ctx, s) {
        return None;
    }
    let hit = Hit::new(format!(
        "CREATE INDEX on {table} blocks writes to it until the index is built"
    ));
    let insert = if name.is_some() && !if_not_exists {
        " CONCURRENTLY IF NOT EXISTS"
    } else {
        " CONCURRENTLY"
    };
    let Some(sql) = st.insert_after("index", insert) else {
        return Some(hit);
    };
    let mut steps = Vec::new();
    if let Some(n) = name {
        steps.push(drop_invalid_index(&index_in(table, n)));
    }
    steps.push(Step::new(
        sql,
        "build the index without blocking writes (CONCURRENTLY)",
    ));
    Some(hit.plan(Plan {
        steps,
        tag: "CREATE INDEX".into(),
        outside_transaction: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn plain_create_index_is_rewritten_concurrently() {
        let found = hit(&RULE, "CREATE UNIQUE INDEX idx ON public.t (a);").unwrap();
        let plan = found.plan.unwrap();
        assert_eq!(plan.tag, "CREATE INDEX");
        assert!(plan.outside_transaction);
        assert_eq!(plan.steps.len(), 2);
        assert_eq!(
            plan.steps[0].sql,
            "DROP INDEX CONCURRENTLY IF EXISTS public.idx"
        );
        assert!(plan.steps[0]
            .only_if
            .as_deref()
            .unwrap()
            .contains("indisvalid"));
        assert_eq!(
            plan.steps[1].sql,
            "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx ON public.t (a)"
        );
        let unnamed = hit(&RULE, "create index on t (a)").unwrap().plan.unwrap();
        assert_eq!(unnamed.steps.len(), 1);
        assert_eq!(unnamed.steps[0].sql, "create index CONCURRENTLY on t (a)");
    }

    #[test]
    fn concurrent_small_or_new_tables_pass() {
        assert!(hit(&RULE, "CREATE INDEX CONCURRENTLY i ON t (a)").is_none());
        assert!(hit_in(&RULE, "CREATE INDEX i ON t (a)", &created_t()).is_none());
        let cat = catalog(10, &[]);
        let ctx = Context {
            catalog: Some(&cat),
            ..Context::default()
        };
        assert!(hit_in(&RULE, "CREATE INDEX i ON t (a)", &ctx).is_none());
        let big = catalog(1_000_000, &[]);
        let ctx = Context {
            catalog: Some(&big),
            ..Context::default()
        };
        assert!(hit_in(&RULE, "CREATE INDEX i ON t (a)", &ctx).is_some());
    }
}

//! `detach-partition-nonconcurrent`: DETACH PARTITION without CONCURRENTLY.

use super::support::single;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Plan, Rule, Statement, Step};

/// The rule.
pub const RULE: Rule = Rule {
    id: "detach-partition-nonconcurrent",
    summary: "ALTER TABLE ... DETACH PARTITION without CONCURRENTLY",
    lock: "ACCESS EXCLUSIVE on the partitioned table",
    why: "every query on the partitioned table, on any partition, waits for the detach",
    alternative: "ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY (PG 14+, outside a transaction block; the detached table keeps its old bound as a CHECK constraint); if it is interrupted, finish it with DETACH PARTITION ... FINALIZE",
    default: Action::Rewrite,
    category: Category::Proxy,
    can_rewrite: true,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    let op = st.ops.iter().find(|o| {
        matches!(
            o,
            Op::DetachPartition {
                concurrently: false,
                ..
            }
        )
    })?;
    let Op::DetachPartition {
        table, partition, ..
    } = op
    else {
        return None;
    };
    let hit = Hit::new(format!(
        "detaching {partition} takes ACCESS EXCLUSIVE on {table}, blocking every query on it"
    ));
    if single(st).is_none() || ctx.server_version < 140000 {
        return Some(hit);
    }
    Some(hit.plan(Plan {
        steps: vec![Step::new(
            format!("{} CONCURRENTLY", st.body()),
            "detach in two transactions without blocking queries (CONCURRENTLY); Postgres keeps the old bound as a CHECK constraint on the detached table; if interrupted, run DETACH PARTITION ... FINALIZE",
        )],
        tag: "ALTER TABLE".into(),
        outside_transaction: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn detach_gets_concurrently() {
        let plan = hit(&RULE, "ALTER TABLE m DETACH PARTITION m_2020;")
            .unwrap()
            .plan
            .unwrap();
        assert_eq!(
            plan.steps[0].sql,
            "ALTER TABLE m DETACH PARTITION m_2020 CONCURRENTLY"
        );
        assert_eq!(plan.tag, "ALTER TABLE");
    }

    #[test]
    fn concurrent_detach_passes() {
        assert!(hit(&RULE, "ALTER TABLE m DETACH PARTITION p CONCURRENTLY").is_none());
    }
}

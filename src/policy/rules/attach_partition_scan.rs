//! `attach-partition-scan`: ATTACH PARTITION without a validated CHECK
//! matching the bound.

use super::support::relaxed;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "attach-partition-scan",
    summary: "ATTACH PARTITION without a validated CHECK matching the partition bound",
    lock: "SHARE UPDATE EXCLUSIVE on the parent, ACCESS EXCLUSIVE on the partition while it is scanned",
    why: "without a validated CHECK constraint that implies the bound, Postgres scans the whole partition to prove every row fits, and the partition is locked meanwhile",
    alternative: "ADD CONSTRAINT c CHECK (<bound as an expression>) NOT VALID on the partition; VALIDATE CONSTRAINT c; ATTACH PARTITION (no scan); DROP CONSTRAINT c",
    default: Action::Warn,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::AttachPartition { table, partition } if !relaxed(partition, ctx, s) => {
            Some(Hit::new(format!(
                "attaching {partition} to {table} scans it to check the bound unless a validated CHECK already implies it"
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
    fn attach_is_found() {
        assert!(hit(
            &RULE,
            "ALTER TABLE m ATTACH PARTITION p FOR VALUES FROM (1) TO (10)"
        )
        .is_some());
        let ctx = Context {
            created: vec![crate::policy::statement::Name {
                schema: None,
                name: "p".into(),
            }],
            ..Context::default()
        };
        assert!(hit_in(
            &RULE,
            "ALTER TABLE m ATTACH PARTITION p FOR VALUES FROM (1) TO (10)",
            &ctx
        )
        .is_none());
        assert!(hit(&RULE, "ALTER TABLE m DETACH PARTITION p").is_none());
    }
}

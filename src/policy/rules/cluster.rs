//! `cluster`: CLUSTER.

use super::support::relaxed;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "cluster",
    summary: "CLUSTER",
    lock: "ACCESS EXCLUSIVE while the table is rewritten in index order",
    why: "the table and all its indexes are rewritten while all reads and writes wait",
    alternative: "pg_repack --order-by to reorder online, or run it in a maintenance window",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::Cluster { table: Some(t) } if relaxed(t, ctx, s) => None,
        Op::Cluster { table } => Some(Hit::new(match table {
            Some(t) => format!("CLUSTER rewrites {t} under ACCESS EXCLUSIVE"),
            None => {
                "CLUSTER rewrites every previously clustered table, each under ACCESS EXCLUSIVE"
                    .to_string()
            }
        })),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn cluster_is_found_without_the_parser() {
        assert!(hit(&RULE, "CLUSTER t USING t_pkey").is_some());
        assert!(hit(&RULE, "CLUSTER").is_some());
        assert!(hit_in(&RULE, "CLUSTER t USING t_pkey", &created_t()).is_none());
        assert!(hit(&RULE, "ANALYZE t").is_none());
    }
}

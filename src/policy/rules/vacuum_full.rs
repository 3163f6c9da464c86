//! `vacuum-full`: VACUUM FULL.

use super::support::relaxed;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "vacuum-full",
    summary: "VACUUM FULL",
    lock: "ACCESS EXCLUSIVE while each table is rewritten",
    why: "each table is copied into a new file while all reads and writes wait; without a table name every table in the database is",
    alternative: "plain VACUUM (no exclusive lock), or pg_repack / pg_squeeze to reclaim space online",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::VacuumFull { table: Some(t) } if relaxed(t, ctx, s) => None,
        Op::VacuumFull { table } => Some(Hit::new(match table {
            Some(t) => format!("VACUUM FULL rewrites {t} under ACCESS EXCLUSIVE"),
            None => "VACUUM FULL rewrites every table of the database, each under ACCESS EXCLUSIVE"
                .to_string(),
        })),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn vacuum_full_is_found() {
        assert!(hit(&RULE, "VACUUM FULL t").is_some());
        assert!(hit(&RULE, "VACUUM (FULL, VERBOSE) t").is_some());
        assert!(hit(&RULE, "VACUUM t").is_none());
        assert!(hit_in(&RULE, "VACUUM FULL t", &created_t()).is_none());
    }
}

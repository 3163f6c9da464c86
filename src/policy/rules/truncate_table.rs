//! `truncate-table`: TRUNCATE.

use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "truncate-table",
    summary: "TRUNCATE",
    lock: "ACCESS EXCLUSIVE on each table (and, with CASCADE, on every table referencing them)",
    why: "all rows are gone at once for every client, and reads and writes wait for the lock; CASCADE empties referencing tables too",
    alternative: "DELETE in batches with a WHERE clause, or add `-- ddlguard:allow truncate-table <reason>` when emptying the table is intended",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::Truncate { tables, cascade } if !tables.iter().all(|t| ctx.created_here(t)) => {
            let names: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
            let mut reason = format!(
                "TRUNCATE {} removes every row under ACCESS EXCLUSIVE",
                names.join(", ")
            );
            if *cascade {
                reason.push_str("; CASCADE also empties every table that references them");
            }
            Some(Hit::new(reason))
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn truncate_names_cascade() {
        let found = hit(&RULE, "TRUNCATE t, u CASCADE").unwrap();
        assert!(found.reason.contains("CASCADE"), "{}", found.reason);
        assert!(!hit(&RULE, "TRUNCATE t").unwrap().reason.contains("CASCADE"));
        assert!(hit_in(&RULE, "TRUNCATE t", &created_t()).is_none());
        assert!(hit(&RULE, "DELETE FROM t WHERE id = 1").is_none());
    }
}

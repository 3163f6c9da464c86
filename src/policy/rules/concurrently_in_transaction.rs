//! `concurrently-in-transaction`: a CONCURRENTLY form inside a transaction block.

use crate::policy::engine::TOOL_HINT;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "concurrently-in-transaction",
    summary: "a CONCURRENTLY form inside a transaction block",
    lock: "none taken: Postgres refuses the statement (SQLSTATE 25001) and aborts the transaction",
    why: "CREATE/DROP INDEX, REINDEX and DETACH PARTITION CONCURRENTLY commit internally and cannot run inside a transaction block; the migration fails there",
    alternative: "run the statement outside a transaction block (the migration tool's non-transactional mode)",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    if !ctx.in_transaction {
        return None;
    }
    let what = st.ops.iter().find_map(|op| match op {
        Op::CreateIndex {
            concurrently: true, ..
        } => Some("CREATE INDEX CONCURRENTLY"),
        Op::DropIndex {
            concurrently: true, ..
        } => Some("DROP INDEX CONCURRENTLY"),
        Op::Reindex {
            concurrently: true, ..
        } => Some("REINDEX CONCURRENTLY"),
        Op::DetachPartition {
            concurrently: true, ..
        } => Some("ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY"),
        _ => None,
    })?;
    Some(
        Hit::new(format!(
            "{what} cannot run inside a transaction block (Postgres would answer SQLSTATE 25001 and abort the transaction)"
        ))
        .hint(TOOL_HINT),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn concurrent_forms_in_a_transaction_are_found() {
        let found = hit_in(&RULE, "CREATE INDEX CONCURRENTLY i ON t (a)", &in_tx()).unwrap();
        assert!(found
            .reason
            .contains("cannot run inside a transaction block"));
        assert!(found.hint.unwrap().contains("disable_ddl_transaction!"));
        assert!(hit_in(&RULE, "DROP INDEX CONCURRENTLY i", &in_tx()).is_some());
        assert!(hit(&RULE, "CREATE INDEX CONCURRENTLY i ON t (a)").is_none());
        assert!(hit_in(&RULE, "CREATE INDEX i ON t (a)", &in_tx()).is_none());
    }
}

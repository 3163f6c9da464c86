//! `robust-statement`: CREATE / DROP / ADD COLUMN without IF [NOT] EXISTS outside a transaction.

use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "robust-statement",
    summary: "CREATE / DROP / ADD COLUMN without IF [NOT] EXISTS outside a transaction",
    lock: "none",
    why: "a migration interrupted half-way cannot simply be re-run: the statements that already ran fail the second time",
    alternative: "write CREATE ... IF NOT EXISTS, DROP ... IF EXISTS, ADD COLUMN IF NOT EXISTS (or run the migration in a transaction)",
    default: Action::Allow,
    category: Category::Advice,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    if ctx.in_transaction {
        return None;
    }
    st.ops.iter().find_map(|op| {
        let what = match op {
            Op::CreateTable {
                if_not_exists: false,
                ..
            } => "CREATE TABLE without IF NOT EXISTS",
            Op::CreateIndex {
                if_not_exists: false,
                name: Some(_),
                ..
            } => "CREATE INDEX without IF NOT EXISTS",
            Op::DropIndex {
                if_exists: false, ..
            } => "DROP INDEX without IF EXISTS",
            Op::Drop {
                if_exists: false, ..
            } => "DROP without IF EXISTS",
            Op::AddColumn {
                if_not_exists: false,
                ..
            } => "ADD COLUMN without IF NOT EXISTS",
            _ => return None,
        };
        Some(Hit::new(format!(
            "{what} fails when the migration is run again"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn positive_and_negative() {
        assert!(hit(&RULE, "CREATE TABLE t (a int)").is_some());
        assert!(hit(&RULE, "DROP TABLE t").is_some());
        assert!(hit(&RULE, "CREATE TABLE IF NOT EXISTS t (a int)").is_none());
        assert!(hit_in(&RULE, "DROP TABLE t", &in_tx()).is_none());
    }
}

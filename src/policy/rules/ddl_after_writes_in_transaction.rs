//! `ddl-after-writes-in-transaction`: DDL in a transaction that already wrote rows.

use crate::analysis::StatementKind;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "ddl-after-writes-in-transaction",
    summary: "DDL in a transaction that already wrote rows",
    lock: "the DDL's lock, on top of the row locks the writes hold",
    why: "the row locks taken by the writes are held while the DDL waits for its own lock, so both queue other traffic; a long backfill followed by DDL holds everything",
    alternative: "commit the data change first, then run the DDL in its own short transaction",
    default: Action::Warn,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    (ctx.in_transaction
        && ctx.wrote_rows
        && matches!(st.kind, StatementKind::Ddl | StatementKind::Maintenance))
    .then(|| {
        Hit::new(format!(
            "{} runs in a transaction that already wrote rows; their locks are held while it waits",
            st.command.to_uppercase()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn ddl_after_writes_is_found() {
        let ctx = Context {
            in_transaction: true,
            wrote_rows: true,
            ..Context::default()
        };
        assert!(hit_in(&RULE, "ALTER TABLE t ADD COLUMN a int", &ctx).is_some());
        assert!(hit_in(&RULE, "UPDATE t SET a = 1 WHERE id = 2", &ctx).is_none());
        assert!(hit_in(&RULE, "ALTER TABLE t ADD COLUMN a int", &in_tx()).is_none());
    }
}

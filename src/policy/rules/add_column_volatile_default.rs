//! `add-column-volatile-default`: ADD COLUMN ... DEFAULT with a volatile
//! expression (or any default before PG 11).

use super::support::{new_columns, relaxed};
use crate::policy::statement::{DefaultKind, Op};
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "add-column-volatile-default",
    summary: "ADD COLUMN ... DEFAULT volatile (random(), clock_timestamp(), gen_random_uuid(), nextval, ...)",
    lock: "ACCESS EXCLUSIVE while the whole table is rewritten",
    why: "a volatile default is computed for every existing row, so the table is rewritten while all reads and writes wait (constant and stable defaults such as -1 or now() are not: PG 11+ stores them once)",
    alternative: "ADD COLUMN without the default (nullable); SET DEFAULT for new rows; backfill existing rows in batches (ddlguard backfill)",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, ctx: &Context, s: &PolicySettings) -> Option<Hit> {
    let table = st.ops.iter().find_map(|o| match o {
        Op::AddColumn { table, .. }
        | Op::AddForeignKey {
            table,
            in_column: Some(_),
            ..
        }
        | Op::AddUnique {
            table,
            in_column: Some(_),
            ..
        } => Some(table),
        _ => None,
    })?;
    if relaxed(table, ctx, s) {
        return None;
    }
    new_columns(st).into_iter().find_map(|c| match &c.default {
        Some(DefaultKind::Volatile(f)) => Some(Hit::new(format!(
            "the default {f}() of new column {table}.{} is volatile (or not known to ddlguard as stable): every row is rewritten under ACCESS EXCLUSIVE",
            c.name
        ))),
        Some(DefaultKind::NonVolatile) if ctx.server_version < 110000 => Some(Hit::new(format!(
            "before PG 11 any default on a new column rewrites every row of {table}"
        ))),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn volatile_defaults_are_found() {
        assert!(hit(
            &RULE,
            "ALTER TABLE t ADD COLUMN id uuid DEFAULT gen_random_uuid()"
        )
        .is_some());
        assert!(hit(&RULE, "ALTER TABLE t ADD COLUMN r float8 DEFAULT random()").is_some());
        assert!(hit(
            &RULE,
            "ALTER TABLE t ADD COLUMN ts timestamptz DEFAULT clock_timestamp()"
        )
        .is_some());
    }

    #[test]
    fn constant_and_stable_defaults_pass() {
        assert!(hit(&RULE, "ALTER TABLE t ADD COLUMN a int DEFAULT -1").is_none());
        assert!(hit(
            &RULE,
            "ALTER TABLE t ADD COLUMN b timestamptz DEFAULT now()"
        )
        .is_none());
        assert!(hit(&RULE, "ALTER TABLE t ADD COLUMN c text DEFAULT 'x'").is_none());
        assert!(hit_in(
            &RULE,
            "ALTER TABLE t ADD COLUMN id uuid DEFAULT gen_random_uuid()",
            &created_t()
        )
        .is_none());
        let old = Context {
            server_version: 100000,
            ..Context::default()
        };
        assert!(hit_in(&RULE, "ALTER TABLE t ADD COLUMN a int DEFAULT -1", &old).is_some());
    }
}

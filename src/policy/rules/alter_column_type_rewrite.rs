//! `alter-column-type-rewrite`: ALTER COLUMN TYPE that is not binary-coercible.

use super::support::relaxed;
use crate::policy::statement::Op;
use crate::policy::PolicySettings;
use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "alter-column-type-rewrite",
    summary: "ALTER COLUMN ... TYPE that is not binary-coercible",
    lock: "ACCESS EXCLUSIVE while the table and its indexes are rewritten",
    why: "every row and every index on the column is rewritten while all reads and writes wait (varchar(n) widening, varchar to text and numeric precision widening are not: they only change the catalog)",
    alternative: "add a new column of the new type, dual-write with a trigger, backfill in batches, switch readers, drop the old column",
    default: Action::Block,
    category: Category::Proxy,
    can_rewrite: false,
    check,
};

#[derive(Debug, PartialEq)]
enum Ty {
    Varchar(Option<u32>),
    Text,
    Numeric(Option<(u32, u32)>),
    Other(String),
}

fn parse(t: &str) -> Ty {
    let t = t.trim().to_lowercase().replace(' ', "");
    let args = |prefix: &str| -> Option<Vec<u32>> {
        let rest = t.strip_prefix(prefix)?;
        let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
        inner.split(',').map(|n| n.parse().ok()).collect()
    };
    for v in ["charactervarying", "varchar"] {
        if t == v {
            return Ty::Varchar(None);
        }
        if let Some(a) = args(v) {
            return Ty::Varchar(a.first().copied());
        }
    }
    if t == "text" {
        return Ty::Text;
    }
    for n in ["numeric", "decimal"] {
        if t == n {
            return Ty::Numeric(None);
        }
        if let Some(a) = args(n) {
            return Ty::Numeric(Some((
                a.first().copied().unwrap_or(0),
                a.get(1).copied().unwrap_or(0),
            )));
        }
    }
    Ty::Other(t)
}

/// True when changing `old` to `new` only changes the catalog.
pub fn binary_coercible(old: &str, new: &str) -> bool {
    match (parse(old), parse(new)) {
        (Ty::Varchar(Some(a)), Ty::Varchar(Some(b))) => b >= a,
        (Ty::Varchar(_), Ty::Varchar(None) | Ty::Text) => true,
        (Ty::Text, Ty::Text | Ty::Varchar(None)) => true,
        (Ty::Numeric(Some((p1, s1))), Ty::Numeric(Some((p2, s2)))) => s1 == s2 && p2 >= p1,
        (Ty::Numeric(_), Ty::Numeric(None)) => true,
        (Ty::Other(a), Ty::Other(b)) => a == b || (a == "cidr" && b == "inet"),
        _ => false,
    }
}

fn check(st: &Statement, ctx: &Context, s: &PolicySettings) -> Option<Hit> {
    st.ops.iter().find_map(|op| match op {
        Op::AlterColumnType { table, column, new_type } if !relaxed(table, ctx, s) => {
            match ctx.column_type(table, column) {
                Some(old) if binary_coercible(&old, new_type) => None,
                Some(old) => Some(Hit::new(format!(
                    "changing {table}.{column} from {old} to {new_type} rewrites the table and its indexes under ACCESS EXCLUSIVE"
                ))),
                None => Some(Hit::new(format!(
                    "changing {table}.{column} to {new_type} may rewrite the table under ACCESS EXCLUSIVE (its current type is not in the catalog snapshot)"
                ))),
            }
        }
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn binary_coercible_changes_are_recognised() {
        assert!(binary_coercible("character varying(20)", "varchar(40)"));
        assert!(!binary_coercible("character varying(40)", "varchar(20)"));
        assert!(binary_coercible("character varying(20)", "text"));
        assert!(binary_coercible("numeric(10,2)", "numeric(12, 2)"));
        assert!(!binary_coercible("numeric(10,2)", "numeric(12,3)"));
        assert!(!binary_coercible("integer", "bigint"));
    }

    #[test]
    fn rewriting_changes_are_found() {
        let cat = catalog(
            1_000_000,
            &[("a", "integer"), ("v", "character varying(20)")],
        );
        let ctx = Context {
            catalog: Some(&cat),
            ..Context::default()
        };
        assert!(hit_in(&RULE, "ALTER TABLE t ALTER COLUMN a TYPE bigint", &ctx).is_some());
        assert!(hit_in(&RULE, "ALTER TABLE t ALTER COLUMN v TYPE varchar(50)", &ctx).is_none());
        assert!(hit_in(&RULE, "ALTER TABLE t ALTER COLUMN v TYPE text", &ctx).is_none());
        assert!(hit(&RULE, "ALTER TABLE t ALTER COLUMN a TYPE bigint").is_some());
        assert!(hit_in(
            &RULE,
            "ALTER TABLE t ALTER COLUMN a TYPE bigint",
            &created_t()
        )
        .is_none());
    }
}

//! `prefer-identity`: serial / bigserial columns.

use super::support::new_columns;
use crate::policy::PolicySettings;

use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "prefer-identity",
    summary: "serial / bigserial columns",
    lock: "none",
    why:
        "serial creates a loosely attached sequence with its own permissions and ownership pitfalls",
    alternative: "use bigint GENERATED ALWAYS AS IDENTITY",
    default: Action::Allow,
    category: Category::Advice,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, _ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    new_columns(st).into_iter().find_map(|c| {
        c.is_serial().then(|| {
            Hit::new(format!(
                "column {} is {}; prefer an identity column",
                c.name, c.type_name
            ))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn positive_and_negative() {
        assert!(hit(&RULE, "CREATE TABLE t (id bigserial PRIMARY KEY)").is_some());
        assert!(hit(
            &RULE,
            "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY)"
        )
        .is_none());
    }
}

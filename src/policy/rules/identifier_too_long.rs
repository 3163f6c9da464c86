//! `identifier-too-long`: an identifier longer than 63 bytes.

use crate::policy::PolicySettings;

use crate::policy::{Action, Category, Context, Hit, Rule, Statement};

/// The rule.
pub const RULE: Rule = Rule {
    id: "identifier-too-long",
    summary: "an identifier longer than 63 bytes",
    lock: "none",
    why: "Postgres silently truncates it to 63 bytes, so the name in the database differs from the name in the code",
    alternative: "keep names at most 63 bytes",
    default: Action::Allow,
    category: Category::Advice,
    can_rewrite: false,
    check,
};

fn check(st: &Statement, _ctx: &Context, _s: &PolicySettings) -> Option<Hit> {
    st.new_identifiers.iter().find(|i| i.len() > 63).map(|i| {
        Hit::new(format!(
            "identifier {}... is {} bytes; Postgres truncates it to 63",
            i.chars().take(20).collect::<String>(),
            i.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rules::support::testing::*;

    #[test]
    fn positive_and_negative() {
        assert!(hit(&RULE, "CREATE TABLE t (a_very_long_column_name_that_goes_on_and_on_and_on_beyond_the_limit int)").is_some());
        assert!(hit(&RULE, "CREATE TABLE t (a int)").is_none());
    }
}

//! The rule catalog: every rule, in the order they are checked and listed.

use super::rule::Rule;
use super::rules::*;

/// All rules.
pub const RULES: &[&Rule] = &[
    &create_index_nonconcurrent::RULE,
    &drop_index_nonconcurrent::RULE,
    &reindex_nonconcurrent::RULE,
    &detach_partition_nonconcurrent::RULE,
    &add_foreign_key_validating::RULE,
    &add_check_validating::RULE,
    &domain_add_constraint_validating::RULE,
    &set_not_null_scan::RULE,
    &add_unique_constraint_scan::RULE,
    &add_exclusion_constraint::RULE,
    &attach_partition_scan::RULE,
    &add_column_volatile_default::RULE,
    &add_column_generated_stored::RULE,
    &add_column_serial_identity::RULE,
    &add_column_not_null_no_default::RULE,
    &alter_column_type_rewrite::RULE,
    &set_tablespace::RULE,
    &set_logged_unlogged::RULE,
    &vacuum_full::RULE,
    &cluster::RULE,
    &truncate_table::RULE,
    &lock_table_explicit::RULE,
    &refresh_matview_nonconcurrent::RULE,
    &concurrently_in_transaction::RULE,
    &multiple_exclusive_locks_in_transaction::RULE,
    &ddl_after_writes_in_transaction::RULE,
    &update_delete_without_where::RULE,
    &drop_column_in_use::RULE,
    &drop_table_in_use::RULE,
    &rename_column_in_use::RULE,
    &rename_table_in_use::RULE,
    &drop_view_in_use::RULE,
    &drop_sequence_in_use::RULE,
    &drop_function_in_use::RULE,
    &drop_type_in_use::RULE,
    &drop_schema_in_use::RULE,
    &rename_in_use::RULE,
    &set_schema_in_use::RULE,
    &drop_default_in_use::RULE,
    &change_type_in_use::RULE,
    &alter_identity_in_use::RULE,
    &enum_value_rename_in_use::RULE,
    &drop_not_null::RULE,
    &drop_constraint::RULE,
    &drop_generated_expression::RULE,
    &drop_extension::RULE,
    &drop_database::RULE,
    &transaction_nesting::RULE,
    &uncommitted_transaction::RULE,
    &enum_value_ordering::RULE,
    &prefer_bigint::RULE,
    &prefer_identity::RULE,
    &prefer_text_field::RULE,
    &prefer_timestamptz::RULE,
    &char_field::RULE,
    &identifier_too_long::RULE,
    &duplicate_column_assignment::RULE,
    &robust_statement::RULE,
    &create_domain_with_constraint::RULE,
];

/// The rule with this id.
pub fn find(id: &str) -> Option<&'static Rule> {
    RULES.iter().copied().find(|r| r.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_kebab_case_and_documented() {
        let mut seen = HashSet::new();
        for r in RULES {
            assert!(seen.insert(r.id), "duplicate id {}", r.id);
            assert!(
                r.id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{}",
                r.id
            );
            for text in [r.summary, r.lock, r.why, r.alternative] {
                assert!(!text.is_empty(), "{} lacks documentation", r.id);
            }
            if r.default == crate::policy::Action::Rewrite {
                assert!(r.can_rewrite, "{}", r.id);
            }
        }
    }
}

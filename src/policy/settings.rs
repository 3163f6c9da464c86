//! `[policy]`: how the DDL policy applies (DESIGN sections 3 and 6), with
//! per-rule overrides checked against the rule catalog. Owned by the policy
//! and embedded by `config`, so the policy never imports `config`.

use super::{Action, InTransaction, Mode};
use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// `[policy]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySettings {
    /// `observe` records only, `warn` turns blocks and rewrites into
    /// warnings, `enforce` applies each rule's action.
    pub mode: Mode,
    /// `lock_timeout` per attempt of a guarded DDL.
    pub lock_timeout: HumanDuration,
    /// Attempts of a guarded DDL before giving up.
    pub max_attempts: u32,
    /// Longest pause between attempts (exponential backoff, full jitter).
    pub retry_backoff_max: HumanDuration,
    /// Below this catalog row estimate, rules about touching every row relax.
    pub small_table_rows: u64,
    /// How long a pre-flight waits, outside the lock queue, for an old
    /// transaction holding a conflicting lock.
    pub preflight_wait: HumanDuration,
    /// What a safe sequence that needs to run outside a transaction does
    /// when the client is inside one.
    pub in_transaction: InTransaction,
    /// Transactions younger than this do not count in the pre-flight (the
    /// lock timeout covers the short ones of normal traffic); default:
    /// half of `lock_timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preflight_min_age: Option<HumanDuration>,
    /// A growing lock timeout per attempt (`["100ms", "500ms", "2s"]`, as
    /// GitLab's lock retries); the last entry repeats. Empty: every attempt
    /// uses `lock_timeout`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lock_timeout_schedule: Vec<HumanDuration>,
    /// `statement_timeout` for long builds that take no blocking lock
    /// (CREATE INDEX / REINDEX / REFRESH ... CONCURRENTLY, VALIDATE
    /// CONSTRAINT), run by the client or by a safe sequence: `0` (the
    /// default) exempts them from the client's statement_timeout.
    pub build_statement_timeout: HumanDuration,
    /// When set, after the first attempt that timed out, blockers that are
    /// `idle in transaction` for longer than this are ended
    /// (`pg_terminate_backend`); off by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminate_idle_blockers_after: Option<HumanDuration>,
    /// `[policy.rules]`: per-rule action (`allow | warn | rewrite | block`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub rules: BTreeMap<String, Action>,
    /// `[[policy.scope]]`: a different mode for some users, databases or
    /// applications; the first matching scope wins.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scope: Vec<Scope>,
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            mode: Mode::Enforce,
            lock_timeout: HumanDuration(Duration::from_secs(2)),
            max_attempts: 10,
            retry_backoff_max: HumanDuration(Duration::from_secs(30)),
            small_table_rows: 10_000,
            preflight_wait: HumanDuration(Duration::from_secs(30)),
            in_transaction: InTransaction::Block,
            preflight_min_age: None,
            lock_timeout_schedule: Vec::new(),
            build_statement_timeout: HumanDuration(Duration::ZERO),
            terminate_idle_blockers_after: None,
            rules: BTreeMap::new(),
            scope: Vec::new(),
        }
    }
}

/// One `[[policy.scope]]`: every condition given must match.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Login user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// `application_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_name: Option<String>,
    /// The mode for matching sessions.
    pub mode: Mode,
}

impl Scope {
    /// True when the session matches every condition of the scope.
    pub fn matches(&self, s: &crate::policy::Session) -> bool {
        let ok = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        ok(&self.user, &s.user)
            && ok(&self.database, &s.database)
            && ok(&self.application_name, &s.application_name)
    }
}

impl PolicySettings {
    /// The action in force for `rule` before the mode scales it: the
    /// `[policy.rules]` override, else the rule's default.
    pub fn configured(&self, rule: &crate::policy::Rule) -> Action {
        self.rules.get(rule.id).copied().unwrap_or(rule.default)
    }

    /// The mode for a session (first matching scope, else `mode`).
    pub fn mode_for(&self, s: &crate::policy::Session) -> Mode {
        self.scope
            .iter()
            .find(|sc| sc.matches(s))
            .map_or(self.mode, |sc| sc.mode)
    }

    /// Checks rule ids and scopes; the error is (table, key, message).
    pub fn validate(&self) -> Result<(), (String, String, String)> {
        for (id, action) in &self.rules {
            let Some(rule) = crate::policy::catalog::find(id) else {
                return Err((
                    "policy.rules".into(),
                    id.clone(),
                    format!("unknown rule {id:?}; SHOW RULES or docs/rules.md lists the rule ids"),
                ));
            };
            if *action == Action::Rewrite && !rule.can_rewrite {
                return Err((
                    "policy.rules".into(),
                    id.clone(),
                    format!("rule {id:?} has no safe sequence to run; use allow, warn or block"),
                ));
            }
        }
        for sc in &self.scope {
            if sc.user.is_none() && sc.database.is_none() && sc.application_name.is_none() {
                return Err((
                    "policy.scope".into(),
                    "mode".into(),
                    "a scope needs at least one of user, database or application_name".into(),
                ));
            }
        }
        if self.max_attempts == 0 {
            return Err((
                "policy".into(),
                "max_attempts".into(),
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

//! One rule of the catalog: what it detects, why it matters, and the safe
//! sequence it proposes (DESIGN section 6).

use super::action::Action;
use super::context::Context;
use super::statement::Statement;
use crate::policy::PolicySettings;

/// Where a rule matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Guards traffic at the proxy.
    Proxy,
    /// Advice for `ddlguard lint`; `allow` at the proxy by default.
    Advice,
}

impl Category {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Proxy => "proxy",
            Category::Advice => "advice",
        }
    }
}

/// A rule: its documentation and its check.
pub struct Rule {
    /// Stable kebab-case id (a contract: configs and CI scripts name it).
    pub id: &'static str,
    /// One line.
    pub summary: &'static str,
    /// The lock the statement takes.
    pub lock: &'static str,
    /// Why it hurts.
    pub why: &'static str,
    /// The safe alternative.
    pub alternative: &'static str,
    /// Action in `enforce` mode unless `[policy.rules]` says otherwise.
    pub default: Action,
    /// Proxy or advice.
    pub category: Category,
    /// True when the rule can propose a safe sequence (`rewrite` is valid).
    pub can_rewrite: bool,
    /// Looks at one statement.
    pub check: fn(&Statement, &Context, &PolicySettings) -> Option<Hit>,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id)
    }
}

/// What a rule found in one statement.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hit {
    /// Why this statement hurts (DETAIL of a block, text of a warning).
    pub reason: String,
    /// The safe sequence, when the rule can run it instead.
    pub plan: Option<Plan>,
    /// A hint specific to this statement (else the rule's alternative).
    pub hint: Option<String>,
}

impl Hit {
    /// A finding with a reason only.
    pub fn new(reason: impl Into<String>) -> Hit {
        Hit {
            reason: reason.into(),
            ..Hit::default()
        }
    }

    /// With a statement-specific hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Hit {
        self.hint = Some(hint.into());
        self
    }

    /// With a safe sequence.
    pub fn plan(mut self, plan: Plan) -> Hit {
        self.plan = Some(plan);
        self
    }
}

/// The safe sequence that replaces a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Steps, in order.
    pub steps: Vec<Step>,
    /// The CommandComplete tag to answer the client with (`CREATE INDEX`).
    pub tag: String,
    /// The steps must run outside a transaction block, each committing on
    /// its own (CONCURRENTLY, or NOT VALID then VALIDATE).
    pub outside_transaction: bool,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// SQL to run.
    pub sql: String,
    /// One line, reported to the client in a NoticeResponse.
    pub description: String,
    /// A query; the step runs only when it returns a row (keeps steps
    /// idempotent where Postgres has no `IF NOT EXISTS`).
    pub only_if: Option<String>,
}

impl Step {
    /// A step that always runs.
    pub fn new(sql: impl Into<String>, description: impl Into<String>) -> Step {
        Step {
            sql: sql.into(),
            description: description.into(),
            only_if: None,
        }
    }

    /// Runs only when `query` returns a row.
    pub fn only_if(mut self, query: impl Into<String>) -> Step {
        self.only_if = Some(query.into());
        self
    }
}

//! `decide`: runs every rule on one statement and turns the findings into
//! one verdict, after the mode, `[policy.rules]`, scopes and override
//! comments.

use super::action::{Action, InTransaction, Mode};
use super::catalog;
use super::context::Context;
use super::overrides::{self, Override};
use super::rule::{Category, Plan};
use super::statement::Statement;
use crate::policy::PolicySettings;

/// SQLSTATE of a block: object_not_in_prerequisite_state.
pub const BLOCK_SQLSTATE: &str = "55000";

/// The way out of a migration tool's transaction, named in the HINT when a
/// sequence cannot run inside a transaction block.
pub const TOOL_HINT: &str = "run this migration outside a transaction block: Rails `disable_ddl_transaction!`, Django `atomic = False`, Flyway `executeInTransaction=false`, sqlx `-- no-transaction` as the first line, Prisma: run it outside the migration (e.g. `prisma db execute`)";

/// What one rule found, and what the proxy does about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Rule id.
    pub rule: &'static str,
    /// Proxy or advice.
    pub category: Category,
    /// The action configured (`[policy.rules]` or the default).
    pub configured: Action,
    /// The action in force after the mode and any override comment.
    pub action: Action,
    /// Why this statement hurts.
    pub reason: String,
    /// The safe alternative for this statement.
    pub hint: String,
    /// Set when an override comment let the statement through; its reason.
    pub allowed_by_comment: Option<String>,
}

/// An ErrorResponse to send instead of running the statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Always [`BLOCK_SQLSTATE`].
    pub sqlstate: &'static str,
    /// The rule that blocked.
    pub rule: &'static str,
    /// Message (names the rule id).
    pub message: String,
    /// DETAIL: the reason.
    pub detail: String,
    /// HINT: the safe alternative.
    pub hint: String,
}

/// What the proxy does with the statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it unchanged (with `Decision::notices` as warnings, if any).
    Forward,
    /// Refuse it; nothing is executed.
    Block(Refusal),
    /// Run the plan instead and answer with its tag.
    Rewrite(Plan),
    /// Answer with the plan's tag now; run the plan right after the client's
    /// transaction commits (`policy.in_transaction = "after-commit"`).
    DeferAfterCommit(Plan),
}

/// The policy's answer for one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Every finding, including allowed ones (for the DDL log and metrics).
    pub findings: Vec<Finding>,
    /// What to do.
    pub verdict: Verdict,
    /// NoticeResponse texts for the client (warnings, overrides honoured).
    pub notices: Vec<String>,
    /// The mode in force for this session.
    pub mode: Mode,
    /// Override comments found in the statement.
    pub overrides: Vec<Override>,
}

impl Decision {
    /// The overall action: the strongest action among findings in force.
    pub fn action(&self) -> Action {
        match &self.verdict {
            Verdict::Block(_) => Action::Block,
            Verdict::Rewrite(_) | Verdict::DeferAfterCommit(_) => Action::Rewrite,
            Verdict::Forward if self.findings.iter().any(|f| f.action == Action::Warn) => {
                Action::Warn
            }
            Verdict::Forward => Action::Allow,
        }
    }
}

fn refusal(rule: &'static str, summary: &str, detail: String, hint: String) -> Refusal {
    Refusal {
        sqlstate: BLOCK_SQLSTATE,
        rule,
        message: format!("ddlguard blocked this statement (rule {rule}): {summary}"),
        detail,
        hint,
    }
}

/// Decides what happens to one statement.
pub fn decide(st: &Statement, ctx: &Context, settings: &PolicySettings) -> Decision {
    let overrides = overrides::parse(&st.text, &st.tokens);
    let mode = settings.mode_for(&ctx.session);
    let mut findings = Vec::new();
    let mut plans = Vec::new();
    let mut notices = Vec::new();
    for rule in catalog::RULES {
        let Some(hit) = (rule.check)(st, ctx, settings) else {
            continue;
        };
        let configured = settings.configured(rule);
        let mut action = mode.scale(configured);
        let by_comment = overrides.iter().find(|o| o.rule == rule.id);
        let allowed_by_comment = by_comment.filter(|_| action != Action::Allow).map(|o| {
            action = Action::Allow;
            notices.push(format!(
                "ddlguard: rule {} allowed by comment: {}",
                rule.id,
                if o.reason.is_empty() {
                    "(no reason given)"
                } else {
                    &o.reason
                }
            ));
            o.reason.clone()
        });
        let hint = hit
            .hint
            .clone()
            .unwrap_or_else(|| rule.alternative.to_string());
        if action == Action::Warn {
            notices.push(format!("ddlguard: {} ({}). {}", hit.reason, rule.id, hint));
        }
        if action == Action::Rewrite {
            plans.push((*rule, hit.plan.clone(), hit.reason.clone(), hint.clone()));
        }
        findings.push(Finding {
            rule: rule.id,
            category: rule.category,
            configured,
            action,
            reason: hit.reason,
            hint,
            allowed_by_comment,
        });
    }
    let verdict = verdict(&findings, plans, ctx, settings);
    Decision {
        findings,
        verdict,
        notices,
        mode,
        overrides,
    }
}

type Wanted = (&'static super::Rule, Option<Plan>, String, String);

fn verdict(
    findings: &[Finding],
    mut plans: Vec<Wanted>,
    ctx: &Context,
    settings: &PolicySettings,
) -> Verdict {
    if let Some(f) = findings.iter().find(|f| f.action == Action::Block) {
        let summary = catalog::find(f.rule).map_or("", |r| r.summary);
        return Verdict::Block(refusal(f.rule, summary, f.reason.clone(), f.hint.clone()));
    }
    if plans.len() > 1 {
        let ids: Vec<&str> = plans.iter().map(|p| p.0.id).collect();
        let (rule, _, reason, _) = &plans[0];
        return Verdict::Block(refusal(
            rule.id,
            rule.summary,
            format!("{reason}; rules {} each need their own safe sequence", ids.join(", ")),
            "split the statement into one change per statement; ddlguard then runs the safe sequence for each".into(),
        ));
    }
    let Some((rule, plan, reason, hint)) = plans.pop() else {
        return Verdict::Forward;
    };
    let Some(plan) = plan else {
        return Verdict::Block(refusal(
            rule.id,
            rule.summary,
            format!("{reason}; ddlguard cannot rewrite this form of the statement"),
            hint,
        ));
    };
    if plan.outside_transaction && ctx.in_transaction {
        return match settings.in_transaction {
            InTransaction::AfterCommit => Verdict::DeferAfterCommit(plan),
            InTransaction::Block => Verdict::Block(refusal(
                rule.id,
                rule.summary,
                format!("{reason}; its safe sequence cannot run inside a transaction block"),
                format!("{hint}; {TOOL_HINT}"),
            )),
        };
    }
    Verdict::Rewrite(plan)
}

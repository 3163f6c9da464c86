//! Turns the engine's [`Decision`] for one statement into lint findings:
//! what the proxy would do is what lint reports; advice rules (allow at
//! the proxy) are reported as warnings unless `[policy.rules]` names them.

use super::model::{Level, LintFinding};
use crate::config::PolicySettings;
use crate::policy::{catalog, Action, Category, Decision, Verdict};

/// Where the statement is, for the findings.
pub struct At<'a> {
    /// File.
    pub file: &'a str,
    /// Line.
    pub line: usize,
    /// Column.
    pub column: usize,
    /// The statement was only classified.
    pub classified_only: bool,
}

/// The findings lint reports for one decision; the second value counts
/// findings an override comment let through.
pub fn findings(
    decision: &Decision,
    settings: &PolicySettings,
    at: &At,
) -> (Vec<LintFinding>, usize) {
    let mut out = Vec::new();
    let mut allowed = 0;
    for f in &decision.findings {
        if f.allowed_by_comment.is_some() || decision.overrides.iter().any(|o| o.rule == f.rule) {
            allowed += 1;
            continue;
        }
        let (action, message, hint) = match (&decision.verdict, f.action) {
            (Verdict::Block(r), Action::Rewrite) if r.rule == f.rule => {
                (Action::Block, r.detail.clone(), r.hint.clone())
            }
            (_, Action::Allow) if advice_by_default(f.rule, f.category, settings) => {
                (Action::Warn, f.reason.clone(), f.hint.clone())
            }
            (_, Action::Allow) => continue,
            (_, a) => (a, f.reason.clone(), f.hint.clone()),
        };
        out.push(LintFinding {
            file: at.file.to_string(),
            line: at.line,
            column: at.column,
            rule: f.rule,
            action,
            level: level(action),
            message,
            hint,
            classified_only: at.classified_only,
            unknown_usage: false,
        });
    }
    (out, allowed)
}

/// Findings of usage-aware rules that fired only because usage is unknown
/// (`unknown` decided with a lookup that answers "unknown" for every
/// object, `known` with the real one): reported at `warn`.
pub fn unknown_usage(known: &Decision, unknown: &Decision, at: &At) -> Vec<LintFinding> {
    unknown
        .findings
        .iter()
        .filter(|f| !known.findings.iter().any(|k| k.rule == f.rule))
        .filter(|f| f.allowed_by_comment.is_none() && f.configured != Action::Allow)
        .filter(|f| !unknown.overrides.iter().any(|o| o.rule == f.rule))
        .filter_map(|f| catalog::find(f.rule))
        .map(|rule| {
            let head = rule.summary.split(" while ").next().unwrap_or(rule.summary);
            LintFinding {
                file: at.file.to_string(),
                line: at.line,
                column: at.column,
                rule: rule.id,
                action: Action::Warn,
                level: Level::Warning,
                message: format!(
                    "{head}: usage unknown (no --usage-from); if a client still depends on it, {}",
                    rule.why
                ),
                hint: format!(
                    "{}; run `ddlguard lint --usage-from http://PROXY:9187` to check live usage",
                    rule.alternative
                ),
                classified_only: at.classified_only,
                unknown_usage: true,
            }
        })
        .collect()
}

/// Advice rules are `allow` at the proxy and reported by lint, unless the
/// configuration sets their action explicitly.
fn advice_by_default(id: &str, category: Category, settings: &PolicySettings) -> bool {
    category == Category::Advice && !settings.rules.contains_key(id)
}

/// The CI level of an action in force.
pub fn level(action: Action) -> Level {
    match action {
        Action::Block | Action::Rewrite => Level::Error,
        Action::Warn | Action::Allow => Level::Warning,
    }
}

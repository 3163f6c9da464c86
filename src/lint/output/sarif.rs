//! SARIF 2.1.0: one `rule` entry per catalog rule (name, short and full
//! description, help with the safe sequence, default level) and one result
//! per finding, so code-scanning tools show them.

use crate::lint::model::Outcome;
use crate::policy::{catalog, Action, Category, Rule};
use serde_json::{json, Value};

/// `PascalCase` of a kebab-case id (SARIF's `name`).
fn pascal(id: &str) -> String {
    id.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn default_level(rule: &Rule) -> &'static str {
    match (rule.default, rule.category) {
        (Action::Block | Action::Rewrite, _) => "error",
        (Action::Warn, _) | (Action::Allow, Category::Advice) => "warning",
        (Action::Allow, Category::Proxy) => "note",
    }
}

fn rule_entry(rule: &Rule) -> Value {
    json!({
        "id": rule.id,
        "name": pascal(rule.id),
        "shortDescription": { "text": rule.summary },
        "fullDescription": { "text": format!("{}. Lock: {}.", rule.why, rule.lock) },
        "help": {
            "text": format!("Safe alternative: {}", rule.alternative),
            "markdown": format!("**Safe alternative:** {}\n\n**Lock:** {}", rule.alternative, rule.lock),
        },
        "defaultConfiguration": { "level": default_level(rule) },
        "properties": { "category": rule.category.as_str(), "tags": [rule.category.as_str()] },
    })
}

/// Renders the outcome as a SARIF 2.1.0 log.
pub fn render(o: &Outcome) -> String {
    let rules: Vec<Value> = catalog::RULES.iter().map(|r| rule_entry(r)).collect();
    let results: Vec<Value> = o
        .findings
        .iter()
        .map(|f| {
            let index = catalog::RULES.iter().position(|r| r.id == f.rule);
            json!({
                "ruleId": f.rule,
                "ruleIndex": index,
                "level": f.level.as_str(),
                "message": { "text": format!("{} (hint: {})", f.message, f.hint) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": f.file.replace('\\', "/") },
                        "region": { "startLine": f.line, "startColumn": f.column },
                    }
                }],
                "properties": {
                    "action": f.action.as_str(),
                    "classifiedOnly": f.classified_only,
                    "unknownUsage": f.unknown_usage,
                },
            })
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "ddlguard",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/ddlguard/ddlguard/blob/main/docs/rules.md",
                "rules": rules,
            }},
            "results": results,
        }],
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

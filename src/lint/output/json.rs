//! JSON: one document with `findings` (one object per finding, stable
//! keys), `notes` and `summary`.

use crate::lint::model::Outcome;
use crate::policy::Action;
use serde_json::{json, Value};

/// Renders the outcome as pretty-printed JSON.
pub fn render(o: &Outcome) -> String {
    let findings: Vec<Value> = o
        .findings
        .iter()
        .map(|f| {
            json!({
                "file": f.file,
                "line": f.line,
                "column": f.column,
                "rule": f.rule,
                "action": f.action.as_str(),
                "level": f.level.as_str(),
                "message": f.message,
                "hint": f.hint,
                "classified_only": f.classified_only,
                "unknown_usage": f.unknown_usage,
            })
        })
        .collect();
    let notes: Vec<Value> = o
        .notes
        .iter()
        .map(|n| {
            json!({
                "file": n.file,
                "line": n.line,
                "column": n.column,
                "kind": n.kind.as_str(),
                "message": n.message,
            })
        })
        .collect();
    let doc = json!({
        "findings": findings,
        "notes": notes,
        "summary": {
            "files": o.files,
            "statements": o.statements,
            "block": o.count(Action::Block),
            "rewrite": o.count(Action::Rewrite),
            "warn": o.count(Action::Warn),
            "notes": o.notes.len(),
            "allowed_by_comment": o.allowed_by_comment,
        },
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

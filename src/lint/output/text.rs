//! Compiler-style text: `file:line:col: action[rule-id] message`, the hint
//! on the next line, notes, and a summary.

use crate::lint::model::Outcome;
use crate::policy::Action;
use std::fmt::Write;

/// Renders the outcome as text.
pub fn render(o: &Outcome) -> String {
    let mut s = String::new();
    for f in &o.findings {
        let mut tags = String::new();
        if f.classified_only {
            tags.push_str(" (classified only: the parser could not read this statement)");
        }
        let _ = writeln!(
            s,
            "{}:{}:{}: {}[{}] {}{tags}",
            f.file,
            f.line,
            f.column,
            f.action.as_str(),
            f.rule,
            f.message
        );
        let _ = writeln!(s, "    hint: {}", f.hint);
    }
    for n in &o.notes {
        let _ = writeln!(
            s,
            "{}:{}:{}: note[{}] {}",
            n.file,
            n.line,
            n.column,
            n.kind.as_str(),
            n.message
        );
    }
    let _ = writeln!(
        s,
        "{} file(s), {} statement(s): {} block, {} rewrite, {} warn, {} note(s), {} allowed by comment",
        o.files,
        o.statements,
        o.count(Action::Block),
        o.count(Action::Rewrite),
        o.count(Action::Warn),
        o.notes.len(),
        o.allowed_by_comment
    );
    s
}

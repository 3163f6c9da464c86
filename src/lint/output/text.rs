//! Compiler-style text: `file:line:col: action[rule-id] message`, the hint
//! on the next line, notes, and a summary.

use crate::lint::model::Outcome;
use crate::policy::Action;
use std::fmt::Write;

/// Where a line goes: (file order, line, column).
type Key = (Option<usize>, usize, usize);

/// Renders the outcome as text.
pub fn render(o: &Outcome) -> String {
    // Findings and notes in file order, then position (like a compiler).
    let file_at = |name: &str| o.file_names.iter().position(|f| f == name);
    let mut lines: Vec<(Key, String)> = Vec::new();
    for f in &o.findings {
        let mut s = String::new();
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
        lines.push(((file_at(&f.file), f.line, f.column), s));
    }
    for n in &o.notes {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}:{}:{}: note[{}] {}",
            n.file,
            n.line,
            n.column,
            n.kind.as_str(),
            n.message
        );
        lines.push(((file_at(&n.file), n.line, n.column), s));
    }
    lines.sort_by_key(|(key, _)| *key);
    let mut s: String = lines.into_iter().map(|(_, line)| line).collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::model::{Level, LintFinding, Note, NoteKind};

    #[test]
    fn findings_and_notes_come_in_file_and_line_order() {
        let finding = |file: &str, line| LintFinding {
            file: file.into(),
            line,
            column: 1,
            rule: "truncate-table",
            action: Action::Block,
            level: Level::Error,
            message: "m".into(),
            hint: "h".into(),
            classified_only: false,
            unknown_usage: false,
        };
        let o = Outcome {
            files: 2,
            file_names: vec!["b.sql".into(), "a.sql".into()],
            statements: 3,
            findings: vec![finding("b.sql", 5), finding("a.sql", 1)],
            notes: vec![Note {
                file: "b.sql".into(),
                line: 2,
                column: 1,
                kind: NoteKind::Skipped,
                message: "n".into(),
            }],
            allowed_by_comment: 0,
        };
        let text = render(&o);
        let starts: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with(' '))
            .map(|l| l.split(": ").next().unwrap())
            .collect();
        assert_eq!(starts[..3], ["b.sql:2:1", "b.sql:5:1", "a.sql:1:1"]);
    }
}

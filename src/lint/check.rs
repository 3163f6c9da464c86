//! Judges the files of one run in order, statement by statement, with the
//! context the proxy would have: the transaction (BEGIN/COMMIT in the file,
//! or the migration tool's with `--assume-in-transaction`), the tables
//! created earlier in the run, and the usage the proxy knows.

use super::error::LintError;
use super::model::{LintFinding, Note, NoteKind, Outcome};
use super::usage::{Remote, Unknown};
use super::verdict::{self, At};
use crate::analysis::split;
use crate::analysis::StatementKind;
use crate::config::PolicySettings;
use crate::policy::statement::{Name, Op};
use crate::policy::{decide, Context, Mode, NoUsage, Statement, Usage};
use std::path::PathBuf;

/// What the command line decides besides the files.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `server_version_num` the rules assume.
    pub server_version: u32,
    /// The tool wraps each file in a transaction.
    pub assume_in_transaction: bool,
}

/// The transaction as the statements of one file leave it.
#[derive(Default)]
struct Tx {
    explicit: bool,
    by_tool: bool,
    wrote_rows: bool,
    locked: Vec<Name>,
}

impl Tx {
    fn open(&self) -> bool {
        self.explicit || self.by_tool
    }

    fn after(&mut self, st: &Statement) {
        for op in &st.ops {
            match op {
                Op::Begin => self.explicit = true,
                Op::Commit | Op::Rollback => *self = Tx::default(),
                _ => {}
            }
        }
        if self.open() {
            if st.kind == StatementKind::Write {
                self.wrote_rows = true;
            }
            for t in st.exclusive_tables() {
                if !self.locked.contains(&t) {
                    self.locked.push(t);
                }
            }
        }
    }
}

/// Judges `files` in order. The policy is applied as in `enforce` mode:
/// lint reports what the rules decide, whatever the proxy's rollout mode.
pub fn run(
    files: &[PathBuf],
    settings: &PolicySettings,
    options: &Options,
    remote: Option<&Remote>,
) -> Result<Outcome, LintError> {
    let mut settings = settings.clone();
    settings.mode = Mode::Enforce;
    settings.scope.clear();
    let mut outcome = Outcome::default();
    let mut created: Vec<Name> = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path).map_err(|source| LintError::Io {
            path: path.clone(),
            source,
        })?;
        outcome.files += 1;
        let file = path.display().to_string();
        outcome.file_names.push(file.clone());
        lint_file(
            &file,
            &text,
            &settings,
            options,
            remote,
            &mut created,
            &mut outcome,
        );
        if let Some(e) = remote.and_then(Remote::take_failure) {
            return Err(e);
        }
    }
    Ok(outcome)
}

/// Where a statement's own leading comments start: a `--` comment on the
/// line where the previous statement ended belongs to that statement (an
/// override written after it must not let the next one through).
fn own_lead(text: &str, piece: &split::Piece) -> usize {
    let gap = &text[piece.lead..piece.range.start];
    match gap.find('\n') {
        Some(nl) if piece.lead > 0 && !gap[..nl].trim_start().starts_with("/*") => {
            piece.lead + nl + 1
        }
        _ => piece.lead,
    }
}

fn lint_file(
    file: &str,
    text: &str,
    settings: &PolicySettings,
    options: &Options,
    remote: Option<&Remote>,
    created: &mut Vec<Name>,
    outcome: &mut Outcome,
) {
    let pieces = split::script(text);
    let statements: Vec<Option<Statement>> = pieces
        .iter()
        .map(|p| (!p.meta).then(|| Statement::new(&text[own_lead(text, p)..p.range.end])))
        .collect();
    let ends: Vec<bool> = statements
        .iter()
        .map(|s| {
            s.as_ref()
                .is_some_and(|s| s.ops.iter().any(|o| matches!(o, Op::Commit | Op::Rollback)))
        })
        .collect();
    let mut tx = Tx {
        by_tool: options.assume_in_transaction,
        ..Tx::default()
    };
    for (i, (piece, st)) in pieces.iter().zip(&statements).enumerate() {
        let (line, column) = split::line_col(text, piece.range.start);
        let Some(st) = st else {
            outcome.notes.push(Note {
                file: file.to_string(),
                line,
                column,
                kind: NoteKind::Skipped,
                message: format!(
                    "psql meta-command `{}` skipped",
                    text[piece.range.clone()]
                        .split_whitespace()
                        .next()
                        .unwrap_or("\\")
                ),
            });
            continue;
        };
        outcome.statements += 1;
        let at = At {
            file,
            line,
            column,
            classified_only: !st.parsed,
        };
        let known: &dyn Usage = match remote {
            Some(r) => r,
            None => &NoUsage,
        };
        let unknown = Unknown {
            created,
            remote: remote.is_some(),
        };
        let base = Context {
            server_version: options.server_version,
            in_transaction: tx.open(),
            created: created.clone(),
            catalog: remote.map(Remote::catalog),
            wrote_rows: tx.wrote_rows,
            exclusive_locked: tx.locked.clone(),
            commit_follows: Some(ends[i + 1..].iter().any(|e| *e)),
            usage: known,
            ..Context::default()
        };
        let decision = decide(st, &base, settings);
        let guess = decide(
            st,
            &Context {
                usage: &unknown,
                ..base
            },
            settings,
        );
        let (mut found, allowed): (Vec<LintFinding>, usize) =
            verdict::findings(&decision, settings, &at);
        found.extend(verdict::unknown_usage(&decision, &guess, &at));
        outcome.allowed_by_comment += allowed;
        if !st.parsed {
            outcome.notes.push(Note {
                file: file.to_string(),
                line,
                column,
                kind: NoteKind::ClassifiedOnly,
                message: format!(
                    "the parser could not read this `{}` statement; it was judged by the lexical classifier only ({} finding(s)); review it by hand",
                    if st.command.is_empty() { "?" } else { &st.command },
                    found.len()
                ),
            });
        }
        outcome.findings.extend(found);
        tx.after(st);
        created.extend(st.created_tables());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint_text(text: &str, assume: bool) -> Outcome {
        let mut outcome = Outcome::default();
        let options = Options {
            server_version: 150000,
            assume_in_transaction: assume,
        };
        lint_file(
            "m.sql",
            text,
            &PolicySettings::default(),
            &options,
            None,
            &mut Vec::new(),
            &mut outcome,
        );
        outcome
    }

    fn rules(o: &Outcome) -> Vec<(usize, &'static str)> {
        o.findings.iter().map(|f| (f.line, f.rule)).collect()
    }

    #[test]
    fn commit_ends_the_tools_transaction_too() {
        let text = "COMMIT;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);\n";
        assert!(rules(&lint_text(text, false)).is_empty());
        assert!(rules(&lint_text(text, true)).is_empty(), "after COMMIT");
        let open = "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);\n";
        assert_eq!(
            rules(&lint_text(open, true)),
            [(1, "concurrently-in-transaction")]
        );
    }

    #[test]
    fn locks_and_writes_are_per_transaction() {
        let text = "BEGIN;\nALTER TABLE a ADD COLUMN IF NOT EXISTS x text;\nCOMMIT;\nBEGIN;\nALTER TABLE b ADD COLUMN IF NOT EXISTS x text;\nCOMMIT;\n";
        assert!(rules(&lint_text(text, false)).is_empty());
        let text = "BEGIN;\nALTER TABLE a ADD COLUMN IF NOT EXISTS x text;\nALTER TABLE a ADD COLUMN IF NOT EXISTS y text;\nALTER TABLE b ADD COLUMN IF NOT EXISTS x text;\nCOMMIT;\n";
        let found = lint_text(text, false);
        assert_eq!(
            rules(&found),
            [(4, "multiple-exclusive-locks-in-transaction")]
        );
        let message = &found.findings[0].message;
        assert!(
            message.contains("ACCESS EXCLUSIVE on a and now"),
            "each locked table named once: {message}"
        );
    }

    #[test]
    fn an_override_after_a_statement_is_not_the_next_ones() {
        let text =
            "SELECT 1; -- ddlguard:allow truncate-table meant for the select\nTRUNCATE audit;\n";
        assert_eq!(rules(&lint_text(text, false)), [(2, "truncate-table")]);
    }

    #[test]
    fn override_comments_above_a_statement_count() {
        let text =
            "SELECT 1;\n-- ddlguard:allow truncate-table emptied by design\nTRUNCATE audit;\n";
        let o = lint_text(text, false);
        assert!(rules(&o).is_empty());
        assert_eq!(o.allowed_by_comment, 1);
    }
}

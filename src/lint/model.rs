//! What a lint run reports: findings of the policy's rules and notes about
//! what was skipped or only classified.

use crate::policy::Action;

/// How serious a finding is for CI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Advice, unknown usage, or a rule configured to warn.
    Warning,
    /// The proxy would block the statement or replace it by a safe sequence.
    Error,
}

impl Level {
    /// Lower-case name (`warning`, `error`), as JSON and SARIF write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// One rule that fired on one statement of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintFinding {
    /// The file as given (or found in a directory).
    pub file: String,
    /// 1-based line of the statement's first token.
    pub line: usize,
    /// 1-based column (in characters) of the statement's first token.
    pub column: usize,
    /// Rule id from the catalog.
    pub rule: &'static str,
    /// What the proxy would do (`warn`, `rewrite`, `block`).
    pub action: Action,
    /// Warning or error.
    pub level: Level,
    /// Why the statement hurts.
    pub message: String,
    /// The safe alternative.
    pub hint: String,
    /// The parser could not read the statement; the lexical classifier's
    /// facts were judged instead.
    pub classified_only: bool,
    /// A usage-aware rule that could not ask a proxy (no `--usage-from`).
    pub unknown_usage: bool,
}

/// Why a piece of a file got no judgement of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteKind {
    /// A psql meta-command (`\i`, `\set`, ...), skipped.
    Skipped,
    /// A statement the parser could not read, judged lexically only.
    ClassifiedOnly,
}

impl NoteKind {
    /// Stable name in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            NoteKind::Skipped => "skipped",
            NoteKind::ClassifiedOnly => "classified-only",
        }
    }
}

/// A remark on one piece of a file (no rule, never fails the run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What kind of remark.
    pub kind: NoteKind,
    /// The remark.
    pub message: String,
}

/// Everything one run found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Files read.
    pub files: usize,
    /// Their names, in the order they were judged.
    pub file_names: Vec<String>,
    /// Statements judged.
    pub statements: usize,
    /// Findings, in file and statement order.
    pub findings: Vec<LintFinding>,
    /// Notes, in file order.
    pub notes: Vec<Note>,
    /// Findings let through by a `-- ddlguard:allow` comment.
    pub allowed_by_comment: usize,
}

impl Outcome {
    /// Number of findings with this action.
    pub fn count(&self, action: Action) -> usize {
        self.findings.iter().filter(|f| f.action == action).count()
    }
}

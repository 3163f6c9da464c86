//! The lexical statement classifier: what a statement is, which object it
//! names (kind and exact name), and the flags a DDL policy needs
//! (`CONCURRENTLY`, `IF [NOT] EXISTS`, `CASCADE`, the `ON` table of an
//! index, trigger, policy or rule). It reads the fingerprint text only, so
//! it also covers what sqlparser cannot parse (DESIGN section 5): DDL never
//! escapes the policy because the parser failed.
//!
//! Entry points: [`classify`] for one statement, [`classify_all`] for a text
//! that may hold several; an `Analysis` carries the logged ones (DDL,
//! maintenance, privileges) in `Analysis::ddl`, so a policy reads them from
//! the analysis the tracker already made.
//!
//! ```
//! use ddlguard::analysis::classify::{classify_all, ObjectKind};
//! use ddlguard::analysis::fingerprint;
//!
//! let fp = fingerprint("SET lock_timeout = '1s'; DROP INDEX CONCURRENTLY IF EXISTS app.idx");
//! let all = classify_all(&fp.text);
//! let drop = &all[1];
//! assert_eq!(drop.command, "drop index");
//! assert_eq!(drop.object, ObjectKind::Index);
//! assert_eq!(drop.name().map(|n| n.to_string()).as_deref(), Some("app.idx"));
//! assert!(drop.concurrently && drop.if_exists);
//! ```

pub mod lex;
mod object;
mod parse;
#[cfg(test)]
mod tests;

pub use object::ObjectKind;

use super::model::{Mode, RelationName, RelationUse, StatementKind};
use lex::Tok;

/// The name of an object as written: schema when qualified, identifiers
/// folded as Postgres folds them (unquoted to lower case, quoted exact).
pub type ObjectName = RelationName;

/// What the keywords of one statement say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Classified {
    /// Statement kind.
    pub kind: StatementKind,
    /// Normalized command: the verb and the object kind, e.g. `alter
    /// table`, `create index`, `drop function`, `comment on column`,
    /// `reindex table`, `vacuum`, `grant`, `select`.
    pub command: String,
    /// The kind of object the statement names (`None` when it names none).
    pub object: ObjectKind,
    /// The objects named, in order (`DROP TABLE a, b` names two); never a
    /// literal or a `$n` placeholder.
    pub names: Vec<ObjectName>,
    /// The relation an index, trigger, policy or rule is `ON` (`TO` for a
    /// rule), or the table of a column or constraint in `COMMENT ON`.
    pub on: Option<RelationName>,
    /// The first sub-command of an `ALTER`, e.g. `rename`, `rename column`,
    /// `add column`, `drop constraint`, `set tablespace`, `owner`.
    pub action: Option<String>,
    /// `CONCURRENTLY` (create/drop/reindex index, refresh, detach partition).
    pub concurrently: bool,
    /// `IF EXISTS`.
    pub if_exists: bool,
    /// `IF NOT EXISTS`.
    pub if_not_exists: bool,
    /// `CASCADE` (not the `ON DELETE CASCADE` of a foreign key).
    pub cascade: bool,
    /// `CREATE OR REPLACE`.
    pub or_replace: bool,
    /// `TEMP` / `TEMPORARY` object.
    pub temporary: bool,
    /// The statement's normalized text (its fingerprint: no literals).
    pub text: String,
}

impl Classified {
    /// The first object named, if any.
    pub fn name(&self) -> Option<&ObjectName> {
        self.names.first()
    }

    /// True for `ALTER ... RENAME` (of the object or of a column,
    /// constraint, ...).
    pub fn renames(&self) -> bool {
        self.action
            .as_deref()
            .is_some_and(|a| a.starts_with("rename"))
    }

    /// The verb: `create`, `alter`, `drop`, `comment`, `grant`, ...
    pub fn verb(&self) -> &str {
        self.command.split(' ').next().unwrap_or("")
    }

    /// True for statements the DDL log records: schema changes,
    /// maintenance and privilege changes.
    pub fn is_logged(&self) -> bool {
        matches!(
            self.kind,
            StatementKind::Ddl | StatementKind::Maintenance | StatementKind::Privilege
        )
    }

    /// True when the statement, if it succeeds, can change what the
    /// catalog snapshot holds (relations, columns, schemas, types): only
    /// those reload it. `COMMENT`, `SECURITY LABEL`, indexes, functions,
    /// roles, ... do not.
    pub fn changes_catalog(&self) -> bool {
        self.kind == StatementKind::Ddl
            && !matches!(self.verb(), "comment" | "security")
            && self.object.changes_snapshot()
    }

    /// The relations the statement provably uses as a whole, for usage:
    /// the named tables, views, materialized views, sequences and foreign
    /// tables, and the `ON` table of an index, trigger, policy or rule.
    /// Comments, labels and grants use none. `TABLE t` reads all columns of
    /// `t`; everything else is recorded as a write (it changes or locks it).
    pub fn relation_uses(&self) -> Vec<RelationUse> {
        if matches!(self.verb(), "comment" | "security" | "grant" | "revoke") {
            return Vec::new();
        }
        let read = self.command == "table";
        let mut out = Vec::new();
        if self.object.is_used_relation() {
            for n in &self.names {
                let mut relation = n.clone();
                if self.temporary && relation.schema.is_none() {
                    // A temporary relation lives in the session's pg_temp.
                    relation.schema = Some(crate::catalog::TEMP_SCHEMA.into());
                }
                out.push(RelationUse {
                    relation,
                    mode: if read { Mode::Read } else { Mode::Write },
                    all_columns: read,
                });
            }
        }
        if let Some(on) = &self.on {
            out.push(RelationUse {
                relation: on.clone(),
                mode: Mode::Write,
                all_columns: false,
            });
        }
        out
    }

    /// The first name as `schema.name` (or `name`), for the DDL log.
    pub fn target(&self) -> Option<String> {
        self.name().map(|n| n.to_string())
    }
}

/// Classifies one statement from its fingerprint text (lower-cased,
/// comments and literals removed).
pub fn classify(fingerprint: &str) -> Classified {
    let toks: Vec<Tok> = lex::tokens(fingerprint)
        .into_iter()
        .map(|(t, _, _)| t)
        .collect();
    let mut c = parse::statement(&toks);
    c.text = fingerprint.to_string();
    c
}

/// Classifies each statement of a fingerprint text that may hold several
/// (a simple Query), in order.
pub fn classify_all(fingerprint: &str) -> Vec<Classified> {
    lex::statements(fingerprint)
        .into_iter()
        .map(classify)
        .collect()
}

//! The DDL policy (DESIGN section 6): a catalog of rules and a pure engine
//! that turns one statement and what the session knows into a decision
//! (forward, warn, block, rewrite). No I/O here: the relay's statement gate
//! builds the [`Context`], calls [`decide`] and applies the [`Verdict`].

pub mod action;
pub mod catalog;
pub mod context;
pub mod doc;
pub mod engine;
#[cfg(test)]
mod engine_tests;
pub mod from_ast;
pub mod lexical;
pub mod overrides;
pub mod rule;
pub mod rules;
pub mod settings;
pub mod statement;
pub mod tokens;

pub use action::{Action, InTransaction, Mode};
pub use context::{Context, Dependent, NoUsage, Session, Usage};
pub use engine::{decide, Decision, Finding, Refusal, Verdict, BLOCK_SQLSTATE};
pub use rule::{Category, Hit, Plan, Rule, Step};
pub use settings::{PolicySettings, Scope};
pub use statement::{ObjectKind, Statement};

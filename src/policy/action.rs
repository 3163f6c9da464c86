//! The actions a rule can take and the modes that scale them (DESIGN
//! section 6); shared by the engine and `[policy]` in the configuration.

use serde::{Deserialize, Serialize};

/// What the proxy does about one finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Forward; the finding is only recorded.
    Allow,
    /// Forward, and tell the client in a NoticeResponse.
    Warn,
    /// Run the safe sequence instead and answer as if the statement ran.
    Rewrite,
    /// Refuse with SQLSTATE 55000; nothing is executed.
    Block,
}

impl Action {
    /// Lower-case name used in reports, notices and configs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Warn => "warn",
            Action::Rewrite => "rewrite",
            Action::Block => "block",
        }
    }
}

/// How strictly the whole policy applies (`policy.mode`, or a scope's mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Only record what the rules find.
    Observe,
    /// Turn every block and rewrite into a warning.
    Warn,
    /// Apply each rule's action.
    #[default]
    Enforce,
}

impl Mode {
    /// The action in force for a rule whose configured action is `action`.
    pub fn scale(self, action: Action) -> Action {
        match (self, action) {
            (Mode::Observe, _) => Action::Allow,
            (Mode::Warn, Action::Block | Action::Rewrite) => Action::Warn,
            (_, a) => a,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Observe => "observe",
            Mode::Warn => "warn",
            Mode::Enforce => "enforce",
        }
    }
}

/// What happens to a safe sequence that needs to run outside a transaction
/// block when the client is inside one (`policy.in_transaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InTransaction {
    /// Refuse, naming the migration tool's way out.
    #[default]
    Block,
    /// Answer the statement now and run the sequence right after COMMIT.
    AfterCommit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_scale_actions() {
        assert_eq!(Mode::Observe.scale(Action::Block), Action::Allow);
        assert_eq!(Mode::Warn.scale(Action::Block), Action::Warn);
        assert_eq!(Mode::Warn.scale(Action::Rewrite), Action::Warn);
        assert_eq!(Mode::Warn.scale(Action::Allow), Action::Allow);
        assert_eq!(Mode::Enforce.scale(Action::Rewrite), Action::Rewrite);
    }
}

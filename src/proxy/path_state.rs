//! The `search_path` of one session as the statement tracker follows it:
//! what the startup packet set, what `SET` changed, and a `SET LOCAL` that
//! lasts until its transaction ends.

use crate::analysis::search_path::{canonical, SearchPathChange};

/// Canonical `search_path` texts ("" is the server default).
#[derive(Debug, Clone, Default)]
pub struct PathState {
    /// From the startup packet: what `RESET` returns to.
    startup: String,
    /// Set for the session.
    session: String,
    /// A `SET LOCAL` in effect, with the sequence number of the message
    /// that made it: the first idle ReadyForQuery at or after that message
    /// ends it.
    local: Option<(String, u64)>,
}

impl PathState {
    /// The state of a session that started with `startup` (canonical text).
    pub fn new(startup: String) -> PathState {
        PathState {
            session: startup.clone(),
            startup,
            local: None,
        }
    }

    /// The path in effect now.
    pub fn current(&self) -> &str {
        match &self.local {
            Some((path, _)) => path,
            None => &self.session,
        }
    }

    /// Applies a change made by the message numbered `seq`; true when the
    /// path in effect changed.
    pub fn apply(&mut self, change: &SearchPathChange, seq: u64) -> bool {
        let before = self.current().to_string();
        match change {
            SearchPathChange::Set(list) => {
                // A session SET also replaces a SET LOCAL of the transaction.
                self.session = canonical(list);
                self.local = None;
            }
            SearchPathChange::Local(list) => self.local = Some((canonical(list), seq)),
            SearchPathChange::Reset => {
                self.session = self.startup.clone();
                self.local = None;
            }
        }
        before != self.current()
    }

    /// The session went idle after the message numbered `seq`; true when a
    /// `SET LOCAL` ended with its transaction.
    pub fn idle_after(&mut self, seq: u64) -> bool {
        match &self.local {
            Some((_, since)) if seq >= *since => {
                let changed = self.local.as_ref().map(|(p, _)| p.as_str()) != Some(&self.session);
                self.local = None;
                changed
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &str) -> SearchPathChange {
        SearchPathChange::Set(vec![s.into()])
    }

    #[test]
    fn reset_returns_to_the_startup_path_and_local_ends_with_its_transaction() {
        let mut p = PathState::new("app".into());
        assert!(p.apply(&set("other"), 1));
        assert_eq!(p.current(), "other");
        assert!(p.apply(&SearchPathChange::Reset, 2));
        assert_eq!(p.current(), "app", "RESET goes back to the startup value");

        assert!(p.apply(&SearchPathChange::Local(vec!["tx".into()]), 5));
        // An idle ReadyForQuery of an earlier pipelined message does not end it.
        assert!(!p.idle_after(4));
        assert_eq!(p.current(), "tx");
        assert!(p.idle_after(5));
        assert_eq!(p.current(), "app");

        // SET after SET LOCAL in the same transaction wins.
        p.apply(&SearchPathChange::Local(vec!["tx".into()]), 7);
        p.apply(&set("later"), 8);
        assert!(!p.idle_after(9));
        assert_eq!(p.current(), "later");
    }
}

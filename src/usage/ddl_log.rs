//! The DDL log: every DDL statement that passed through the proxy, who ran
//! it and how it ended (`SHOW DDL`, `/api/v1/ddl`). It holds fingerprints,
//! never literal values, and keeps the most recent entries only.

use super::ClientIdentity;
use crate::analysis::classify::Classified;
use crate::analysis::Analysis;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// One DDL statement and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdlEvent {
    /// When it finished, ms since the Unix epoch.
    pub at_ms: u64,
    /// Who ran it.
    pub client: ClientIdentity,
    /// Leading command, e.g. `alter table`, `create index`, `vacuum`.
    pub command: String,
    /// The kind of object it names (`table`, `index`, `function`, ...;
    /// empty when it names none).
    pub object: &'static str,
    /// The object it names as written (`schema.name` when qualified).
    pub target: Option<String>,
    /// The relation an index, trigger, policy or rule is on.
    pub on: Option<String>,
    /// Normalized text of this statement alone (a Query of several
    /// statements gives one event per logged statement).
    pub fingerprint: String,
    /// `None` when it succeeded, else the SQLSTATE it failed with.
    pub error: Option<String>,
    /// How long it took, µs.
    pub duration_us: u64,
}

/// The most recent DDL events, oldest first, and totals since start.
pub struct DdlLog {
    events: Mutex<VecDeque<DdlEvent>>,
    capacity: usize,
    /// DDL statements since start by (command, outcome: `ok` or SQLSTATE).
    totals: Mutex<BTreeMap<(String, String), u64>>,
    /// Estimated bytes of the events held (for `/metrics`).
    bytes: AtomicUsize,
}

/// Estimated bytes of one event held in the log.
fn event_bytes(e: &DdlEvent) -> usize {
    std::mem::size_of::<DdlEvent>()
        + e.client.application_name.len()
        + e.client.user.len()
        + e.client.database.len()
        + e.client.client_addr.len()
        + e.command.len()
        + e.target.as_ref().map_or(0, |t| t.len())
        + e.fingerprint.len()
        + e.error.as_ref().map_or(0, |t| t.len())
}

impl DdlLog {
    /// A log keeping the last `capacity` events.
    pub fn new(capacity: usize) -> DdlLog {
        DdlLog {
            events: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            totals: Mutex::new(BTreeMap::new()),
            bytes: AtomicUsize::new(0),
        }
    }

    /// Records each DDL, maintenance or privilege statement of a finished
    /// execution, one event per statement. `error` is the execution's: a
    /// Query of several statements runs as one implicit transaction, so
    /// an error there means none of them took effect.
    pub fn record(
        &self,
        client: &ClientIdentity,
        analysis: &Analysis,
        at_ms: u64,
        duration_us: u64,
        error: Option<[u8; 5]>,
    ) {
        for c in &analysis.ddl {
            self.record_one(client, c, at_ms, duration_us, error);
        }
    }

    fn record_one(
        &self,
        client: &ClientIdentity,
        c: &Classified,
        at_ms: u64,
        duration_us: u64,
        error: Option<[u8; 5]>,
    ) {
        let event = DdlEvent {
            at_ms,
            client: client.clone(),
            command: c.command.clone(),
            object: c.object.as_str(),
            target: c.target(),
            on: c.on.as_ref().map(|o| o.to_string()),
            fingerprint: c.text.clone(),
            error: error.map(|e| String::from_utf8_lossy(&e).into_owned()),
            duration_us,
        };
        {
            let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
            let outcome = event.error.clone().unwrap_or_else(|| "ok".into());
            *totals.entry((event.command.clone(), outcome)).or_default() += 1;
        }
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if events.len() == self.capacity {
            if let Some(old) = events.pop_front() {
                self.bytes.fetch_sub(event_bytes(&old), Ordering::Relaxed);
            }
        }
        self.bytes.fetch_add(event_bytes(&event), Ordering::Relaxed);
        events.push_back(event);
    }

    /// Estimated bytes of the events held.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// DDL statements since start by (command, outcome), for metrics.
    pub fn totals(&self) -> Vec<((String, String), u64)> {
        let totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        totals.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// All events held, oldest first.
    pub fn events(&self) -> Vec<DdlEvent> {
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        events.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Analyzer;

    fn who() -> ClientIdentity {
        ClientIdentity {
            application_name: "migrate".into(),
            user: "u".into(),
            database: "d".into(),
            client_addr: "127.0.0.1".into(),
        }
    }

    #[test]
    fn keeps_the_latest_events_with_command_target_and_outcome() {
        let log = DdlLog::new(2);
        let analyzer = Analyzer::new(16);
        let who = who();
        for (sql, err) in [
            ("CREATE TABLE a (x int)", None),
            (
                "ALTER TABLE app.users ADD COLUMN note text DEFAULT 'secret'",
                None,
            ),
            ("DROP TABLE missing", Some(*b"42P01")),
        ] {
            log.record(&who, &analyzer.analyze(sql), 5, 10, err);
        }
        let events = log.events();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].command, "alter table");
        assert_eq!(events[0].target.as_deref(), Some("app.users"));
        assert!(!events[0].fingerprint.contains("secret"), "no literals");
        assert_eq!(events[1].error.as_deref(), Some("42P01"));
        let totals = log.totals();
        assert_eq!(totals.len(), 3, "totals outlive the ring: {totals:?}");
        assert_eq!(log.bytes(), events.iter().map(event_bytes).sum::<usize>());
    }

    #[test]
    fn each_statement_of_a_query_is_logged_on_its_own() {
        let log = DdlLog::new(16);
        let analyzer = Analyzer::new(16);
        let who = who();
        let sql = "SET lock_timeout = '1s'; ALTER TABLE app.users ADD COLUMN note text; \
                   CREATE INDEX CONCURRENTLY i ON app.users (note); SELECT 1";
        log.record(&who, &analyzer.analyze(sql), 5, 10, None);
        let events = log.events();
        let got: Vec<(&str, &str, Option<&str>, Option<&str>)> = events
            .iter()
            .map(|e| {
                (
                    e.command.as_str(),
                    e.object,
                    e.target.as_deref(),
                    e.on.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("alter table", "table", Some("app.users"), None),
                ("create index", "index", Some("i"), Some("app.users")),
            ]
        );
        assert_eq!(
            events[0].fingerprint,
            "alter table app.users add column note text"
        );
        // Objects that are not relations keep their kind.
        log.record(
            &who,
            &analyzer.analyze("CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql"),
            6,
            1,
            None,
        );
        let last = log.events().pop().map(|e| (e.command, e.object, e.target));
        assert_eq!(
            last,
            Some(("create function".into(), "function", Some("f".into())))
        );
    }
}

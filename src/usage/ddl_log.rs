//! The DDL log: every DDL statement that passed through the proxy, who ran
//! it, what the gate and the guard did with it, how it ended and what it
//! did to the traffic on its table (`SHOW DDL`, `/api/v1/ddl`). It holds
//! fingerprints, never literal values, and keeps the most recent entries;
//! the flusher writes them to the store and merges the rows other proxies
//! wrote there.

use super::impact::{Impact, ImpactState};
use super::ClientIdentity;
use crate::analysis::classify::Classified;
use crate::analysis::Analysis;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// One rule that fired on a DDL, and what the proxy did about it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleHit {
    /// The rule id (`add-column-volatile-default`, ...).
    pub rule: String,
    /// What the proxy did: `warn`, `block`, `rewrite`, `allow`.
    pub action: String,
    /// The reason of a `-- ddlguard:allow RULE reason` comment that let
    /// the statement through.
    pub allowed_by_comment: Option<String>,
}

/// What the gate and the guard did with one DDL execution.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DdlNotes {
    /// The rules that fired.
    pub rules: Vec<RuleHit>,
    /// "forward" | "warn" | "block" | "rewrite" | "guard" | "after-commit"
    pub action: String,
    /// Attempts made (guarded execution retries on 55P03).
    pub attempts: u32,
    /// Time spent waiting in the pre-flight, outside the lock queue.
    pub preflight_wait_ms: u64,
    /// Time the attempts spent waiting for their lock, all together.
    pub lock_wait_ms: u64,
    /// `guard::blockers::Blocker::describe()` lines (fingerprints, never literals).
    pub blockers: Vec<String>,
    /// pids the guard terminated (optional blocker termination).
    pub terminated: Vec<String>,
}

impl DdlNotes {
    /// The notes of a DDL nobody annotated: the proxy passed it on once.
    pub fn forwarded() -> DdlNotes {
        DdlNotes {
            action: "forward".into(),
            attempts: 1,
            ..DdlNotes::default()
        }
    }
}

/// One DDL statement and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DdlEvent {
    /// Unique across a fleet sharing a store: the recording proxy's
    /// instance id and a sequence number.
    pub id: String,
    /// When it finished, ms since the Unix epoch.
    pub at_ms: u64,
    /// Who ran it.
    pub client: ClientIdentity,
    /// Leading command, e.g. `alter table`, `create index`, `vacuum`.
    pub command: String,
    /// The kind of object it names (`table`, `index`, `function`, ...;
    /// empty when it names none).
    pub object: String,
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
    /// What the gate and the guard did.
    pub notes: DdlNotes,
    /// The other clients' traffic on its table before, during and after.
    pub impact: Impact,
}

/// Object kinds whose target is the relation whose traffic a DDL affects.
const RELATIONS: &[&str] = &["table", "foreign table", "view", "materialized view"];

impl DdlEvent {
    /// When it started, ms since the Unix epoch.
    pub fn started_ms(&self) -> u64 {
        self.at_ms.saturating_sub(self.duration_us / 1000)
    }

    /// The relation whose traffic it affects: the table an index, trigger,
    /// ... is on, or the relation it names; `None` for other objects.
    pub fn relation(&self) -> Option<&str> {
        self.on.as_deref().or_else(|| {
            RELATIONS
                .contains(&self.object.as_str())
                .then_some(self.target.as_deref())
                .flatten()
        })
    }

    /// `ok`, or the SQLSTATE it failed with.
    pub fn outcome(&self) -> &str {
        self.error.as_deref().unwrap_or("ok")
    }
}

/// Events in time order; the id keeps equal times apart.
type Key = (u64, String);

fn key(e: &DdlEvent) -> Key {
    (e.at_ms, e.id.clone())
}

/// Written events not in the store yet that fell out of the log are kept
/// up to this many (while the store is unreachable).
const MAX_EVICTED_UNWRITTEN: usize = 10_000;

/// The log's contents, under one lock.
#[derive(Default)]
struct Held {
    events: BTreeMap<Key, DdlEvent>,
    /// Events recorded or changed here and not written to the store yet.
    unwritten: BTreeSet<Key>,
    /// Unwritten events that fell out of the log.
    evicted_unwritten: Vec<DdlEvent>,
}

/// The most recent DDL events, and totals since start.
pub struct DdlLog {
    held: Mutex<Held>,
    capacity: usize,
    /// DDL statements since start by (command, outcome: `ok` or SQLSTATE).
    totals: Mutex<BTreeMap<(String, String), u64>>,
    /// Estimated bytes of the events held (for `/metrics`).
    bytes: AtomicUsize,
    /// The prefix of the ids this proxy gives (random per start).
    instance: String,
    next: AtomicU64,
}

/// Estimated bytes of one event held in the log.
fn event_bytes(e: &DdlEvent) -> usize {
    let n = &e.notes;
    std::mem::size_of::<DdlEvent>()
        + e.id.len()
        + e.client.application_name.len()
        + e.client.user.len()
        + e.client.database.len()
        + e.client.client_addr.len()
        + e.command.len()
        + e.object.len()
        + e.target.as_ref().map_or(0, |t| t.len())
        + e.on.as_ref().map_or(0, |t| t.len())
        + e.fingerprint.len()
        + e.error.as_ref().map_or(0, |t| t.len())
        + n.action.len()
        + n.rules
            .iter()
            .map(|r| {
                std::mem::size_of::<RuleHit>()
                    + r.rule.len()
                    + r.action.len()
                    + r.allowed_by_comment.as_ref().map_or(0, |c| c.len())
            })
            .sum::<usize>()
        + n.blockers
            .iter()
            .chain(&n.terminated)
            .map(|b| std::mem::size_of::<String>() + b.len())
            .sum::<usize>()
}

/// A random id for this proxy's start.
fn instance_id() -> String {
    let seed = (
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:016x}", ahash::RandomState::new().hash_one(seed))
}

impl DdlLog {
    /// A log keeping the last `capacity` events.
    pub fn new(capacity: usize) -> DdlLog {
        DdlLog {
            held: Mutex::new(Held::default()),
            capacity: capacity.max(1),
            totals: Mutex::new(BTreeMap::new()),
            bytes: AtomicUsize::new(0),
            instance: instance_id(),
            next: AtomicU64::new(1),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records each DDL, maintenance or privilege statement of a finished
    /// execution, one event per statement. `error` is the execution's: a
    /// Query of several statements runs as one implicit transaction, so
    /// an error there means none of them took effect. `notes` are what the
    /// gate and the guard did (`None`: nothing, the statement was
    /// forwarded).
    pub fn record(
        &self,
        client: &ClientIdentity,
        analysis: &Analysis,
        at_ms: u64,
        duration_us: u64,
        error: Option<[u8; 5]>,
        notes: Option<&DdlNotes>,
    ) {
        let forwarded;
        let notes = match notes {
            Some(n) => n,
            None => {
                forwarded = DdlNotes::forwarded();
                &forwarded
            }
        };
        for c in &analysis.ddl {
            self.record_one(client, c, at_ms, duration_us, error, notes);
        }
    }

    fn record_one(
        &self,
        client: &ClientIdentity,
        c: &Classified,
        at_ms: u64,
        duration_us: u64,
        error: Option<[u8; 5]>,
        notes: &DdlNotes,
    ) {
        let mut notes = notes.clone();
        if notes.action.is_empty() {
            notes.action = "forward".into();
        }
        let event = DdlEvent {
            id: format!(
                "{}-{:012}",
                self.instance,
                self.next.fetch_add(1, Ordering::Relaxed)
            ),
            at_ms,
            client: client.clone(),
            command: c.command.clone(),
            object: c.object.as_str().to_string(),
            target: c.target(),
            on: c.on.as_ref().map(|o| o.to_string()),
            fingerprint: c.text.clone(),
            error: error.map(|e| String::from_utf8_lossy(&e).into_owned()),
            duration_us,
            notes,
            impact: Impact::default(),
        };
        {
            let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
            *totals
                .entry((event.command.clone(), event.outcome().to_string()))
                .or_default() += 1;
        }
        let mut held = self.held();
        held.unwritten.insert(key(&event));
        self.insert(&mut held, event);
    }

    /// Adds (or replaces) an event and drops the oldest beyond capacity.
    fn insert(&self, held: &mut Held, event: DdlEvent) {
        self.bytes.fetch_add(event_bytes(&event), Ordering::Relaxed);
        if let Some(old) = held.events.insert(key(&event), event) {
            self.bytes.fetch_sub(event_bytes(&old), Ordering::Relaxed);
        }
        while held.events.len() > self.capacity {
            let Some((k, old)) = held.events.pop_first() else {
                break;
            };
            self.bytes.fetch_sub(event_bytes(&old), Ordering::Relaxed);
            if held.unwritten.remove(&k) && held.evicted_unwritten.len() < MAX_EVICTED_UNWRITTEN {
                held.evicted_unwritten.push(old);
            }
        }
    }

    /// Estimated bytes of the events held.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Events held at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.held().events.len()
    }

    /// True when no event is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// DDL statements since start by (command, outcome), for metrics.
    pub fn totals(&self) -> Vec<((String, String), u64)> {
        let totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        totals.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// All events held, oldest first.
    pub fn events(&self) -> Vec<DdlEvent> {
        self.held().events.values().cloned().collect()
    }

    /// True for the events this proxy recorded (since it started).
    pub fn is_own(&self, e: &DdlEvent) -> bool {
        e.id.strip_prefix(&self.instance)
            .is_some_and(|rest| rest.starts_with('-'))
    }

    /// Measures again the impact of this proxy's events whose impact is
    /// not complete (`measure` runs without the log's lock held); changed
    /// ones are written with the next flush.
    pub fn refresh_impacts(&self, mut measure: impl FnMut(&DdlEvent) -> Impact) {
        let open: Vec<DdlEvent> = self
            .held()
            .events
            .values()
            .filter(|e| {
                e.impact.state != ImpactState::Complete && e.relation().is_some() && self.is_own(e)
            })
            .cloned()
            .collect();
        let measured: Vec<(Key, Impact)> = open
            .iter()
            .map(|e| (key(e), measure(e)))
            .filter(|(_, impact)| impact.state != ImpactState::None)
            .collect();
        let mut held = self.held();
        for (k, impact) in measured {
            if let Some(e) = held.events.get_mut(&k) {
                if e.impact != impact {
                    e.impact = impact;
                    held.unwritten.insert(k);
                }
            }
        }
    }

    /// The events not written to the store yet (now counted as written;
    /// give them back with [`unwritten_again`](Self::unwritten_again)
    /// when writing fails).
    pub fn take_unwritten(&self) -> Vec<DdlEvent> {
        let mut held = self.held();
        let keys = std::mem::take(&mut held.unwritten);
        let mut out = std::mem::take(&mut held.evicted_unwritten);
        out.extend(keys.iter().filter_map(|k| held.events.get(k).cloned()));
        out
    }

    /// Events whose write failed: written with the next flush.
    pub fn unwritten_again(&self, events: Vec<DdlEvent>) {
        let mut held = self.held();
        for e in events {
            let k = key(&e);
            if held.events.contains_key(&k) {
                held.unwritten.insert(k);
            } else if held.evicted_unwritten.len() < MAX_EVICTED_UNWRITTEN {
                held.evicted_unwritten.push(e);
            }
        }
    }

    /// Takes rows read from the store: other proxies' events and their
    /// later changes, and this proxy's history after a restart. The
    /// events this proxy recorded since it started are its own to change.
    pub fn merge_stored(&self, rows: Vec<DdlEvent>) {
        let mut held = self.held();
        for row in rows {
            if self.is_own(&row) {
                continue;
            }
            let k = key(&row);
            let full = held.events.len() >= self.capacity;
            if full
                && held
                    .events
                    .first_key_value()
                    .is_some_and(|(first, _)| k < *first)
            {
                continue;
            }
            if held.events.get(&k) != Some(&row) {
                self.insert(&mut held, row);
            }
        }
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
            log.record(&who, &analyzer.analyze(sql), 5, 10, err, None);
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
        log.record(&who, &analyzer.analyze(sql), 5, 10, None, None);
        let events = log.events();
        let got: Vec<(&str, &str, Option<&str>, Option<&str>)> = events
            .iter()
            .map(|e| {
                (
                    e.command.as_str(),
                    e.object.as_str(),
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
            None,
        );
        let last = log.events().pop().map(|e| (e.command, e.object, e.target));
        assert_eq!(
            last,
            Some((
                "create function".into(),
                "function".into(),
                Some("f".into())
            ))
        );
    }

    #[test]
    fn notes_go_with_the_event_and_forwarded_is_the_default() {
        let log = DdlLog::new(16);
        let analyzer = Analyzer::new(16);
        let alter = analyzer.analyze("ALTER TABLE users ADD COLUMN x int");
        log.record(&who(), &alter, 5, 10, None, None);
        let notes = DdlNotes {
            rules: vec![RuleHit {
                rule: "add-column-volatile-default".into(),
                action: "warn".into(),
                allowed_by_comment: Some("backfilled later".into()),
            }],
            action: "guard".into(),
            attempts: 3,
            preflight_wait_ms: 1200,
            lock_wait_ms: 200,
            blockers: vec!["pid 42 (app) idle in transaction 3s: select * from users".into()],
            terminated: vec!["42".into()],
        };
        log.record(&who(), &alter, 6, 10, Some(*b"55P03"), Some(&notes));
        let events = log.events();
        assert_eq!(events[0].notes, DdlNotes::forwarded());
        assert_eq!(events[1].notes, notes);
        assert_eq!(events[1].outcome(), "55P03");
        assert_eq!(events[1].relation(), Some("users"));
        assert_ne!(events[0].id, events[1].id);
        assert!(log.is_own(&events[0]));
        assert_eq!(log.bytes(), events.iter().map(event_bytes).sum::<usize>());
    }

    #[test]
    fn events_are_written_once_and_rows_of_other_proxies_merge() {
        let log = DdlLog::new(3);
        let analyzer = Analyzer::new(16);
        let alter = analyzer.analyze("ALTER TABLE users ADD COLUMN x int");
        log.record(&who(), &alter, 10, 10, None, None);
        log.record(&who(), &alter, 20, 10, None, None);
        let written = log.take_unwritten();
        assert_eq!(written.len(), 2);
        assert!(log.take_unwritten().is_empty(), "written once");
        // A failed write gives them back.
        log.unwritten_again(written.clone());
        assert_eq!(log.take_unwritten().len(), 2);

        // Another proxy's rows (and this proxy's own, read back: ignored).
        let other = DdlLog::new(3);
        other.record(&who(), &alter, 15, 10, None, None);
        other.record(&who(), &alter, 1, 10, None, None);
        let mut theirs = other.take_unwritten();
        theirs.extend(written.clone());
        log.merge_stored(theirs.clone());
        let ats: Vec<u64> = log.events().iter().map(|e| e.at_ms).collect();
        assert_eq!(ats, vec![10, 15, 20], "the oldest does not fit a full log");
        assert!(
            log.take_unwritten().is_empty(),
            "merged rows are not written back"
        );
        // A later change of the other proxy's row replaces it.
        let mut changed = theirs.iter().find(|e| e.at_ms == 15).unwrap().clone();
        changed.impact.state = ImpactState::Complete;
        log.merge_stored(vec![changed.clone()]);
        assert!(log.events().contains(&changed));
        assert_eq!(log.len(), 3);

        // An unwritten event that falls out of the log is still written.
        log.record(&who(), &alter, 30, 10, None, None);
        log.record(&who(), &alter, 40, 10, None, None);
        let ats: Vec<u64> = log.take_unwritten().iter().map(|e| e.at_ms).collect();
        assert_eq!(ats, vec![30, 40]);
        log.record(&who(), &alter, 50, 10, None, None);
        log.record(&who(), &alter, 60, 10, None, None);
        log.record(&who(), &alter, 70, 10, None, None);
        log.record(&who(), &alter, 80, 10, None, None);
        let mut ats: Vec<u64> = log.take_unwritten().iter().map(|e| e.at_ms).collect();
        ats.sort();
        assert_eq!(ats, vec![50, 60, 70, 80]);
    }

    #[test]
    fn impacts_are_measured_for_own_events_on_relations_until_complete() {
        let log = DdlLog::new(16);
        let analyzer = Analyzer::new(16);
        log.record(
            &who(),
            &analyzer.analyze("ALTER TABLE users ADD COLUMN x int"),
            10,
            10,
            None,
            None,
        );
        log.record(
            &who(),
            &analyzer.analyze("CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql"),
            11,
            10,
            None,
            None,
        );
        log.take_unwritten();
        let measured = std::sync::atomic::AtomicUsize::new(0);
        let partial = |_: &DdlEvent| {
            measured.fetch_add(1, Ordering::Relaxed);
            Impact {
                state: ImpactState::Partial,
                ..Impact::default()
            }
        };
        log.refresh_impacts(partial);
        assert_eq!(
            measured.load(Ordering::Relaxed),
            1,
            "the function has no table"
        );
        assert_eq!(log.take_unwritten().len(), 1, "changed: written again");
        log.refresh_impacts(partial);
        assert!(
            log.take_unwritten().is_empty(),
            "unchanged: not written again"
        );
        log.refresh_impacts(|_| Impact {
            state: ImpactState::Complete,
            ..Impact::default()
        });
        assert_eq!(log.take_unwritten().len(), 1);
        log.refresh_impacts(partial);
        assert_eq!(
            measured.load(Ordering::Relaxed),
            2,
            "complete: not measured again"
        );
    }
}

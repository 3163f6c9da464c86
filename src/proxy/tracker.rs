//! Per-session statement tracking: prepared statements and portals by name,
//! the queue of executions waiting for their answer, and recording each
//! finished execution into the usage aggregate.
//!
//! This is the interception point of DESIGN section 4: every statement, of
//! the simple or the extended protocol, passes through `on_client`.

use super::path_state::PathState;
use crate::analysis::search_path::{self, SearchPathChange};
use crate::analysis::{Analyzer, Template};
use crate::catalog::Catalogs;
use crate::net::upstream::Upstream;
use crate::usage::held::{self, Execution};
use crate::usage::{now_ms, ClientId, ClientIdentity, DdlLog, DdlNotes, Tick, UsageRegistry};
use crate::wire::messages::{self, cstr};
use std::collections::VecDeque;

/// Statement and portal names are hashed on every Bind and Execute: a fast
/// non-cryptographic hasher (names come from the session's own client).
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
use std::sync::Arc;

/// An execution whose answer has not come back yet.
enum Pending {
    /// A simple Query (or FunctionCall): done at ReadyForQuery.
    Simple {
        analysis: Option<Arc<Template>>,
        client: Sender,
        start: Tick,
        error: Option<[u8; 5]>,
        /// Sequence number among the messages answered by ReadyForQuery.
        seq: u64,
        /// What the gate and the guard did with it (DDL log).
        notes: Option<Box<DdlNotes>>,
    },
    /// An Execute: done at CommandComplete, EmptyQueryResponse,
    /// PortalSuspended or ErrorResponse.
    Execute {
        analysis: Option<Arc<Template>>,
        client: Sender,
        start: Tick,
        /// What the gate and the guard did with it (DDL log).
        notes: Option<Box<DdlNotes>>,
    },
    /// A Parse: done at ParseComplete (not an execution) or ErrorResponse
    /// (recorded: a statement that no longer parses after a migration is
    /// exactly what the error report must show).
    Parse {
        analysis: Option<Arc<Template>>,
        client: Sender,
        start: Tick,
    },
    /// A Sync: done at ReadyForQuery.
    Sync { seq: u64 },
}

/// Who sent a pending statement: the tracker's client at the time, kept
/// only once that changes (a `SET search_path` or `application_name`
/// between the statement and its end). Cloning the interned [`ClientId`]
/// per statement would write its reference count, a cache line shared by
/// every session of that client on every worker thread.
enum Sender {
    /// The tracker's current client.
    Current,
    /// The client before a change.
    Was(ClientId),
}

/// Shared parts a tracker needs.
#[derive(Clone)]
pub struct TrackingContext {
    /// Analysis cache.
    pub analyzer: Arc<Analyzer>,
    /// Usage aggregate.
    pub usage: Arc<UsageRegistry>,
    /// Catalog snapshots per database.
    pub catalogs: Arc<Catalogs>,
    /// Every DDL statement that passed through, with its outcome.
    pub ddl: Arc<DdlLog>,
}

/// The statement tracker of one session.
pub struct Tracker {
    ctx: TrackingContext,
    identity: ClientIdentity,
    /// Interned (identity, effective search_path) that usage records under;
    /// each pending execution keeps the one current when it was sent.
    client: ClientId,
    /// The session's `search_path`.
    path: PathState,
    /// Ids already interned for this identity, by path (a `SET LOCAL` per
    /// transaction must not cost a global lookup each time).
    path_ids: Vec<(String, ClientId)>,
    database: String,
    upstream: Arc<Upstream>,
    statements: ByName<Arc<Template>>,
    portals: ByName<Arc<Template>>,
    /// Prepared statements and portals that change `search_path` when
    /// executed (drivers cache and re-execute them); usually empty.
    statement_paths: HashMap<Vec<u8>, SearchPathChange>,
    portal_paths: HashMap<Vec<u8>, SearchPathChange>,
    pending: VecDeque<Pending>,
    /// Next sequence number for a message answered by ReadyForQuery.
    seq: u64,
    /// The template of the statement text analysed last: the next text of
    /// its shape is recognized without lexing.
    last: Option<Arc<Template>>,
}

/// Prepared statements or portals by name. The unnamed one, which most
/// drivers bind every execution to, has a field of its own: a Bind and an
/// Execute of it neither hash nor compare a name (the map's key compare was
/// the largest user-space item of a prepared-protocol transaction).
struct ByName<V> {
    unnamed: Option<V>,
    named: HashMap<Vec<u8>, V>,
}

impl<V> Default for ByName<V> {
    fn default() -> Self {
        ByName {
            unnamed: None,
            named: HashMap::default(),
        }
    }
}

impl<V> ByName<V> {
    fn get(&self, name: &[u8]) -> Option<&V> {
        if name.is_empty() {
            self.unnamed.as_ref()
        } else {
            self.named.get(name)
        }
    }

    /// Sets `name`; a name already there keeps its key (no allocation).
    fn insert(&mut self, name: &[u8], value: V) {
        if name.is_empty() {
            self.unnamed = Some(value);
        } else if let Some(slot) = self.named.get_mut(name) {
            *slot = value;
        } else {
            self.named.insert(name.to_vec(), value);
        }
    }

    fn remove(&mut self, name: &[u8]) {
        if name.is_empty() {
            self.unnamed = None;
        } else {
            self.named.remove(name);
        }
    }
}

impl Tracker {
    /// A tracker recording under `identity`; starts loading the catalog of
    /// the identity's database if needed.
    pub fn new(
        ctx: TrackingContext,
        identity: ClientIdentity,
        startup_search_path: Option<Vec<String>>,
        upstream: Arc<Upstream>,
    ) -> Tracker {
        let database = identity.database.clone();
        ctx.catalogs.ensure(&database, &upstream);
        let path = startup_search_path
            .map(|p| search_path::canonical(&p))
            .unwrap_or_default();
        let client = ctx.usage.client_id(&identity, &path);
        Tracker {
            ctx,
            identity,
            client: client.clone(),
            path_ids: vec![(path.clone(), client)],
            path: PathState::new(path),
            database,
            upstream,
            statements: ByName::default(),
            portals: ByName::default(),
            statement_paths: HashMap::default(),
            portal_paths: HashMap::default(),
            pending: VecDeque::new(),
            seq: 0,
            last: None,
        }
    }

    /// What the gate and the guard did with the statement in flight: kept
    /// for the DDL event(s) recorded when it finishes, then cleared (and
    /// cleared at ReadyForQuery). A DDL without notes was forwarded.
    pub fn annotate_ddl(&mut self, notes: DdlNotes) {
        if let Some(slot) = self.last_execution_notes() {
            *slot = Some(Box::new(notes));
        }
    }

    /// The notes of the statement in flight (the last Query or Execute
    /// sent), to complete with what guarded execution did; a forwarded
    /// statement's when none were given.
    pub fn ddl_notes_mut(&mut self) -> Option<&mut DdlNotes> {
        let slot = self.last_execution_notes()?;
        Some(slot.get_or_insert_with(|| Box::new(DdlNotes::forwarded())))
    }

    /// The notes slot of the last Query or Execute queued.
    fn last_execution_notes(&mut self) -> Option<&mut Option<Box<DdlNotes>>> {
        self.pending.iter_mut().rev().find_map(|p| match p {
            Pending::Simple { notes, .. } | Pending::Execute { notes, .. } => Some(notes),
            Pending::Parse { .. } | Pending::Sync { .. } => None,
        })
    }

    /// Logs a DDL statement the session ran after the client's COMMIT (a
    /// sequence deferred by `policy.in_transaction = "after-commit"`): it
    /// passed through no client message of its own.
    pub fn record_ddl(
        &self,
        sql: &str,
        duration_us: u64,
        error: Option<[u8; 5]>,
        notes: &DdlNotes,
    ) {
        let analysis = self.ctx.analyzer.analyze(sql);
        self.ctx.ddl.record(
            &self.identity,
            &analysis,
            now_ms(),
            duration_us,
            error,
            Some(notes),
        );
    }

    /// The session's current `search_path` (canonical; empty: the default).
    pub fn search_path(&self) -> &str {
        self.path.current()
    }

    /// True for client message types whose body the tracker reads.
    pub fn wants_client_body(tag: u8) -> bool {
        matches!(tag, b'Q' | b'P' | b'B' | b'E' | b'C')
    }

    /// True for server message types whose body the tracker reads.
    pub fn wants_server_body(tag: u8) -> bool {
        matches!(tag, b'E' | b'Z' | b'S')
    }

    /// Drops the answered Parse at the front of the queue.
    fn parse_complete(&mut self) {
        if let Some(Pending::Parse { .. }) = self.pending.front() {
            self.pending.pop_front();
        }
    }

    /// The last `n` Syncs sent will get no ReadyForQuery (a server in COPY
    /// FROM STDIN mode drops them): forget them, newest first.
    pub fn forget_syncs(&mut self, n: u32) {
        for _ in 0..n {
            match self
                .pending
                .iter()
                .rposition(|p| matches!(p, Pending::Sync { .. }))
            {
                Some(i) => {
                    self.pending.remove(i);
                }
                None => break,
            }
        }
    }

    /// A client message (body given for the types `wants_client_body` names).
    pub fn on_client(&mut self, tag: u8, body: &[u8], now: Tick) {
        match tag {
            b'Q' => {
                let sql = messages::query_text(body);
                let (analysis, changes) = self.analyze(sql);
                let seq = self.next_seq();
                self.pending.push_back(Pending::Simple {
                    analysis,
                    client: Sender::Current,
                    start: now,
                    error: None,
                    seq,
                    notes: None,
                });
                for change in &changes {
                    self.change_search_path(change, seq);
                }
            }
            b'F' => {
                let seq = self.next_seq();
                self.pending.push_back(Pending::Simple {
                    analysis: None,
                    client: Sender::Current,
                    start: now,
                    error: None,
                    seq,
                    notes: None,
                })
            }
            b'P' => {
                let (name, rest) = cstr(body);
                let (sql, _) = cstr(rest);
                let (analysis, mut changes) = self.analyze(sql);
                // An extended-protocol Parse holds one statement.
                let change = changes.pop();
                match &analysis {
                    Some(a) => {
                        self.statements.insert(name, a.clone());
                    }
                    None => {
                        self.statements.remove(name);
                    }
                }
                // The change happens when the statement is executed.
                match change {
                    Some(c) => {
                        self.statement_paths.insert(name.to_vec(), c);
                    }
                    None if !self.statement_paths.is_empty() => {
                        self.statement_paths.remove(name);
                    }
                    None => {}
                }
                self.pending.push_back(Pending::Parse {
                    analysis,
                    client: Sender::Current,
                    start: now,
                });
            }
            b'B' => {
                let (portal, rest) = cstr(body);
                let (statement, _) = cstr(rest);
                match self.statements.get(statement) {
                    Some(a) => {
                        let a = a.clone();
                        self.portals.insert(portal, a);
                    }
                    None => {
                        self.portals.remove(portal);
                    }
                }
                if !self.statement_paths.is_empty() || !self.portal_paths.is_empty() {
                    match self.statement_paths.get(statement) {
                        Some(c) => {
                            let c = c.clone();
                            self.portal_paths.insert(portal.to_vec(), c);
                        }
                        None => {
                            self.portal_paths.remove(portal);
                        }
                    }
                }
            }
            b'E' => {
                let (portal, _) = cstr(body);
                let analysis = self.portals.get(portal).cloned();
                self.pending.push_back(Pending::Execute {
                    analysis,
                    client: Sender::Current,
                    start: now,
                    notes: None,
                });
                if !self.portal_paths.is_empty() {
                    if let Some(change) = self.portal_paths.get(portal).cloned() {
                        // Its transaction ends at the ReadyForQuery of the
                        // Sync that follows: the next sequence number.
                        let seq = self.seq;
                        self.change_search_path(&change, seq);
                    }
                }
            }
            b'C' => {
                let (kind, rest) = body.split_first().unwrap_or((&0, &[]));
                let (name, _) = cstr(rest);
                match kind {
                    b'S' => {
                        self.statements.remove(name);
                        self.statement_paths.remove(name);
                    }
                    b'P' => {
                        self.portals.remove(name);
                        self.portal_paths.remove(name);
                    }
                    _ => {}
                }
            }
            b'S' => {
                let seq = self.next_seq();
                self.pending.push_back(Pending::Sync { seq })
            }
            _ => {}
        }
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq - 1
    }

    /// Analyses a statement text; also returns the `search_path` changes its
    /// statements make, in order (applied to the statements sent after it).
    fn analyze(&mut self, sql: &[u8]) -> (Option<Arc<Template>>, Vec<SearchPathChange>) {
        let Some(analysis) = self.ctx.analyzer.template_after(sql, &mut self.last) else {
            return (None, Vec::new());
        };
        let changes = if analysis.analysis().changes_search_path {
            std::str::from_utf8(sql).map_or_else(|_| Vec::new(), search_path::parse_changes)
        } else {
            Vec::new()
        };
        (Some(analysis), changes)
    }

    fn change_search_path(&mut self, change: &SearchPathChange, seq: u64) {
        if self.path.apply(change, seq) {
            self.refresh_client();
        }
    }

    /// Interns (identity, current path), once per path per identity.
    fn refresh_client(&mut self) {
        // Statements still running were sent by the client until now.
        for p in self.pending.iter_mut() {
            if let Pending::Simple { client, .. }
            | Pending::Execute { client, .. }
            | Pending::Parse { client, .. } = p
            {
                if let Sender::Current = client {
                    *client = Sender::Was(self.client.clone());
                }
            }
        }
        let path = self.path.current();
        if let Some((_, id)) = self.path_ids.iter().find(|(p, _)| p == path) {
            self.client = id.clone();
            return;
        }
        self.client = self.ctx.usage.client_id(&self.identity, path);
        if self.path_ids.len() < 16 {
            self.path_ids.push((path.to_string(), self.client.clone()));
        }
    }

    /// A server message (body given for the types `wants_server_body` names).
    pub fn on_server(&mut self, tag: u8, body: &[u8], now: Tick) {
        match tag {
            b'1' => self.parse_complete(),
            b'S' => {
                // `SET application_name` is reported by the server: usage
                // from here on belongs to the new name.
                let (name, rest) = cstr(body);
                if name == b"application_name" {
                    let (value, _) = cstr(rest);
                    let value = String::from_utf8_lossy(value);
                    if value != self.identity.application_name {
                        self.identity.application_name = value.into_owned();
                        self.path_ids.clear();
                        self.refresh_client();
                    }
                }
            }
            b'C' | b'I' | b's' => {
                if let Some(Pending::Execute { .. }) = self.pending.front() {
                    if let Some(Pending::Execute {
                        analysis,
                        client,
                        start,
                        notes,
                    }) = self.pending.pop_front()
                    {
                        self.finish(analysis, client, start, now, None, notes);
                    }
                }
            }
            b'E' => {
                let code = sqlstate(body);
                match self.pending.front_mut() {
                    Some(Pending::Simple { error, .. }) => *error = code,
                    Some(Pending::Execute { .. }) | Some(Pending::Parse { .. }) => {
                        let failed = code.or(Some(*b"XX000"));
                        match self.pending.pop_front() {
                            Some(Pending::Execute {
                                analysis,
                                client,
                                start,
                                notes,
                            }) => self.finish(analysis, client, start, now, failed, notes),
                            Some(Pending::Parse {
                                analysis,
                                client,
                                start,
                            }) => self.finish(analysis, client, start, now, failed, None),
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            b'Z' => {
                // Parses and Executes still queued before the Sync were
                // skipped by the server after an error.
                while let Some(Pending::Execute { .. } | Pending::Parse { .. }) =
                    self.pending.front()
                {
                    self.pending.pop_front();
                }
                let seq = match self.pending.pop_front() {
                    Some(Pending::Simple {
                        analysis,
                        client,
                        start,
                        error,
                        seq,
                        notes,
                    }) => {
                        self.finish(analysis, client, start, now, error, notes);
                        Some(seq)
                    }
                    Some(Pending::Sync { seq }) => Some(seq),
                    Some(Pending::Execute { .. }) | Some(Pending::Parse { .. }) | None => None,
                };
                // Idle again: a `SET LOCAL search_path` made by this message
                // or an earlier one has ended with its transaction.
                if let (Some(seq), Some(b'I')) = (seq, body.first()) {
                    if self.path.idle_after(seq) {
                        self.refresh_client();
                    }
                }
            }
            _ => {}
        }
    }

    fn finish(
        &mut self,
        analysis: Option<Arc<Template>>,
        client: Sender,
        start: Tick,
        now: Tick,
        error: Option<[u8; 5]>,
        notes: Option<Box<DdlNotes>>,
    ) {
        if let Some(t) = analysis {
            let a = t.analysis();
            let us = now.micros_since(start);
            let at_ms = now.wall_ms();
            if !a.ddl.is_empty() {
                self.ctx
                    .ddl
                    .record(&self.identity, a, at_ms, us, error, notes.as_deref());
            }
            if error.is_none() && a.changes_catalog() {
                // The schema changed (not for VACUUM, GRANT, CREATE INDEX,
                // CREATE FUNCTION, ...): resolve new names against a new
                // snapshot.
                self.ctx.catalogs.invalidate(&self.database);
                self.ctx.catalogs.ensure(&self.database, &self.upstream);
            }
            let run = Execution {
                latency_us: us,
                error,
                at_ms,
            };
            let client = match &client {
                Sender::Current => &self.client,
                Sender::Was(c) => c,
            };
            held::record(&self.ctx.usage, client, a, run);
        }
    }
}

/// The SQLSTATE field of an ErrorResponse body.
fn sqlstate(body: &[u8]) -> Option<[u8; 5]> {
    let mut rest = body;
    while let Some((&t, tail)) = rest.split_first() {
        if t == 0 {
            break;
        }
        let (value, next) = cstr(tail);
        if t == b'C' {
            return value.try_into().ok();
        }
        rest = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{UpstreamConfig, UpstreamTls};
    use crate::usage::DdlNotes;

    fn tracker(ddl: Arc<DdlLog>) -> Tracker {
        let ctx = TrackingContext {
            analyzer: Arc::new(Analyzer::new(16)),
            usage: Arc::new(UsageRegistry::new(100)),
            catalogs: Arc::new(Catalogs::new(None, std::time::Duration::from_secs(60))),
            ddl,
        };
        let upstream = Upstream::new(UpstreamConfig {
            tls: UpstreamTls::Disable,
            ..UpstreamConfig::default()
        })
        .unwrap();
        let who = ClientIdentity {
            application_name: "migrate".into(),
            user: "u".into(),
            database: "d".into(),
            client_addr: "127.0.0.1".into(),
        };
        Tracker::new(ctx, who, None, Arc::new(upstream))
    }

    fn query(t: &mut Tracker, sql: &str) {
        let now = Tick::now();
        t.on_client(b'Q', format!("{sql}\0").as_bytes(), now);
        t.on_server(b'C', b"OK\0", now);
        t.on_server(b'Z', b"I", now);
    }

    #[test]
    fn notes_go_to_the_ddl_in_flight_and_are_cleared_at_ready_for_query() {
        let ddl = Arc::new(DdlLog::new(16));
        let mut t = tracker(ddl.clone());
        let notes = DdlNotes {
            action: "guard".into(),
            attempts: 3,
            lock_wait_ms: 200,
            ..DdlNotes::default()
        };
        t.on_client(b'Q', b"ALTER TABLE a ADD COLUMN x int\0", Tick::now());
        t.annotate_ddl(notes.clone());
        t.on_server(b'Z', b"I", Tick::now());
        // Not annotated: forwarded.
        query(&mut t, "ALTER TABLE b ADD COLUMN x int");
        // Notes of a statement that logged nothing end at its ReadyForQuery.
        t.on_client(b'Q', b"SELECT 1\0", Tick::now());
        t.annotate_ddl(notes.clone());
        t.on_server(b'Z', b"I", Tick::now());
        query(&mut t, "ALTER TABLE c ADD COLUMN x int");
        let got: Vec<(Option<String>, DdlNotes)> = ddl
            .events()
            .into_iter()
            .map(|e| (e.target, e.notes))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some("a".into()), notes),
                (Some("b".into()), DdlNotes::forwarded()),
                (Some("c".into()), DdlNotes::forwarded()),
            ]
        );
    }

    /// A statement belongs to the client that sent it, also when the
    /// client changes before it ends (a `SET` in the same Query, or a
    /// ParameterStatus while an Execute runs).
    #[test]
    fn a_statement_running_while_the_client_changes_stays_with_its_sender() {
        let mut t = tracker(Arc::new(DdlLog::new(16)));
        let now = Tick::now();
        t.on_client(b'Q', b"SELECT a FROM t1; SET application_name = 'b'\0", now);
        t.on_server(b'S', b"application_name\0b\0", now);
        t.on_server(b'Z', b"I", now);
        query(&mut t, "SELECT b FROM t2");
        // Extended protocol: the Execute is pending when the name changes.
        t.on_client(b'P', b"\0SELECT c FROM t3\0\0\0", now);
        t.on_client(b'B', b"\0\0\0\0\0\0\0\0", now);
        t.on_client(b'E', b"\0\0\0\0\0", now);
        t.on_client(b'S', b"", now);
        t.on_server(b'1', b"", now);
        t.on_server(b'S', b"application_name\0c\0", now);
        t.on_server(b'C', b"SELECT 1\0", now);
        t.on_server(b'Z', b"I", now);
        query(&mut t, "SELECT d FROM t4");
        let mut got: Vec<(String, String)> = t
            .ctx
            .usage
            .statements()
            .into_iter()
            .map(|r| (r.fingerprint, r.client.application_name))
            .collect();
        got.sort();
        let want = [
            ("select a from t1; set application_name = $1", "migrate"),
            ("select b from t2", "b"),
            ("select c from t3", "b"),
            ("select d from t4", "c"),
        ];
        assert_eq!(got.len(), want.len(), "{got:?}");
        for ((fp, app), (want_fp, want_app)) in got.iter().zip(want) {
            assert!(fp.to_lowercase().starts_with(want_fp), "{fp} vs {want_fp}");
            assert_eq!(app, want_app, "{fp}");
        }
    }

    #[test]
    fn the_unnamed_and_named_entries_are_kept_apart() {
        let mut by = super::ByName::default();
        by.insert(b"", 1);
        by.insert(b"s1", 2);
        assert_eq!((by.get(b""), by.get(b"s1")), (Some(&1), Some(&2)));
        by.insert(b"", 3);
        by.insert(b"s1", 4);
        assert_eq!((by.get(b""), by.get(b"s1")), (Some(&3), Some(&4)));
        by.remove(b"");
        assert_eq!((by.get(b""), by.get(b"s1")), (None, Some(&4)));
        by.remove(b"s1");
        assert_eq!(by.get(b"s1"), None);
        assert!(by.named.is_empty());
    }
}

//! Per-session statement tracking: prepared statements and portals by name,
//! the queue of executions waiting for their answer, and recording each
//! finished execution into the usage aggregate.
//!
//! This is the interception point of DESIGN section 4: every statement, of
//! the simple or the extended protocol, passes through `on_client`.

use super::upstream::Upstream;
use crate::analysis::search_path::{self, SearchPathChange};
use crate::analysis::{Analysis, Analyzer, StatementKind};
use crate::catalog::Catalogs;
use crate::usage::{now_ms, ClientIdentity, DdlLog, UsageRegistry};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

/// An execution whose answer has not come back yet.
enum Pending {
    /// A simple Query (or FunctionCall): done at ReadyForQuery.
    Simple {
        analysis: Option<Arc<Analysis>>,
        client: u32,
        start: Instant,
        error: Option<[u8; 5]>,
    },
    /// An Execute: done at CommandComplete, EmptyQueryResponse,
    /// PortalSuspended or ErrorResponse.
    Execute {
        analysis: Option<Arc<Analysis>>,
        client: u32,
        start: Instant,
    },
    /// A Parse: done at ParseComplete (not an execution) or ErrorResponse
    /// (recorded: a statement that no longer parses after a migration is
    /// exactly what the error report must show).
    Parse {
        analysis: Option<Arc<Analysis>>,
        client: u32,
        start: Instant,
    },
    /// A Sync: done at ReadyForQuery.
    Sync,
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
    client: u32,
    /// `search_path` set for the session (canonical text, "" = default).
    session_path: String,
    /// `search_path` in effect (differs inside a `SET LOCAL` transaction).
    path: String,
    database: String,
    upstream: Arc<Upstream>,
    statements: HashMap<Vec<u8>, Arc<Analysis>>,
    portals: HashMap<Vec<u8>, Arc<Analysis>>,
    pending: VecDeque<Pending>,
}

/// Splits off a NUL-terminated string.
fn cstr(body: &[u8]) -> (&[u8], &[u8]) {
    match body.iter().position(|&b| b == 0) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &[]),
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
            client,
            session_path: path.clone(),
            path,
            database,
            upstream,
            statements: HashMap::new(),
            portals: HashMap::new(),
            pending: VecDeque::new(),
        }
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

    /// A client message (body given for the types `wants_client_body` names).
    pub fn on_client(&mut self, tag: u8, body: &[u8], now: Instant) {
        match tag {
            b'Q' => {
                let (sql, _) = cstr(body);
                let analysis = self.analyze(sql);
                self.pending.push_back(Pending::Simple {
                    analysis,
                    client: self.client,
                    start: now,
                    error: None,
                });
            }
            b'F' => self.pending.push_back(Pending::Simple {
                analysis: None,
                client: self.client,
                start: now,
                error: None,
            }),
            b'P' => {
                let (name, rest) = cstr(body);
                let (sql, _) = cstr(rest);
                let analysis = self.analyze(sql);
                match &analysis {
                    Some(a) => {
                        self.statements.insert(name.to_vec(), a.clone());
                    }
                    None => {
                        self.statements.remove(name);
                    }
                }
                self.pending.push_back(Pending::Parse {
                    analysis,
                    client: self.client,
                    start: now,
                });
            }
            b'B' => {
                let (portal, rest) = cstr(body);
                let (statement, _) = cstr(rest);
                match self.statements.get(statement) {
                    Some(a) => {
                        let a = a.clone();
                        self.portals.insert(portal.to_vec(), a);
                    }
                    None => {
                        self.portals.remove(portal);
                    }
                }
            }
            b'E' => {
                let (portal, _) = cstr(body);
                let analysis = self.portals.get(portal).cloned();
                self.pending.push_back(Pending::Execute {
                    analysis,
                    client: self.client,
                    start: now,
                });
            }
            b'C' => {
                let (kind, rest) = body.split_first().unwrap_or((&0, &[]));
                let (name, _) = cstr(rest);
                match kind {
                    b'S' => {
                        self.statements.remove(name);
                    }
                    b'P' => {
                        self.portals.remove(name);
                    }
                    _ => {}
                }
            }
            b'S' => self.pending.push_back(Pending::Sync),
            _ => {}
        }
    }

    /// Analyses a statement text and follows the `search_path` changes it
    /// makes (they apply to the statements sent after it).
    fn analyze(&mut self, sql: &[u8]) -> Option<Arc<Analysis>> {
        let sql = std::str::from_utf8(sql).ok()?;
        let analysis = self.ctx.analyzer.analyze(sql);
        if search_path::may_change(&analysis.fingerprint.text) {
            if let Some(change) = search_path::parse_change(sql) {
                self.change_search_path(change);
            }
        }
        Some(analysis)
    }

    fn change_search_path(&mut self, change: SearchPathChange) {
        match change {
            SearchPathChange::Set(list) => {
                self.session_path = search_path::canonical(&list);
                self.path = self.session_path.clone();
            }
            SearchPathChange::Local(list) => self.path = search_path::canonical(&list),
            SearchPathChange::Reset => {
                self.session_path.clear();
                self.path.clear();
            }
        }
        self.client = self.ctx.usage.client_id(&self.identity, &self.path);
    }

    /// A server message (body given for the types `wants_server_body` names).
    pub fn on_server(&mut self, tag: u8, body: &[u8], now: Instant) {
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
                        self.client = self.ctx.usage.client_id(&self.identity, &self.path);
                    }
                }
            }
            b'C' | b'I' | b's' => {
                if let Some(Pending::Execute { .. }) = self.pending.front() {
                    if let Some(Pending::Execute {
                        analysis,
                        client,
                        start,
                    }) = self.pending.pop_front()
                    {
                        self.finish(analysis, client, start, now, None);
                    }
                }
            }
            b'E' => {
                let code = sqlstate(body);
                match self.pending.front_mut() {
                    Some(Pending::Simple { error, .. }) => *error = code,
                    Some(Pending::Execute { .. }) | Some(Pending::Parse { .. }) => {
                        if let Some(
                            Pending::Execute {
                                analysis,
                                client,
                                start,
                            }
                            | Pending::Parse {
                                analysis,
                                client,
                                start,
                            },
                        ) = self.pending.pop_front()
                        {
                            self.finish(analysis, client, start, now, code.or(Some(*b"XX000")));
                        }
                    }
                    _ => {}
                }
            }
            b'Z' => {
                // Idle again: a `SET LOCAL search_path` has ended with its
                // transaction.
                if body.first() == Some(&b'I') && self.path != self.session_path {
                    self.path = self.session_path.clone();
                    self.client = self.ctx.usage.client_id(&self.identity, &self.path);
                }
                // Parses and Executes still queued before the Sync were
                // skipped by the server after an error.
                while let Some(Pending::Execute { .. } | Pending::Parse { .. }) =
                    self.pending.front()
                {
                    self.pending.pop_front();
                }
                match self.pending.pop_front() {
                    Some(Pending::Simple {
                        analysis,
                        client,
                        start,
                        error,
                    }) => self.finish(analysis, client, start, now, error),
                    Some(Pending::Sync)
                    | Some(Pending::Execute { .. })
                    | Some(Pending::Parse { .. })
                    | None => {}
                }
            }
            _ => {}
        }
    }

    fn finish(
        &self,
        analysis: Option<Arc<Analysis>>,
        client: u32,
        start: Instant,
        now: Instant,
        error: Option<[u8; 5]>,
    ) {
        if let Some(a) = analysis {
            let us = now.saturating_duration_since(start).as_micros() as u64;
            self.ctx.usage.record(client, &a, us, error);
            if a.kind == StatementKind::Ddl {
                self.ctx.ddl.record(&self.identity, &a, now_ms(), us, error);
            }
            if a.kind == StatementKind::Ddl && error.is_none() {
                // The schema changed: resolve new names against a new snapshot.
                self.ctx.catalogs.invalidate(&self.database);
                self.ctx.catalogs.ensure(&self.database, &self.upstream);
            }
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

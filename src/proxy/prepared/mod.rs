//! Prepared statements that outlive `ADD COLUMN` (issue 20, DESIGN
//! section 4): the session remembers each named statement's text,
//! parameter types and result shape; when a Bind at the start of an
//! implicit transaction fails with `0A000 cached plan must not change
//! result type`, the error is held back, the statement is prepared again
//! with its stars pinned to the remembered columns, and the client's batch
//! is replayed, so old code keeps its old result shape. Anything not
//! provably equivalent passes through unchanged.
//!
//! The relay calls `on_client` / `on_server` for the messages the
//! `wants_*` methods name; with no named statement in play that is only
//! Parse, Bind and Close, which it reads anyway.

mod recover;
mod registry;
mod store;

pub use recover::{run as run_recovery, Plan, Refusal};
pub use registry::Registry;

use crate::analysis::split;
use crate::analysis::star::{self, StarColumn};
use crate::wire::messages;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use store::Store;

/// The message Postgres refuses a re-planned statement with (also matched
/// by its routine name, which is not translated).
const CACHED_PLAN: &[u8] = b"cached plan must not change result type";
const CACHED_PLAN_ROUTINE: &[u8] = b"RevalidateCachedQuery";

/// A server reply the session waits for, in the order it was asked.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    /// The client's Describe: answered by RowDescription or NoData (after
    /// a ParameterDescription for a statement).
    Describe,
    /// The proxy's own Describe of a statement the client just parsed:
    /// its answers are remembered and taken out of the client's stream.
    Own(Vec<u8>),
    /// A Sync, Query or FunctionCall: answered by ReadyForQuery.
    Ready,
}

/// The client's current batch while a remembered statement is bound at
/// its start (kept for a replay).
#[derive(Debug, Default)]
struct Capture {
    active: bool,
    statement: Vec<u8>,
    batch: Vec<u8>,
    /// The batch's Sync was forwarded.
    synced: bool,
    /// The server's replies held back (from the 0A000 error on).
    swallowed: Option<Vec<u8>>,
    /// Its ReadyForQuery came: the recovery can run.
    due: bool,
}

/// How much of a server message the hooks need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Nothing: relay it.
    None,
    /// Its type only.
    Tag,
    /// The whole frame.
    Frame,
}

/// A recovery ready to run: the plan and the replies it may give back.
pub struct Recovery {
    name: Vec<u8>,
    sql: String,
    original: String,
    param_types: Vec<u8>,
    shape: Vec<u8>,
    params: Option<Vec<u8>>,
    /// The client's batch, to replay once the statement is replaced.
    pub batch: Vec<u8>,
    /// The server's original replies (error to ReadyForQuery), for the
    /// client when the recovery is refused.
    pub swallowed: Vec<u8>,
    fingerprint: u64,
}

impl Recovery {
    /// The statement's fingerprint id (logs name statements by it).
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// What `run_recovery` needs.
    pub fn plan(&self) -> Plan<'_> {
        Plan {
            name: &self.name,
            sql: &self.sql,
            original: &self.original,
            param_types: &self.param_types,
            shape: &self.shape,
            params: self.params.as_deref(),
        }
    }
}

/// One session's prepared-statement memory and recovery state.
pub struct Prepared {
    store: Store,
    expects: VecDeque<Expect>,
    /// A statement just parsed, to describe right behind its Parse.
    describe: Option<Vec<u8>>,
    capture: Capture,
    /// Frames taken from the server stream to give back to the client.
    returned: Vec<u8>,
    old_shapes: u64,
    session: u64,
    registry: Arc<Registry>,
}

impl Prepared {
    /// The memory of session `session` (its id in `Shared::live`).
    pub fn new(session: u64, registry: Arc<Registry>) -> Prepared {
        Prepared {
            store: Store::default(),
            expects: VecDeque::new(),
            describe: None,
            capture: Capture::default(),
            returned: Vec::new(),
            old_shapes: 0,
            session,
            registry,
        }
    }

    /// Server replies are matched to the client's messages only while an
    /// answer to the proxy's own Describe is owed (it starts at a point
    /// where nothing else is owed, so the order is known): a session that
    /// only executes its statements pays nothing for it.
    fn tracking(&self) -> bool {
        !self.expects.is_empty()
    }

    /// True for client message types whose body the hooks read.
    pub fn wants_client_body(&self, tag: u8) -> bool {
        match tag {
            b'P' | b'B' | b'C' => true,
            b'Q' => !self.store.is_empty(),
            b'D' => self.tracking() || self.capture.active,
            b'E' => self.capture.active,
            _ => false,
        }
    }

    /// True while client messages must wait: the batch's error is held
    /// back and the proxy is about to use the connection.
    pub fn holds_client(&self) -> bool {
        self.capture.active && self.capture.synced && self.capture.swallowed.is_some()
    }

    /// True when a recovery can run (the held-back replies reached
    /// ReadyForQuery).
    pub fn recovery_due(&self) -> bool {
        self.capture.active && self.capture.due
    }

    /// A client message, forwarded right after this call: `frame` is whole
    /// for the types `wants_client_body` names, else its header. `idle`:
    /// the server owes no answer and nothing unsynced was sent before it;
    /// `tx_status` is the last ReadyForQuery's.
    pub fn on_client(&mut self, tag: u8, frame: &[u8], idle: bool, tx_status: u8) {
        if !self.capture.active
            && self.expects.is_empty()
            && !matches!(tag, b'P' | b'B' | b'C' | b'Q')
        {
            return;
        }
        let body = frame.get(5..).unwrap_or_default();
        self.describe = None;
        if self.capture.active {
            if !self.capture.synced && matches!(tag, b'D' | b'E' | b'S') {
                self.capture.batch.extend_from_slice(frame);
                self.capture.synced = tag == b'S';
            } else {
                self.abandon();
            }
        }
        match tag {
            b'P' => {
                if let Some(p) = messages::parse_body(body).filter(|p| !p.name.is_empty()) {
                    let old = self.store.forget(p.name);
                    self.forgot(old.is_some_and(|s| s.old) as u64);
                    // Only a query's stars can be pinned: other statements
                    // are not remembered (nor described: the gate may hold
                    // the Execute of a DDL statement and answer its batch
                    // itself).
                    let ordered = idle || self.tracking();
                    if ordered && pinnable(p.sql) && self.store.parsed(p.name, p.sql, p.param_types)
                    {
                        self.describe = Some(p.name.to_vec());
                    }
                }
            }
            b'B' => self.on_bind(frame, idle && tx_status == b'I'),
            b'D' if self.tracking() => self.expects.push_back(Expect::Describe),
            b'S' | b'F' if self.tracking() => self.expects.push_back(Expect::Ready),
            b'Q' => {
                if self.tracking() {
                    self.expects.push_back(Expect::Ready);
                }
                if !self.store.is_empty() {
                    self.on_query(messages::query_text(body));
                }
            }
            b'C' => {
                if let Some((b'S', name)) = messages::close_target(body) {
                    let old = self.store.forget(name);
                    self.forgot(old.is_some_and(|s| s.old) as u64);
                }
            }
            _ => {}
        }
    }

    /// The proxy's own Describe of the statement whose Parse was just
    /// forwarded, to send right behind it: the server then says the
    /// statement's shape before anything can change it. Call only when the
    /// Parse went to the server as the client sent it.
    pub fn take_describe(&mut self) -> Option<Vec<u8>> {
        let name = self.describe.take()?;
        let frame = messages::target_message(b'D', b'S', &name);
        self.expects.push_back(Expect::Own(name));
        Some(frame)
    }

    /// A Bind: starts keeping the batch when it opens a quiet batch with a
    /// statement whose shape is known.
    fn on_bind(&mut self, frame: &[u8], quiet: bool) {
        let (_, statement) = messages::bind_names(frame.get(5..).unwrap_or_default());
        let known = self.store.get(statement).is_some_and(|s| s.shape.is_some());
        if known && quiet && !self.capture.active {
            let c = &mut self.capture;
            c.active = true;
            c.statement.clear();
            c.statement.extend_from_slice(statement);
            c.batch.clear();
            c.batch.extend_from_slice(frame);
            c.synced = false;
            c.swallowed = None;
            c.due = false;
        }
    }

    /// `DISCARD ALL` and `DEALLOCATE` free statements (a missed one only
    /// stays until its name is parsed again).
    fn on_query(&mut self, sql: &[u8]) {
        let Ok(sql) = std::str::from_utf8(sql) else {
            return;
        };
        let words: Vec<String> = sql
            .split(|c: char| c.is_whitespace() || c == ';')
            .filter(|w| !w.is_empty())
            .take(3)
            .map(str::to_ascii_lowercase)
            .collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        match words.as_slice() {
            ["discard", "all", ..]
            | ["deallocate", "all", ..]
            | ["deallocate", "prepare", "all"] => {
                let old = self.store.clear();
                self.forgot(old);
            }
            ["deallocate", "prepare", name, ..] | ["deallocate", name, ..] => {
                let name = name.trim_matches('"');
                let old = self.store.forget(name.as_bytes());
                self.forgot(old.is_some_and(|s| s.old) as u64);
            }
            _ => {}
        }
    }

    /// How much of a server message of type `tag` the hooks need.
    #[inline]
    pub fn server_interest(&self, tag: u8) -> Interest {
        // The common case: a session executing its statements, no batch
        // kept, nothing owed to the proxy.
        if !self.capture.active && self.expects.is_empty() {
            return Interest::None;
        }
        if self.own_reply(tag) {
            return Interest::Frame;
        }
        if self.capture.active {
            if self.capture.swallowed.is_some() || tag == b'E' {
                return Interest::Frame;
            }
            return Interest::Tag;
        }
        if !self.tracking() {
            return Interest::None;
        }
        match tag {
            b'T' | b'n' | b'Z' => Interest::Tag,
            _ => Interest::None,
        }
    }

    /// True for the answers to the proxy's own Describe.
    fn own_reply(&self, tag: u8) -> bool {
        matches!(tag, b't' | b'T' | b'n') && matches!(self.expects.front(), Some(Expect::Own(_)))
    }

    /// A server message (whole or its header, as `server_interest` said).
    /// Returns true when it is held back: the relay removes it from the
    /// client's stream.
    pub fn on_server(&mut self, tag: u8, frame: &[u8]) -> bool {
        if self.own_reply(tag) {
            let body = frame.get(5..);
            match tag {
                b't' => {
                    if let Some(Expect::Own(name)) = self.expects.front() {
                        let name = name.clone();
                        self.store.described(&name, None, body);
                    }
                }
                _ => {
                    if let Some(Expect::Own(name)) = self.expects.pop_front() {
                        if tag == b'T' {
                            self.store.described(&name, body, None);
                        }
                    }
                }
            }
            return true;
        }
        if self.capture.active {
            if let Some(swallowed) = self.capture.swallowed.as_mut() {
                swallowed.extend_from_slice(frame);
                if tag == b'Z' {
                    self.capture.due = true;
                }
                return true;
            }
            match tag {
                b'N' | b'A' | b'S' => {}
                b'E' if is_cached_plan_error(frame.get(5..).unwrap_or_default()) => {
                    self.capture.swallowed = Some(frame.to_vec());
                    return true;
                }
                // The batch's first reply is not that error: nothing to do.
                _ => self.capture.active = false,
            }
        }
        match tag {
            b'T' | b'n' if self.expects.front() == Some(&Expect::Describe) => {
                self.expects.pop_front();
            }
            b'Z' => {
                // Describes before it that got no answer were skipped
                // after an error.
                while let Some(e) = self.expects.pop_front() {
                    if e == Expect::Ready {
                        break;
                    }
                }
            }
            _ => {}
        }
        false
    }

    /// The last `n` Syncs sent get no ReadyForQuery (a server in COPY FROM
    /// STDIN mode drops them): forget them, newest first.
    pub fn forget_syncs(&mut self, n: u32) {
        for _ in 0..n {
            match self.expects.iter().rposition(|e| *e == Expect::Ready) {
                Some(i) => {
                    self.expects.remove(i);
                }
                None => break,
            }
        }
    }

    /// Gives up the current batch; replies held back go to the client as
    /// the server sent them (see `take_returned`).
    pub fn abandon(&mut self) {
        if let Some(swallowed) = self.capture.swallowed.take() {
            self.count_passed();
            self.returned.extend_from_slice(&swallowed);
        }
        self.capture.active = false;
        self.capture.due = false;
    }

    /// Frames to put back into the client's stream, in place, now.
    pub fn take_returned(&mut self) -> Option<Vec<u8>> {
        (!self.returned.is_empty()).then(|| std::mem::take(&mut self.returned))
    }

    /// The due recovery, with the statement's stars pinned to its
    /// remembered shape; `Err(replies)`: nothing can be proven, the
    /// original replies go to the client.
    pub fn take_recovery(&mut self) -> Result<Recovery, Vec<u8>> {
        let c = std::mem::take(&mut self.capture);
        let swallowed = c.swallowed.unwrap_or_default();
        let Some(s) = self.store.get(&c.statement) else {
            self.count_passed();
            return Err(swallowed);
        };
        let fingerprint = crate::analysis::fingerprint(&s.sql).id;
        let Some(shape) = s.shape.clone() else {
            self.count_passed();
            return Err(swallowed);
        };
        let columns: Option<Vec<StarColumn<'_>>> = messages::row_fields(&shape)
            .map(|f| {
                Some(StarColumn {
                    name: std::str::from_utf8(f.name).ok()?,
                    table_oid: f.table_oid,
                    column: f.column,
                })
            })
            .collect();
        let pinned = match columns.map(|c| star::pin_stars(&s.sql, &c)) {
            Some(Ok(sql)) => sql,
            Some(Err(e)) => {
                self.refused(fingerprint, &e.to_string());
                return Err(swallowed);
            }
            None => {
                self.refused(fingerprint, "a column name is not UTF-8");
                return Err(swallowed);
            }
        };
        Ok(Recovery {
            name: c.statement,
            sql: pinned,
            original: s.sql.clone(),
            param_types: s.param_types.clone(),
            params: s.params.clone(),
            shape,
            batch: c.batch,
            swallowed,
            fingerprint,
        })
    }

    /// The recovery ran: the statement now runs the pinned text.
    pub fn recovered(&mut self, r: Recovery, micros: u128) {
        self.registry.recovered.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            fingerprint = format_args!("{:016x}", r.fingerprint),
            recovery_us = micros as u64,
            "prepared statement re-prepared with its old result shape after \"{}\" (a schema change added columns); the client keeps the columns it prepared",
            String::from_utf8_lossy(CACHED_PLAN)
        );
        if self.store.pinned(&r.name, r.sql) {
            self.old_shapes += 1;
            self.publish();
        }
    }

    /// The recovery was refused: the original error goes to the client.
    pub fn refused(&mut self, fingerprint: u64, why: &str) {
        self.count_passed();
        tracing::info!(
            fingerprint = format_args!("{fingerprint:016x}"),
            "prepared statement not re-prepared, the client gets \"{}\": {why}",
            String::from_utf8_lossy(CACHED_PLAN)
        );
    }

    fn count_passed(&self) {
        self.registry.passed_through.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` statements on old shapes were closed.
    fn forgot(&mut self, n: u64) {
        if n > 0 {
            self.old_shapes = self.old_shapes.saturating_sub(n);
            self.publish();
        }
    }

    fn publish(&self) {
        self.registry.set_old_shapes(self.session, self.old_shapes);
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if self.old_shapes > 0 {
            self.registry.set_old_shapes(self.session, 0);
        }
    }
}

/// True for a query (SELECT or WITH, after comments and parentheses) with
/// a star somewhere: the only statements whose shape can be pinned.
fn pinnable(sql: &[u8]) -> bool {
    let mut word = [0u8; 16];
    matches!(split::first_word(sql, &mut word), b"select" | b"with")
        && memchr::memchr(b'*', sql).is_some()
}

/// True for `0A000 cached plan must not change result type`.
fn is_cached_plan_error(body: &[u8]) -> bool {
    let mut code = false;
    let mut known = false;
    for field in body.split(|&b| b == 0) {
        match field.split_first() {
            Some((b'C', v)) => code = v == b"0A000",
            Some((b'M', v)) => known |= v == CACHED_PLAN,
            Some((b'R', v)) => known |= v == CACHED_PLAN_ROUTINE,
            _ => {}
        }
    }
    code && known
}

#[cfg(test)]
mod tests;

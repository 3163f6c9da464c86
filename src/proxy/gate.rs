//! The statement gate (DESIGN section 4): the one point per statement where
//! the session decides whether a `Query` or `Parse` goes to the server as
//! sent, goes with a warning, or is refused.
//!
//! The common case costs a look at each statement's first keyword. Only the
//! statements a policy can care about (DDL, `UPDATE`/`DELETE`, `LOCK`, ...)
//! are handed to the [`Judge`].
//!
//! A refusal is made exact by letting Postgres do the refusing: the held
//! statement is replaced by a call of a function that cannot exist
//! (`ddlguard_blocked_<nonce>_<n>()`), so the server runs what came before
//! it in the same `Query`, fails at that point, rolls back the implicit
//! transaction, skips the rest of the string or, in the extended protocol,
//! everything up to `Sync`, exactly as it would for a failing statement. The
//! relay then swaps that one ErrorResponse for the policy's own (SQLSTATE
//! 55000, rule, reason, hint). A session in an aborted transaction gets
//! Postgres' own 25P02 instead, as it would have for the original statement.

use crate::analysis::classify::classify;
use crate::analysis::{fingerprint, split, RelationName};
pub use crate::counters::GateStats;
use crate::guard::lock::{self, LockMode};
use crate::guard::{blockers, GuardSettings};
use crate::usage::{ClientIdentity, DdlNotes, RuleHit};
use crate::wire::messages::{self, ProxyError};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What the judge says about one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Send it as it is.
    Forward,
    /// Send it, and send the client these warnings (NoticeResponse).
    Warn(Vec<ProxyError>),
    /// Do not run it; the client gets this error instead.
    Block(ProxyError),
    /// Run these steps instead and answer as if the statement ran.
    Rewrite(Rewrite),
    /// The statement runs inside a transaction block where its safe
    /// sequence cannot: answer as if it ran and run the sequence right
    /// after the transaction commits (`policy.in_transaction =
    /// "after-commit"`).
    Defer(Rewrite),
}

/// A safe sequence that replaces a statement (DESIGN section 6: rewrite).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// Steps, in order; each runs as its own statement (and transaction).
    pub steps: Vec<RewriteStep>,
    /// The CommandComplete tag the client gets, as for its own statement.
    pub tag: String,
    /// Warnings to send with the answer.
    pub notices: Vec<ProxyError>,
    /// Guarded execution for the steps that take a strong lock (set by the
    /// gate from the policy in force).
    pub guard: Option<GuardSettings>,
    /// The client's statement it replaces (for the DDL log of a sequence
    /// run after COMMIT).
    pub original: String,
}

/// One step of a rewrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteStep {
    /// The statement to run.
    pub sql: String,
    /// One line for the client's NoticeResponse.
    pub description: String,
    /// A query; the step runs only when it returns a row.
    pub only_if: Option<String>,
}

/// What the session knows when a statement is judged.
#[derive(Debug, Clone)]
pub struct SessionFacts<'a> {
    /// Who sent the statement.
    pub identity: &'a ClientIdentity,
    /// The statement runs inside a transaction block (explicit, or the
    /// implicit one of a multi-statement `Query`).
    pub in_transaction: bool,
    /// The transaction already wrote rows (INSERT/UPDATE/DELETE/MERGE/COPY).
    pub wrote_rows: bool,
    /// The session's `search_path` as canonical text (empty: server default).
    pub search_path: &'a str,
}

/// What a judge remembers across the statements of one session: the tables
/// created in it and those locked ACCESS EXCLUSIVE by the open transaction.
/// The judge fills it; the gate clears the transaction part when the
/// session is idle again.
#[derive(Debug, Default, Clone)]
pub struct Memory {
    /// Relations created by this session (schema-qualified when written so).
    pub created: Vec<RelationName>,
    /// Relations the open transaction locked ACCESS EXCLUSIVE.
    pub locked_in_transaction: Vec<RelationName>,
    /// The rules that fired on the statement judged last (for the DDL
    /// log), set by the judge each time.
    pub hits: Vec<RuleHit>,
}

/// Decides about statements; built from the configuration, replaced on
/// reload. Implemented by the DDL policy.
pub trait Judge: Send + Sync {
    /// Judges one statement (`sql` is exactly one statement).
    fn judge(&self, sql: &str, facts: &SessionFacts<'_>, memory: &mut Memory) -> Judgement;

    /// True when UPDATE and DELETE statements with a WHERE clause must be
    /// judged too (most policies only care about those without one).
    fn judges_filtered_writes(&self) -> bool {
        false
    }
}

/// A judge that forwards everything (no policy configured).
pub struct ForwardAll;

impl Judge for ForwardAll {
    fn judge(&self, _: &str, _: &SessionFacts<'_>, _: &mut Memory) -> Judgement {
        Judgement::Forward
    }
}

/// What the gate applies: the judge, and guarded execution for DDL that
/// takes a strong lock (`None`: DDL runs as sent).
pub struct GatePolicy {
    /// Decides about each statement.
    pub judge: Arc<dyn Judge>,
    /// Lock timeout, retries and pre-flight for strong-lock DDL.
    pub guard: Option<GuardSettings>,
}

/// Where the gate finds the policy in force (the one of the last reload).
pub type JudgeSource = Arc<dyn Fn() -> Arc<GatePolicy> + Send + Sync>;

/// A client statement to run under guarded execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guarded {
    /// The statement as the client sent it.
    pub sql: String,
    /// Its command, for messages (`ALTER TABLE`).
    pub command: String,
    /// The lock it takes.
    pub lock: LockMode,
    /// The relations it locks, as `to_regclass` literals.
    pub targets: Vec<String>,
    /// Names of the relations, for messages.
    pub target_names: Vec<String>,
    /// It runs inside a transaction block (retries from a savepoint).
    pub in_transaction: bool,
    /// How to guard it.
    pub settings: GuardSettings,
}

/// Work the session does itself instead of relaying a held statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeldWork {
    /// Run the safe sequence instead.
    Rewrite(Rewrite),
    /// Run the statement itself, guarded.
    Guard(Guarded),
    /// Answer as if the statement ran; run its safe sequence after the
    /// transaction commits.
    Defer(Rewrite),
    /// The client's COMMIT of a transaction with deferred sequences: run
    /// it, then the sequences, then answer it.
    Commit {
        /// The statement as the client sent it.
        sql: String,
    },
    /// A long build that takes no blocking lock (CREATE INDEX
    /// CONCURRENTLY, ...): run it under `policy.build_statement_timeout`
    /// instead of the client's statement_timeout.
    Build {
        /// The statement as the client sent it.
        sql: String,
        /// Its statement_timeout (zero: none).
        timeout: std::time::Duration,
    },
}

/// What a statement's first keyword says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interest {
    /// COMMIT or END: ends a transaction block, keeping its work.
    Commit,
    /// Nothing a rule looks at.
    None,
    /// A row write: later DDL in the same transaction is riskier.
    Write,
    /// Starts a transaction block.
    Begin,
    /// Ends a transaction block.
    End,
    /// Handed to the judge; `writes`: it also writes rows.
    Judge { writes: bool },
    /// An UPDATE or DELETE with a WHERE clause: a row write, judged only
    /// when a rule the configuration turned on looks at such statements.
    FilteredWrite,
}

fn interest(statement: &[u8], strings: split::Strings) -> Interest {
    const WRITES: &[&str] = &["delete", "update", "insert", "merge"];
    if starts_with_select(statement) {
        // The most common statement, known without the word scan.
        return Interest::None;
    }
    let mut buf = [0u8; 16];
    match split::first_word(statement, &mut buf) {
        b"create" | b"alter" | b"drop" | b"reindex" | b"cluster" | b"vacuum" | b"truncate"
        | b"lock" | b"refresh" | b"comment" => Interest::Judge { writes: false },
        b"update" | b"delete" if split::has_word(statement, strings, &["where"]) => {
            Interest::FilteredWrite
        }
        b"update" | b"delete" => Interest::Judge { writes: true },
        // A write inside a CTE, EXPLAIN ANALYZE or PREPARE ... AS.
        b"with" | b"explain" | b"prepare" if split::has_word(statement, strings, WRITES) => {
            Interest::Judge { writes: true }
        }
        b"insert" | b"merge" | b"copy" => Interest::Write,
        b"begin" | b"start" => Interest::Begin,
        b"commit" | b"end" => Interest::Commit,
        b"rollback" | b"abort" => Interest::End,
        _ => Interest::None,
    }
}

/// True when the statement's first word (`split::first_word`) is SELECT
/// and nothing precedes it: the word is followed by a byte that is not a
/// letter, as `first_word` ends a word.
fn starts_with_select(statement: &[u8]) -> bool {
    statement.len() >= 6
        && statement[..6].eq_ignore_ascii_case(b"select")
        && statement.get(6).is_none_or(|c| !c.is_ascii_alphabetic())
}

/// A refusal waiting for the server's error at its marker.
struct Armed {
    marker: String,
    /// The ReadyForQuery (counted from session start) that ends the
    /// statement's chance to fail; after it the refusal is forgotten.
    until_ready: u64,
    error: ProxyError,
}

/// The gate of one session.
pub struct Gate {
    judges: JudgeSource,
    identity: ClientIdentity,
    /// Prefix of this process's markers: `ddlguard_blocked_<nonce>_`.
    marker_prefix: Arc<str>,
    next_marker: u64,
    armed: Vec<Armed>,
    memory: Memory,
    wrote_rows: bool,
    /// A BEGIN (`Some(true)`) or COMMIT/ROLLBACK (`Some(false)`) was
    /// forwarded and its ReadyForQuery has not come back yet.
    pending_block: Option<bool>,
    /// ReadyForQuery messages the client has asked for (Query, Sync,
    /// FunctionCall) and received, to date.
    ready_sent: u64,
    ready_seen: u64,
    /// Warnings for the client, encoded, not yet placed in its stream.
    notices: Vec<u8>,
    /// How the session reads strings (`standard_conforming_strings`).
    strings: split::Strings,
    /// Counted outcomes, shared by all sessions (for metrics).
    stats: Arc<GateStats>,
    /// Extended protocol: prepared statements whose execution the session
    /// does itself (a rewrite, guarded DDL, ...), by statement name, with
    /// the DDL log's notes of their judgement.
    prepared: HashMap<Vec<u8>, (HeldWork, DdlNotes)>,
    /// Portals bound to those statements, by portal name.
    portals: HashMap<Vec<u8>, (HeldWork, DdlNotes)>,
    /// The DDL log's notes of the statement judged last, for the tracker.
    notes: Option<DdlNotes>,
    /// Safe sequences deferred until the open transaction commits.
    deferred: Vec<Rewrite>,
}

/// What judging a message's statements came to.
enum Stop {
    Go,
    /// A COMMIT alone while nothing is deferred: it goes as sent, but a
    /// prepared one is remembered (sequences may be deferred before a
    /// driver executes it).
    LoneCommit,
    Refuse {
        cut: usize,
        marker: String,
    },
    Hold(HeldWork),
}

/// What the session runs itself for a DDL statement under guarded
/// execution, from one classification: guarded, when it takes a strong
/// lock; a long build, under the build statement_timeout; else nothing.
pub(super) fn guard_work(
    statement: &str,
    in_transaction: bool,
    settings: &GuardSettings,
) -> Option<HeldWork> {
    let classified = classify(&fingerprint(statement).text);
    match guarded(statement, &classified, in_transaction, settings) {
        Some(g) => Some(HeldWork::Guard(g)),
        None if lock::is_long_build(&classified) => Some(HeldWork::Build {
            sql: statement.to_string(),
            timeout: settings.build_statement_timeout,
        }),
        None => None,
    }
}

/// The guarded form of `statement` (classified as `classified`) when it
/// takes a strong lock.
fn guarded(
    statement: &str,
    classified: &crate::analysis::classify::Classified,
    in_transaction: bool,
    settings: &GuardSettings,
) -> Option<Guarded> {
    let (lock, relations) = lock::strong_lock(classified)?;
    Some(Guarded {
        sql: statement.to_string(),
        command: classified.command.to_uppercase(),
        lock,
        targets: relations
            .iter()
            .map(|r| blockers::regclass_literal(r.schema.as_deref(), &r.name))
            .collect(),
        target_names: relations.iter().map(|r| r.to_string()).collect(),
        in_transaction,
        settings: settings.clone(),
    })
}

/// The refusal for a rewrite the gate cannot run where the statement came:
/// inside a multi-statement Query or transaction block, or in the extended
/// protocol (not yet supported). The client is told the safe steps.
pub(super) fn cannot_rewrite_here(rewrite: &Rewrite, in_transaction: bool) -> ProxyError {
    let steps: Vec<&str> = rewrite.steps.iter().map(|s| s.sql.as_str()).collect();
    let (why, instead) = if in_transaction {
        (
            "it runs inside a transaction block (or a multi-statement query), where its safe sequence cannot run",
            "run it on its own, outside a transaction block: Rails `disable_ddl_transaction!`, Django `atomic = False`, Flyway `executeInTransaction=false`, sqlx `-- no-transaction`; or run the steps yourself",
        )
    } else {
        (
            "it came inside an extended-protocol batch with other messages before its Sync, where ddlguard cannot run statements of its own",
            "send it on its own (its own Query, or Parse/Bind/Execute/Sync), or run the steps yourself",
        )
    };
    let message = rewrite
        .notices
        .first()
        .map(|n| n.message.clone())
        .unwrap_or_else(|| "this statement needs its safe sequence".into());
    ProxyError::error("55000", message)
        .with_detail(format!("ddlguard would rewrite it, but {why}"))
        .with_hint(format!("{instead}: {}", steps.join("; ")))
}

/// What the relay does with the message it showed the gate.
pub enum Passage {
    /// Forward the message unchanged.
    Forward,
    /// Forward this message instead (same type).
    Replace(Vec<u8>),
    /// Hold the message (and everything after it) until the session has
    /// done this work and answered it.
    Hold(HeldWork),
    /// Hold this Execute (and everything after it): the session finishes
    /// the batch before it with a Sync of its own, does this work instead
    /// of the execution, and answers the client's Sync.
    HoldExecute(HeldWork),
}

impl Gate {
    /// The gate of a session of `identity`; `marker_prefix` comes from
    /// [`marker_prefix`], once per process.
    pub fn new(
        judges: JudgeSource,
        identity: ClientIdentity,
        marker_prefix: Arc<str>,
        stats: Arc<GateStats>,
    ) -> Gate {
        Gate {
            judges,
            identity,
            marker_prefix,
            next_marker: 0,
            armed: Vec::new(),
            memory: Memory::default(),
            wrote_rows: false,
            pending_block: None,
            ready_sent: 0,
            ready_seen: 0,
            notices: Vec::new(),
            strings: split::Strings::Standard,
            stats,
            prepared: HashMap::new(),
            portals: HashMap::new(),
            notes: None,
            deferred: Vec::new(),
        }
    }

    /// True for client message types whose body the gate reads: Query and
    /// Parse always; Bind, Execute and Close only while a prepared
    /// statement the session runs itself exists (rare).
    pub fn wants_client_body(&self, tag: u8) -> bool {
        match tag {
            b'Q' | b'P' => true,
            b'B' | b'E' | b'C' => !self.prepared.is_empty(),
            _ => false,
        }
    }

    /// A client message on its way to the server. `tx_status` is the last
    /// ReadyForQuery status, `search_path` the session's current one.
    /// `unsynced`: extended-protocol messages were sent before it without a
    /// Sync (the proxy then holds nothing: it cannot tell when they are done).
    pub fn on_client(
        &mut self,
        tag: u8,
        body: &[u8],
        tx_status: u8,
        search_path: &str,
        unsynced: bool,
    ) -> Passage {
        match tag {
            b'Q' => {
                self.ready_sent += 1;
                let sql = messages::query_text(body);
                let until = self.ready_sent;
                let may_hold = !unsynced;
                match self.statement_text(sql, tx_status, search_path, until, true, may_hold) {
                    Stop::Go | Stop::LoneCommit => Passage::Forward,
                    Stop::Refuse { cut, marker } => {
                        let sql = String::from_utf8_lossy(&sql[..cut]);
                        Passage::Replace(messages::query(&format!("{sql}SELECT {marker}()")))
                    }
                    Stop::Hold(work) => Passage::Hold(work),
                }
            }
            b'P' => {
                let (name, sql) = messages::parse_parts(body);
                // Its errors count until the next Sync's ReadyForQuery.
                let until = self.ready_sent + 1;
                let stop = self.statement_text(sql, tx_status, search_path, until, false, true);
                // A statement of the same name replaces the last one.
                if !self.prepared.is_empty() {
                    self.prepared.remove(name);
                }
                match stop {
                    Stop::Refuse { marker, .. } => {
                        Passage::Replace(messages::parse(name, &format!("SELECT {marker}()")))
                    }
                    Stop::Go => Passage::Forward,
                    // Drivers keep a prepared COMMIT: its Execute is held
                    // once sequences were deferred by then.
                    Stop::LoneCommit => {
                        let sql = String::from_utf8_lossy(sql).into_owned();
                        let work = HeldWork::Commit { sql };
                        self.prepared
                            .insert(name.to_vec(), (work, DdlNotes::forwarded()));
                        Passage::Forward
                    }
                    // Parsing it runs nothing: its Execute is held.
                    Stop::Hold(work) => {
                        let notes = self.notes.clone().unwrap_or_else(DdlNotes::forwarded);
                        self.prepared.insert(name.to_vec(), (work, notes));
                        Passage::Forward
                    }
                }
            }
            b'B' => {
                let (portal, statement) = messages::bind_names(body);
                match self.prepared.get(statement) {
                    Some(work) => {
                        self.portals.insert(portal.to_vec(), work.clone());
                    }
                    None => {
                        self.portals.remove(portal);
                    }
                }
                Passage::Forward
            }
            b'E' => {
                let portal = messages::execute_portal(body);
                match self.portals.remove(portal) {
                    Some((HeldWork::Commit { .. }, _)) if self.deferred.is_empty() => {
                        Passage::Forward
                    }
                    Some((work, notes)) => {
                        self.notes = Some(notes);
                        Passage::HoldExecute(work)
                    }
                    None => Passage::Forward,
                }
            }
            b'C' => {
                match messages::close_target(body) {
                    Some((b'S', name)) => self.prepared.remove(name),
                    Some((_, name)) => self.portals.remove(name),
                    None => None,
                };
                Passage::Forward
            }
            b'S' | b'F' => {
                self.ready_sent += 1;
                Passage::Forward
            }
            _ => Passage::Forward,
        }
    }

    /// Judges the statements of `sql`: go, refuse one (cut the text where
    /// it starts and call the marker there), or rewrite the (single,
    /// simple-protocol) statement.
    fn statement_text(
        &mut self,
        sql: &[u8],
        tx_status: u8,
        search_path: &str,
        until_ready: u64,
        simple: bool,
        may_hold: bool,
    ) -> Stop {
        let mut in_tx = match self.pending_block {
            Some(open) => open,
            None => tx_status != b'I',
        };
        if !simple || split::is_single_in(sql, self.strings) {
            let alone = may_hold && tx_status != b'E';
            return self.one(sql, 0, in_tx, search_path, until_ready, alone);
        }
        // Several statements: one implicit transaction block unless they
        // open their own.
        let pieces = split::statements_in(sql, self.strings);
        let implicit = pieces.len() > 1;
        for range in pieces {
            let piece = &sql[range.clone()];
            match interest(piece, self.strings) {
                Interest::Begin => in_tx = true,
                Interest::End | Interest::Commit => in_tx = false,
                _ => {}
            }
            // A rewrite needs the statement alone (CONCURRENTLY cannot run
            // in the implicit transaction of a multi-statement Query).
            let in_transaction = in_tx || implicit;
            match self.one(
                piece,
                range.start,
                in_transaction,
                search_path,
                until_ready,
                false,
            ) {
                Stop::Go | Stop::LoneCommit => {}
                stop => return stop,
            }
        }
        Stop::Go
    }

    fn one(
        &mut self,
        statement: &[u8],
        offset: usize,
        in_transaction: bool,
        search_path: &str,
        until_ready: u64,
        may_rewrite: bool,
    ) -> Stop {
        // Most statements stop at their first keyword, before the policy in
        // force is even looked up.
        let interest = interest(statement, self.strings);
        match interest {
            Interest::None => return Stop::Go,
            Interest::Write => {
                self.wrote_rows = true;
                return Stop::Go;
            }
            Interest::FilteredWrite => {
                self.wrote_rows = true;
                if !(self.judges)().judge.judges_filtered_writes() {
                    return Stop::Go;
                }
            }
            Interest::Begin => {
                self.pending_block = Some(true);
                return Stop::Go;
            }
            Interest::End => {
                self.pending_block = Some(false);
                return Stop::Go;
            }
            Interest::Commit => {
                self.pending_block = Some(false);
                if !may_rewrite {
                    return Stop::Go;
                }
                if self.deferred.is_empty() {
                    return Stop::LoneCommit;
                }
                let sql = String::from_utf8_lossy(statement).into_owned();
                return Stop::Hold(HeldWork::Commit { sql });
            }
            Interest::Judge { .. } => {}
        }
        // Text in another client encoding is judged on its ASCII (the
        // keywords and names rules read); the cut offsets stay byte offsets.
        let statement = String::from_utf8_lossy(statement);
        let statement = statement.as_ref();
        let policy = (self.judges)();
        let judge = &policy.judge;
        let facts = SessionFacts {
            identity: &self.identity,
            in_transaction,
            wrote_rows: self.wrote_rows,
            search_path,
        };
        self.stats.judged.fetch_add(1, Ordering::Relaxed);
        let judgement = judge.judge(statement, &facts, &mut self.memory);
        let rules = std::mem::take(&mut self.memory.hits);
        if interest == (Interest::Judge { writes: true }) {
            self.wrote_rows = true;
        }
        let judgement = match judgement {
            Judgement::Rewrite(rewrite) if !may_rewrite => {
                Judgement::Block(cannot_rewrite_here(&rewrite, in_transaction))
            }
            // Only a statement alone in an explicit transaction block can be
            // answered now and run after its COMMIT.
            Judgement::Defer(rewrite) if !may_rewrite || self.pending_block == Some(false) => {
                Judgement::Block(cannot_rewrite_here(&rewrite, true))
            }
            other => other,
        };
        let guard = |policy: &GatePolicy| match (&policy.guard, may_rewrite) {
            (Some(settings), true) => match guard_work(statement, in_transaction, settings) {
                Some(work) => {
                    if matches!(work, HeldWork::Guard(_)) {
                        self.stats.guarded.fetch_add(1, Ordering::Relaxed);
                    }
                    Stop::Hold(work)
                }
                None => Stop::Go,
            },
            _ => Stop::Go,
        };
        let mut warned = false;
        let stop = match judgement {
            Judgement::Forward => guard(&policy),
            Judgement::Warn(warnings) => {
                warned = true;
                self.stats.warned.fetch_add(1, Ordering::Relaxed);
                for w in warnings {
                    w.encode(&mut self.notices);
                }
                guard(&policy)
            }
            Judgement::Rewrite(mut rewrite) => {
                self.stats.rewritten.fetch_add(1, Ordering::Relaxed);
                rewrite.guard = policy.guard.clone();
                Stop::Hold(HeldWork::Rewrite(rewrite))
            }
            Judgement::Defer(mut rewrite) => {
                self.stats.deferred.fetch_add(1, Ordering::Relaxed);
                rewrite.guard = policy.guard.clone();
                Stop::Hold(HeldWork::Defer(rewrite))
            }
            Judgement::Block(error) => Stop::Refuse {
                cut: offset,
                marker: self.arm(error, until_ready),
            },
        };
        let action = match &stop {
            Stop::Refuse { .. } => "block",
            Stop::Hold(HeldWork::Rewrite(_)) => "rewrite",
            Stop::Hold(HeldWork::Guard(_)) => "guard",
            Stop::Hold(HeldWork::Defer(_)) => "deferred",
            Stop::Hold(HeldWork::Build { .. } | HeldWork::Commit { .. }) | Stop::Go if warned => {
                "warn"
            }
            Stop::Hold(_) | Stop::Go | Stop::LoneCommit => "forward",
        };
        self.notes = Some(DdlNotes {
            rules,
            action: action.to_string(),
            attempts: 1,
            ..DdlNotes::default()
        });
        stop
    }

    /// The DDL log's notes of the statement judged last (the tracker keeps
    /// them for the statement in flight).
    pub fn take_ddl_notes(&mut self) -> Option<DdlNotes> {
        self.notes.take()
    }

    /// True while a refusal waits for its error.
    pub fn armed(&self) -> bool {
        !self.armed.is_empty()
    }

    /// The policy's error frame when `body` is the server's error for one of
    /// this session's markers.
    pub fn rewrite_error(&mut self, body: &[u8]) -> Option<Vec<u8>> {
        let fields = messages::error_fields(body);
        if fields.code != "42883" || !fields.message.contains(&*self.marker_prefix) {
            return None;
        }
        let at = self
            .armed
            .iter()
            .position(|a| fields.message.contains(&format!("{}(", a.marker)))?;
        Some(self.armed.remove(at).error.to_frame())
    }

    /// A ReadyForQuery with `status` reached the client.
    pub fn on_ready(&mut self, status: u8) {
        self.ready_seen += 1;
        let seen = self.ready_seen;
        // Every statement ends here: the common case (nothing armed, held
        // or deferred) touches nothing else.
        if !self.armed.is_empty() {
            self.armed.retain(|a| a.until_ready > seen);
        }
        if self.ready_seen >= self.ready_sent {
            self.pending_block = None;
        }
        if status == b'I' {
            self.wrote_rows = false;
            self.memory.locked_in_transaction.clear();
            if !self.portals.is_empty() {
                self.portals.clear();
            }
            if !self.deferred.is_empty() {
                self.drop_deferred();
            }
        }
    }

    /// Takes the sequences deferred until COMMIT (the session runs them
    /// after a COMMIT it held).
    pub fn take_deferred(&mut self) -> Vec<Rewrite> {
        std::mem::take(&mut self.deferred)
    }

    /// Keeps a sequence to run after the open transaction commits.
    pub fn defer(&mut self, rewrite: Rewrite) {
        self.deferred.push(rewrite);
    }

    /// Arms a refusal for a statement the relay cannot hold after all and
    /// returns the marker to call in its place.
    pub fn refuse_here(&mut self, error: ProxyError) -> String {
        self.arm(error, self.ready_sent + 1)
    }

    /// The messages that replace a held Execute of `rewrite` that shares
    /// its batch with other messages: a call of a refusal marker, so the
    /// server fails there and skips to Sync as for a failing statement.
    pub fn refuse_in_batch(&mut self, rewrite: &Rewrite) -> Vec<u8> {
        let marker = self.refuse_here(cannot_rewrite_here(rewrite, false));
        let mut frames = messages::parse(b"", &format!("SELECT {marker}()"));
        frames.extend_from_slice(&messages::bind_unnamed());
        frames.extend_from_slice(&messages::execute_unnamed());
        frames
    }

    /// Counts a refusal and arms its error until the `until_ready`th
    /// ReadyForQuery; returns the marker to call.
    fn arm(&mut self, error: ProxyError, until_ready: u64) -> String {
        self.stats.blocked.fetch_add(1, Ordering::Relaxed);
        let marker = format!("{}{}", self.marker_prefix, self.next_marker);
        self.next_marker += 1;
        self.armed.push(Armed {
            marker: marker.clone(),
            until_ready,
            error,
        });
        marker
    }

    /// The transaction ended without a COMMIT the session held (ROLLBACK,
    /// an error, a COMMIT among other statements): its deferred sequences
    /// do not run, and the client is told.
    fn drop_deferred(&mut self) {
        for rewrite in std::mem::take(&mut self.deferred) {
            let steps: Vec<&str> = rewrite.steps.iter().map(|s| s.sql.as_str()).collect();
            tracing::warn!(tag = %rewrite.tag, "deferred safe sequence dropped: the transaction ended without a COMMIT ddlguard could hold");
            ProxyError::warning(
                "01000",
                format!(
                    "ddlguard: the safe sequence deferred for {} did not run: the transaction ended without a COMMIT ddlguard could hold (rolled back, failed, or committed among other statements)",
                    rewrite.tag
                ),
            )
            .with_hint(format!("run it yourself, outside a transaction block: {}", steps.join("; ")))
            .encode(&mut self.notices);
        }
    }

    /// What the gates of all sessions did (the held work counts here too).
    pub fn stats(&self) -> &GateStats {
        &self.stats
    }

    /// A ParameterStatus from the server: `standard_conforming_strings`
    /// decides how the splitter reads `'...'` strings.
    pub fn on_parameter(&mut self, body: &[u8]) {
        let (name, rest) = messages::cstr(body);
        if name == b"standard_conforming_strings" {
            let (value, _) = messages::cstr(rest);
            self.strings = if value == b"off" {
                split::Strings::Backslash
            } else {
                split::Strings::Standard
            };
        }
    }

    /// `n` Syncs the client sent will get no ReadyForQuery (they reached
    /// a server in COPY FROM STDIN mode, which drops them).
    pub fn forget_syncs(&mut self, n: u32) {
        self.ready_sent = self.ready_sent.saturating_sub(u64::from(n));
        if self.ready_seen >= self.ready_sent {
            self.pending_block = None;
        }
    }

    /// Encoded warnings to place in the client's stream, if any.
    pub fn take_notices(&mut self) -> Option<Vec<u8>> {
        if self.notices.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.notices))
        }
    }
}

/// The marker prefix of this process: a function name no database has.
pub fn marker_prefix() -> Arc<str> {
    let nonce = ahash::RandomState::new().hash_one(std::process::id());
    Arc::from(format!("ddlguard_blocked_{nonce:016x}_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_select_shortcut_agrees_with_the_first_word() {
        let texts: &[&[u8]] = &[
            b"SELECT 1",
            b"select",
            b"SeLeCt*from t",
            b"SELECT(1)",
            b"select1",
            b"selected",
            b"selectx 1",
            b" SELECT 1",
            b"/* c */ SELECT 1",
            b"SELEC",
            b"",
            b"select_x",
            b"SELECT\t1",
        ];
        for text in texts {
            let mut buf = [0u8; 16];
            let word = split::first_word(text, &mut buf) == b"select";
            assert!(
                !starts_with_select(text) || word,
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
        assert!(starts_with_select(b"SELECT 1") && !starts_with_select(b"selected"));
    }

    /// Refuses every statement that mentions `forbidden`; warns on `risky`.
    struct Words;

    impl Judge for Words {
        fn judge(&self, sql: &str, facts: &SessionFacts<'_>, memory: &mut Memory) -> Judgement {
            if sql.contains("create table") {
                memory.created.push(RelationName {
                    schema: None,
                    name: "t".into(),
                });
            }
            if sql.contains("forbidden") {
                let tx = if facts.in_transaction {
                    "in tx"
                } else {
                    "no tx"
                };
                Judgement::Block(ProxyError::error("55000", format!("blocked {tx}")))
            } else if sql.contains("rewriteme") {
                Judgement::Rewrite(Rewrite {
                    steps: vec![RewriteStep {
                        sql: "create index concurrently rewriteme".into(),
                        description: "build it without blocking writes".into(),
                        only_if: None,
                    }],
                    tag: "CREATE INDEX".into(),
                    notices: Vec::new(),
                    guard: None,
                    original: sql.into(),
                })
            } else if sql.contains("risky") {
                Judgement::Warn(vec![ProxyError::warning("01000", "careful")])
            } else {
                Judgement::Forward
            }
        }
    }

    fn gate() -> Gate {
        let policy = Arc::new(GatePolicy {
            judge: Arc::new(Words),
            guard: Some(GuardSettings::default()),
        });
        let source: JudgeSource = Arc::new(move || policy.clone());
        Gate::new(
            source,
            ClientIdentity {
                application_name: "app".into(),
                user: "u".into(),
                database: "d".into(),
                client_addr: "127.0.0.1".into(),
            },
            Arc::from("ddlguard_blocked_test_"),
            Arc::default(),
        )
    }

    fn body(sql: &str) -> Vec<u8> {
        messages::query(sql)[5..].to_vec()
    }

    fn replaced(p: Passage) -> Option<String> {
        match p {
            Passage::Forward => None,
            Passage::Replace(frame) => {
                Some(String::from_utf8_lossy(messages::query_text(&frame[5..])).into_owned())
            }
            Passage::Hold(HeldWork::Rewrite(rewrite)) => {
                Some(format!("hold: {}", rewrite.steps[0].sql))
            }
            Passage::Hold(HeldWork::Guard(g)) => {
                Some(format!("guard: {}", g.target_names.join(",")))
            }
            Passage::Hold(other) => Some(format!("hold: {other:?}")),
            Passage::HoldExecute(work) => Some(format!("execute: {work:?}")),
        }
    }

    fn error_body(code: &str, message: &str) -> Vec<u8> {
        let mut b = Vec::new();
        for (t, v) in [(b'S', "ERROR"), (b'C', code), (b'M', message)] {
            b.push(t);
            b.extend_from_slice(v.as_bytes());
            b.push(0);
        }
        b.push(0);
        b
    }

    #[test]
    fn ordinary_statements_pass_untouched() {
        let mut g = gate();
        for sql in [
            "select 1",
            "select 'forbidden'; ",
            "insert into t values (1)",
        ] {
            assert!(
                replaced(g.on_client(b'Q', &body(sql), b'I', "", false)).is_none(),
                "{sql}"
            );
        }
        assert_eq!(g.stats.judged.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_refused_statement_is_cut_where_it_starts() {
        let mut g = gate();
        let sql = "set lock_timeout = '1s'; alter table forbidden add c int; select 1";
        let text = replaced(g.on_client(b'Q', &body(sql), b'I', "", false)).unwrap();
        assert_eq!(
            text,
            "set lock_timeout = '1s'; SELECT ddlguard_blocked_test_0()"
        );
        // The server's error for the marker becomes the policy's, once.
        let err = error_body("42883", "function ddlguard_blocked_test_0() does not exist");
        let frame = g.rewrite_error(&err).expect("rewritten");
        let fields = messages::error_fields(&frame[5..]);
        assert_eq!(
            (fields.code.as_str(), fields.message.as_str()),
            ("55000", "blocked in tx")
        );
        assert!(g.rewrite_error(&err).is_none());
        assert!(!g.armed());
    }

    #[test]
    fn other_errors_pass_and_ready_for_query_disarms() {
        let mut g = gate();
        let text =
            replaced(g.on_client(b'Q', &body("drop table forbidden"), b'T', "", false)).unwrap();
        assert_eq!(text, "SELECT ddlguard_blocked_test_0()");
        let aborted = error_body("25P02", "current transaction is aborted");
        assert!(g.rewrite_error(&aborted).is_none());
        g.on_ready(b'E');
        assert!(!g.armed());
    }

    #[test]
    fn parse_is_replaced_under_its_own_name() {
        let mut g = gate();
        let mut b = b"stmt1\0".to_vec();
        b.extend_from_slice(b"drop table forbidden\0\0\0");
        let Passage::Replace(frame) = g.on_client(b'P', &b, b'I', "", false) else {
            panic!("replaced")
        };
        let (name, sql) = messages::parse_parts(&frame[5..]);
        assert_eq!(name, b"stmt1");
        assert_eq!(sql, b"SELECT ddlguard_blocked_test_0()");
        // Armed until the Sync's ReadyForQuery.
        g.on_client(b'S', &[], b'I', "", false);
        assert!(g.armed());
        g.on_ready(b'I');
        assert!(!g.armed());
    }

    #[test]
    fn transaction_state_follows_begin_commit_and_writes() {
        let mut g = gate();
        g.on_client(b'Q', &body("begin"), b'I', "", false);
        // BEGIN's ReadyForQuery has not come back: still judged in a transaction.
        let t =
            replaced(g.on_client(b'Q', &body("drop table forbidden"), b'I', "", false)).unwrap();
        assert!(t.contains("ddlguard_blocked"));
        let f = g.rewrite_error(&error_body(
            "42883",
            "function ddlguard_blocked_test_0() does not exist",
        ));
        assert!(String::from_utf8_lossy(&f.unwrap()).contains("in tx"));
        g.on_ready(b'T');
        g.on_ready(b'T');
        g.on_client(
            b'Q',
            &body("update t set a = 1 where a = 2"),
            b'T',
            "",
            false,
        );
        assert!(g.wrote_rows);
        g.on_client(b'Q', &body("commit"), b'T', "", false);
        g.on_ready(b'T');
        g.on_ready(b'I');
        assert!(!g.wrote_rows);
    }

    #[test]
    fn warnings_are_queued_for_the_client() {
        let mut g = gate();
        // Warned, and (a strong lock) held for guarded execution.
        let held =
            replaced(g.on_client(b'Q', &body("alter table risky add c int"), b'I', "", false));
        assert_eq!(held.as_deref(), Some("guard: risky"));
        let notices = g.take_notices().unwrap();
        assert_eq!(notices[0], b'N');
        assert!(g.take_notices().is_none());
        let stats = (
            g.stats.judged.load(Ordering::Relaxed),
            g.stats.warned.load(Ordering::Relaxed),
        );
        assert_eq!(stats, (1, 1));
    }

    #[test]
    fn a_rewrite_holds_a_lone_simple_statement_and_refuses_elsewhere() {
        let mut g = gate();
        let held = replaced(g.on_client(
            b'Q',
            &body("create index rewriteme on t (a)"),
            b'I',
            "",
            false,
        ));
        assert_eq!(
            held.as_deref(),
            Some("hold: create index concurrently rewriteme")
        );
        // In a multi-statement Query the sequence cannot run: refused, with the steps.
        let sql = "select 1; create index rewriteme on t (a)";
        let text = replaced(g.on_client(b'Q', &body(sql), b'I', "", false)).unwrap();
        assert_eq!(text, "select 1; SELECT ddlguard_blocked_test_0()");
        let err = error_body("42883", "function ddlguard_blocked_test_0() does not exist");
        let frame = g.rewrite_error(&err).unwrap();
        let text = String::from_utf8_lossy(&frame).into_owned();
        assert!(
            text.contains("create index concurrently rewriteme"),
            "{text}"
        );
        assert!(text.contains("transaction block"), "{text}");
        // A Parse goes to the server (parsing runs nothing); the Execute of
        // a portal bound to it is held, and no other.
        let mut b = b"s1\0".to_vec();
        b.extend_from_slice(b"create index rewriteme on t (a)\0\0\0");
        assert!(matches!(
            g.on_client(b'P', &b, b'I', "", false),
            Passage::Forward
        ));
        let bind = |portal: &[u8], statement: &[u8]| {
            [portal, b"\0", statement, b"\0\0\0\0\0\0\0"].concat()
        };
        let execute = |portal: &[u8]| [portal, b"\0\0\0\0\0"].concat();
        for (tag, msg) in [(b'B', bind(b"p1", b"s1")), (b'B', bind(b"p2", b"other"))] {
            assert!(matches!(
                g.on_client(tag, &msg, b'I', "", true),
                Passage::Forward
            ));
        }
        assert!(matches!(
            g.on_client(b'E', &execute(b"p2"), b'I', "", true),
            Passage::Forward
        ));
        let held = replaced(g.on_client(b'E', &execute(b"p1"), b'I', "", true)).unwrap();
        assert!(held.starts_with("execute: Rewrite"), "{held}");
        // Executed once; a Close forgets the statement.
        assert!(matches!(
            g.on_client(b'E', &execute(b"p1"), b'I', "", true),
            Passage::Forward
        ));
        assert!(matches!(
            g.on_client(b'C', b"Ss1\0", b'I', "", true),
            Passage::Forward
        ));
        assert!(!g.wants_client_body(b'B'), "nothing left to watch");
    }

    #[test]
    fn strong_lock_ddl_alone_and_not_in_a_failed_transaction_is_guarded() {
        let mut g = gate();
        let guard = |g: &mut Gate, sql: &str, status: u8| {
            replaced(g.on_client(b'Q', &body(sql), status, "", false))
        };
        assert_eq!(
            guard(&mut g, "create index i on t (a)", b'I').as_deref(),
            Some("guard: t")
        );
        assert_eq!(
            guard(&mut g, "alter table s.t add c int", b'T').as_deref(),
            Some("guard: s.t")
        );
        // A long build that takes no blocking lock is held only to run it
        // under the build statement_timeout.
        let build = guard(&mut g, "create index concurrently i on t (a)", b'I').unwrap();
        assert!(build.starts_with("hold: Build"), "{build}");
        assert_eq!(guard(&mut g, "alter table t add c int", b'E'), None);
        assert_eq!(
            guard(&mut g, "select 1; alter table t add c int", b'I'),
            None
        );
    }
}

//! The post-startup relay: frames both directions on `BytesMut`, forwards
//! bytes straight out of the read buffers, decodes only what it inspects.
//!
//! One task drives both sockets from a single `poll` loop, so neither
//! direction can block the other (a client that pipelines thousands of
//! statements while the server streams results back never deadlocks), and
//! writes are batched: everything readable is read and framed before the
//! ready bytes are written in one go.

use super::buffers;
use super::exchange;
use super::gate::{Gate, HeldWork, Passage};
use super::prepared::{self, Interest, Prepared};
use super::tracker::Tracker;
pub use crate::counters::Traffic;
use crate::net::stream::Stream;
use crate::usage::Tick;
use crate::wire::messages;
use crate::wire::{FrameHeader, WireError};
use bytes::{Buf, BytesMut};
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWrite};

/// Minimum free space before a read; reads are at least this large.
const READ_CHUNK: usize = buffers::CHUNK;
/// Stop reading a side while this many bytes wait to be written to the other.
const HIGH_WATER: usize = 256 * 1024;

/// The CopyFail reason sent when a client vanishes during COPY FROM STDIN;
/// Postgres logs it as `COPY from stdin failed: ...`.
pub const COPY_ABANDONED: &str =
    "ddlguard: the client connection closed during COPY FROM STDIN; the COPY was abandoned";

/// Why the relay stopped.
#[derive(Debug)]
pub enum RelayEnd {
    /// The client closed its connection (after Terminate or abruptly).
    ClientClosed,
    /// The server closed its connection.
    ServerClosed,
    /// Reading from or writing to the client failed.
    ClientIo(io::Error),
    /// Reading from or writing to the server failed.
    ServerIo(io::Error),
    /// The client sent a malformed or oversized message.
    Protocol(WireError),
    /// `drain_server` finished: every answer owed to the client was relayed.
    Drained,
    /// A statement is held for a rewrite and everything before it has been
    /// answered: the session runs `run_held`, then `run` again.
    Held,
    /// A prepared statement's recovery is due (handled inside `run`).
    Recover,
}

/// The time of the wakeup a relay step handles, taken from the clock the
/// first time the tracker asks for it and then shared by every message the
/// wakeup brought: a relay without usage tracking never reads the clock.
/// The epoll relay shares one across all the sessions of an epoll batch
/// (a clock read was 30-40 ns here, two per transaction); outside a step
/// each framing pass starts a fresh one.
#[derive(Default)]
pub(super) struct WakeupClock(Option<Tick>);

impl WakeupClock {
    fn get(&mut self) -> Tick {
        *self.0.get_or_insert_with(Tick::now)
    }
}

/// A client message the gate holds, at the front of the client lane.
struct Held {
    /// Its length in bytes.
    len: usize,
    /// What the session does with it.
    work: HeldWork,
    /// It is an extended-protocol Execute (else a simple Query): the batch
    /// before it is finished with a Sync of the proxy's own, and the
    /// client's Sync after it is answered by the session.
    execute: bool,
}

/// Whether the held message can be worked on now.
enum Turn {
    /// Not yet: answers are still owed, or the message after a held
    /// Execute has not arrived.
    Wait,
    /// Everything before it is answered: run it.
    Run,
    /// The hold was given up (an Execute not followed by its Sync); the
    /// client lane moves on.
    Released,
}

/// What the relay knows about the session's protocol state.
#[derive(Debug, Clone)]
pub struct ProtocolState {
    /// Transaction status from the last ReadyForQuery: `I`, `T` or `E`.
    pub tx_status: u8,
    /// Query/Sync/FunctionCall messages sent whose ReadyForQuery has not come back.
    pub awaiting_ready: u32,
    /// Extended-protocol messages sent since the last Sync.
    pub unsynced: bool,
    /// Type of the last complete message the server sent.
    pub last_server_tag: u8,
    /// The last server ErrorResponse was FATAL (the server is about to close).
    pub server_fatal: bool,
    /// The client sent Terminate.
    pub terminated: bool,
    /// The server is in COPY FROM STDIN mode (CopyInResponse seen, no
    /// CopyDone/CopyFail from the client, no error or ReadyForQuery since):
    /// a Terminate now would be a protocol violation, so the session ends
    /// with CopyFail instead.
    pub copy_in: bool,
    /// Syncs sent since the last Execute: when that Execute starts a COPY
    /// FROM STDIN, the server ignores them (no ReadyForQuery comes back).
    pub syncs_since_execute: u32,
    /// Client messages of unknown type, relayed unchanged.
    pub unknown_client: u64,
    /// Server messages of unknown type, relayed unchanged.
    pub unknown_server: u64,
}

impl ProtocolState {
    /// A client message of type `tag` goes to the server.
    fn on_client(&mut self, tag: u8) {
        match tag {
            b'Q' | b'F' => self.awaiting_ready += 1,
            b'S' => {
                self.awaiting_ready += 1;
                self.unsynced = false;
                self.syncs_since_execute += 1;
            }
            b'E' => {
                self.unsynced = true;
                self.syncs_since_execute = 0;
            }
            b'P' | b'B' | b'D' | b'C' | b'H' => self.unsynced = true,
            b'X' => self.terminated = true,
            b'c' | b'f' => self.copy_in = false,
            b'd' | b'p' => {}
            _ => self.unknown_client += 1,
        }
    }

    /// True while a statement may be running on the server for this client
    /// (and needs a CancelRequest to stop). A COPY FROM STDIN waits for the
    /// client instead: `finish_server` ends it with CopyFail.
    pub fn busy(&self) -> bool {
        (self.awaiting_ready > 0 || self.unsynced) && !self.copy_in
    }
}

/// One direction's buffer: `[0, ready)` is framed and ready to write,
/// `pass` more bytes belong to a message being passed through unread.
struct Lane {
    buf: BytesMut,
    ready: usize,
    pass: usize,
    needs_flush: bool,
    eof: bool,
}

impl Lane {
    fn new(buf: BytesMut) -> Lane {
        Lane {
            buf,
            ready: 0,
            pass: 0,
            needs_flush: false,
            eof: false,
        }
    }

    fn may_read(&self) -> bool {
        !self.eof && (self.ready == 0 || self.buf.len() < HIGH_WATER)
    }

    /// True when the bytes written to the peer end on a message boundary.
    fn at_boundary(&self) -> bool {
        self.pass == 0
    }
}

/// The two connections of a live session and their buffers.
pub struct Relay {
    /// The client connection.
    pub client: Stream,
    /// The upstream connection.
    pub server: Stream,
    from_client: Lane,
    from_server: Lane,
    max_message: usize,
    /// Protocol state the session and its hooks read.
    pub state: ProtocolState,
    /// The server's BackendKeyData body, used to cancel its running statement.
    pub backend_key: Option<Vec<u8>>,
    /// Set by `drain_server`: the client is no longer read.
    draining: bool,
    /// Statement tracking and usage recording, when `[usage] enabled`.
    pub tracker: Option<Tracker>,
    /// The statement gate (DDL policy).
    pub gate: Option<Gate>,
    /// Named statements' shapes and their recovery after ADD COLUMN.
    pub prepared: Option<Prepared>,
    held: Option<Held>,
    /// Woken when a CancelRequest for this session arrives, so that a wait
    /// the proxy does for a held statement ends too.
    pub held_cancel: Arc<tokio::sync::Notify>,
    /// Bytes relayed, shared by all sessions (for metrics).
    pub traffic: Arc<Traffic>,
    /// What guarded execution did for the held statement being worked on.
    pub(super) held_record: super::held::HeldRecord,
}

impl Relay {
    /// Starts relaying; `client_buf`/`server_buf` hold bytes already read
    /// during startup that belong to the relay phase.
    pub fn new(
        client: Stream,
        server: Stream,
        client_buf: BytesMut,
        server_buf: BytesMut,
        max_message: usize,
    ) -> Relay {
        Relay {
            client,
            server,
            from_client: Lane::new(client_buf),
            from_server: Lane::new(server_buf),
            max_message,
            state: ProtocolState {
                tx_status: b'I',
                awaiting_ready: 0,
                unsynced: false,
                last_server_tag: 0,
                server_fatal: false,
                terminated: false,
                copy_in: false,
                syncs_since_execute: 0,
                unknown_client: 0,
                unknown_server: 0,
            },
            backend_key: None,
            draining: false,
            tracker: None,
            gate: None,
            prepared: None,
            held: None,
            held_cancel: Arc::default(),
            traffic: Arc::default(),
            held_record: Default::default(),
        }
    }

    /// Relays until one side closes or fails, on the session's task.
    pub async fn run(&mut self) -> RelayEnd {
        if let Err(end) = self.rescan() {
            return end;
        }
        loop {
            match std::future::poll_fn(|cx| self.step(&mut Polled(cx), &mut WakeupClock::default()))
                .await
            {
                RelayEnd::Recover => {
                    if let Err(end) = self.recover().await {
                        return end;
                    }
                }
                end => return end,
            }
        }
    }

    /// Frames what the buffers hold that was not framed yet (bytes read
    /// during startup, or put back after work the session did itself):
    /// called before relaying starts or resumes.
    pub(super) fn rescan(&mut self) -> Result<(), RelayEnd> {
        let mut clock = WakeupClock::default();
        self.scan_client(&mut clock).map_err(RelayEnd::Protocol)?;
        self.return_held_replies();
        self.scan_server(&mut clock);
        Ok(())
    }

    /// Runs a due prepared-statement recovery (after [`RelayEnd::Recover`]),
    /// then frames what waited behind it.
    pub(super) async fn recover(&mut self) -> Result<(), RelayEnd> {
        self.recover_prepared().await?;
        self.rescan()
    }

    /// True when both sockets are plain TCP the epoll relay can drive.
    pub(super) fn plain(&self) -> bool {
        matches!(
            (&self.client, &self.server),
            (Stream::Plain(_), Stream::Plain(_))
        )
    }

    /// Re-prepares the statement whose batch failed with "cached plan must
    /// not change result type" and replays the batch, or gives the client
    /// the original replies when no equivalent statement can be proven.
    async fn recover_prepared(&mut self) -> Result<(), RelayEnd> {
        let Some(recovery) = self.prepared.as_mut().map(Prepared::take_recovery) else {
            return Ok(());
        };
        let mut for_client = Vec::new();
        match recovery {
            Err(replies) => for_client.extend_from_slice(&replies),
            Ok(r) => {
                let started = Instant::now();
                let mut buf = self.from_server.buf.split_off(self.from_server.ready);
                let plan = r.plan();
                let ran =
                    prepared::run_recovery(&mut self.server, &mut buf, &plan, &mut for_client)
                        .await;
                self.from_server.buf.unsplit(buf);
                let ran = ran.map_err(RelayEnd::ServerIo)?;
                let lane = &mut self.from_client;
                if ran.is_ok() {
                    splice(&mut lane.buf, lane.ready, 0, &r.batch);
                    lane.ready += r.batch.len();
                }
                if let Some(p) = self.prepared.as_mut() {
                    match ran {
                        Ok(()) => p.recovered(r, started.elapsed().as_micros()),
                        Err(why) => {
                            p.refused(r.fingerprint(), &why.to_string());
                            for_client.extend_from_slice(&r.swallowed);
                        }
                    }
                }
            }
        }
        self.give_back(&for_client);
        Ok(())
    }

    /// Puts frames held back from the server into the client's stream at
    /// the current boundary, through the relay's own bookkeeping.
    fn give_back(&mut self, frames: &[u8]) {
        if frames.is_empty() {
            return;
        }
        let lane = &mut self.from_server;
        splice(&mut lane.buf, lane.ready, 0, frames);
        self.scan_server(&mut WakeupClock::default());
    }

    /// Frames the prepared-statement hooks stopped holding back.
    fn return_held_replies(&mut self) {
        if self.from_server.pass != 0 {
            return;
        }
        if let Some(frames) = self.prepared.as_mut().and_then(Prepared::take_returned) {
            self.give_back(&frames);
        }
    }

    /// Reads, frames and writes both directions until neither moves, or
    /// until the relay has to stop (the end says why). `Pending` means both
    /// sockets wait for readiness `io` will report.
    pub(super) fn step<I: RelayIo>(
        &mut self,
        io: &mut I,
        clock: &mut WakeupClock,
    ) -> Poll<RelayEnd> {
        // A socket that said Pending in this call waits for readiness that
        // cannot have come since (the runtime reads readiness between polls
        // of the task; the epoll relay between steps): it is not asked again
        // until the next wakeup. Each extra ask locks the socket's waiter
        // list (or costs a syscall).
        let mut client_waits = false;
        let mut server_waits = false;
        loop {
            let mut progress = false;

            let holding =
                self.held.is_some() || self.prepared.as_ref().is_some_and(Prepared::holds_client);
            let hold_room = !holding || self.from_client.buf.len() < HIGH_WATER;
            if !client_waits && !self.draining && hold_room && self.from_client.may_read() {
                match fill(
                    io,
                    Side::Client,
                    &mut self.client,
                    &mut self.from_client.buf,
                ) {
                    Poll::Ready(Ok(0)) => {
                        self.from_client.eof = true;
                        progress = true;
                    }
                    Poll::Ready(Ok(n)) => {
                        self.traffic.from_clients.add(n as u64);
                        if let Err(e) = self.scan_client(clock) {
                            return Poll::Ready(RelayEnd::Protocol(e));
                        }
                        self.return_held_replies();
                        self.place_notices();
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(RelayEnd::ClientIo(e)),
                    Poll::Pending => client_waits = true,
                }
            }
            if !server_waits && self.from_server.may_read() {
                match fill(
                    io,
                    Side::Server,
                    &mut self.server,
                    &mut self.from_server.buf,
                ) {
                    Poll::Ready(Ok(0)) => {
                        self.from_server.eof = true;
                        progress = true;
                    }
                    Poll::Ready(Ok(n)) => {
                        self.traffic.from_server.add(n as u64);
                        self.scan_server(clock);
                        self.place_notices();
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(RelayEnd::ServerIo(e)),
                    Poll::Pending => server_waits = true,
                }
            }

            match drain(io, Side::Server, &mut self.server, &mut self.from_client) {
                Poll::Ready(Ok(moved)) => progress |= moved,
                Poll::Ready(Err(e)) => return Poll::Ready(RelayEnd::ServerIo(e)),
                Poll::Pending => {}
            }
            match drain(io, Side::Client, &mut self.client, &mut self.from_server) {
                Poll::Ready(Ok(moved)) => progress |= moved,
                Poll::Ready(Err(e)) => return Poll::Ready(RelayEnd::ClientIo(e)),
                Poll::Pending => {}
            }

            let drained = |l: &Lane| l.ready == 0 && !l.needs_flush;
            if self.draining && self.state.awaiting_ready == 0 && drained(&self.from_server) {
                return Poll::Ready(RelayEnd::Drained);
            }
            if self.held.is_some()
                && drained(&self.from_client)
                && drained(&self.from_server)
                && self.from_server.at_boundary()
            {
                match self.held_turn() {
                    Turn::Wait => {}
                    Turn::Run => return Poll::Ready(RelayEnd::Held),
                    Turn::Released => {
                        if let Err(e) = self.scan_client(clock) {
                            return Poll::Ready(RelayEnd::Protocol(e));
                        }
                        continue;
                    }
                }
            }
            if self.prepared.as_ref().is_some_and(Prepared::recovery_due)
                && drained(&self.from_client)
                && drained(&self.from_server)
                && self.from_client.at_boundary()
                && self.from_server.at_boundary()
            {
                return Poll::Ready(RelayEnd::Recover);
            }
            if self.from_server.eof && drained(&self.from_server) {
                return Poll::Ready(RelayEnd::ServerClosed);
            }
            if self.from_client.eof && drained(&self.from_client) {
                return Poll::Ready(RelayEnd::ClientClosed);
            }
            if !progress {
                // Waiting: empty buffers go back to the pool, so an idle
                // session holds none.
                for lane in [&mut self.from_client, &mut self.from_server] {
                    if lane.buf.is_empty() && lane.buf.capacity() > 0 {
                        buffers::give(std::mem::take(&mut lane.buf));
                    }
                }
                return Poll::Pending;
            }
        }
    }

    /// Stops reading the client and relays the server's answers to what was
    /// already forwarded, until none is owed. Used before the proxy adds its
    /// own final error, so the client reads it after those answers, as it
    /// would from Postgres.
    pub async fn drain_server(&mut self) -> RelayEnd {
        self.draining = true;
        self.from_client.buf.truncate(self.from_client.ready);
        self.from_client.pass = 0;
        if let Some(p) = self.prepared.as_mut() {
            p.abandon();
        }
        self.return_held_replies();
        std::future::poll_fn(|cx| self.step(&mut Polled(cx), &mut WakeupClock::default())).await
    }

    /// Frames newly read client bytes. Message bodies are read only when the
    /// tracker needs them (Query, Parse, Bind, Execute, Close); everything
    /// else passes through unread, even while it is still arriving.
    fn scan_client(&mut self, now: &mut WakeupClock) -> Result<(), WireError> {
        let lane = &mut self.from_client;
        loop {
            if self.held.is_some() || self.prepared.as_ref().is_some_and(Prepared::holds_client) {
                // Pipelined messages wait, in order, behind the held one.
                return Ok(());
            }
            let avail = lane.buf.len() - lane.ready;
            if lane.pass > 0 {
                let n = lane.pass.min(avail);
                lane.ready += n;
                lane.pass -= n;
                if lane.pass > 0 {
                    return Ok(());
                }
                continue;
            }
            let Some(head) = FrameHeader::parse(&lane.buf[lane.ready..])? else {
                return Ok(());
            };
            if head.total_len > self.max_message {
                return Err(WireError::TooLarge {
                    tag: head.tag as char,
                    len: head.total_len,
                    limit: self.max_message,
                });
            }
            let gate_reads = self
                .gate
                .as_ref()
                .is_some_and(|g| g.wants_client_body(head.tag));
            let tracker_reads = self
                .tracker
                .as_ref()
                .is_some_and(|_| Tracker::wants_client_body(head.tag));
            let prepared_reads = self
                .prepared
                .as_ref()
                .is_some_and(|p| p.wants_client_body(head.tag));
            let reads = gate_reads || tracker_reads || prepared_reads;
            if reads && avail < head.total_len {
                // Counted once it is whole: this header is parsed again
                // after the next read.
                lane.buf.reserve(head.total_len - avail);
                return Ok(());
            }
            let st = &mut self.state;
            if let Some(p) = self.prepared.as_mut() {
                let idle = !st.unsynced && st.awaiting_ready == 0;
                let seen = if reads { head.total_len } else { 5 };
                p.on_client(
                    head.tag,
                    &lane.buf[lane.ready..lane.ready + seen],
                    idle,
                    st.tx_status,
                );
            }
            st.on_client(head.tag);
            if reads {
                let body = &lane.buf[lane.ready + 5..lane.ready + head.total_len];
                if let Some(tracker) = self.tracker.as_mut() {
                    tracker.on_client(head.tag, body, now.get());
                }
                let passage = match self.gate.as_mut() {
                    Some(gate) if gate_reads => {
                        let path = self.tracker.as_ref().map_or("", |t| t.search_path());
                        let passage =
                            gate.on_client(head.tag, body, st.tx_status, path, st.unsynced);
                        // A Parse's notes stay with its statement in the gate
                        // until its Execute.
                        if let Some(notes) = gate.take_ddl_notes() {
                            if let (Some(tracker), b'Q' | b'E') = (self.tracker.as_mut(), head.tag)
                            {
                                tracker.annotate_ddl(notes);
                            }
                        }
                        passage
                    }
                    _ => Passage::Forward,
                };
                match passage {
                    Passage::Forward => {
                        lane.ready += head.total_len;
                        let own = match self.prepared.as_mut() {
                            Some(p) if head.tag == b'P' => p.take_describe(),
                            _ => None,
                        };
                        if let Some(own) = own {
                            // Right behind the client's Parse: the shape it
                            // is prepared with.
                            splice(&mut lane.buf, lane.ready, 0, &own);
                            lane.ready += own.len();
                        }
                    }
                    Passage::Replace(frame) => {
                        splice(&mut lane.buf, lane.ready, head.total_len, &frame);
                        lane.ready += frame.len();
                    }
                    Passage::Hold(work) => {
                        // The gate holds no Query inside an unsynced batch
                        // (the server never says when it is done).
                        self.held = Some(Held {
                            len: head.total_len,
                            work,
                            execute: false,
                        });
                        return Ok(());
                    }
                    Passage::HoldExecute(work) => {
                        self.held = Some(Held {
                            len: head.total_len,
                            work,
                            execute: true,
                        });
                        return Ok(());
                    }
                }
                continue;
            }
            if let Some(tracker) = self.tracker.as_mut() {
                tracker.on_client(head.tag, &[], now.get());
            }
            if let Some(gate) = self.gate.as_mut() {
                if matches!(head.tag, b'S' | b'F') {
                    gate.on_client(head.tag, &[], st.tx_status, "", st.unsynced);
                }
            }
            lane.pass = head.total_len;
        }
    }

    /// Whether the held message (at the front of the drained client lane)
    /// can be worked on. A held Query waits until it is the only statement
    /// owed a ReadyForQuery. A held Execute waits until every earlier batch
    /// is answered and the next client message has arrived: a Sync ends
    /// its batch and the session does the work; anything else means the
    /// Execute shares its batch, where the session cannot run statements
    /// of its own, so the hold is given up: guarded DDL and a COMMIT go as
    /// sent, a rewrite is refused there.
    fn held_turn(&mut self) -> Turn {
        let Some(held) = &self.held else {
            return Turn::Wait;
        };
        if !held.execute {
            return if self.state.awaiting_ready <= 1 {
                Turn::Run
            } else {
                Turn::Wait
            };
        }
        if self.state.awaiting_ready > 0 {
            return Turn::Wait;
        }
        match FrameHeader::parse(&self.from_client.buf[held.len..]) {
            Ok(Some(next)) if next.tag == b'S' && next.total_len == messages::SYNC.len() => {
                return Turn::Run
            }
            Ok(None) if !self.from_client.eof => return Turn::Wait,
            _ => {}
        }
        let Some(held) = self.held.take() else {
            return Turn::Wait;
        };
        let rewrite = match &held.work {
            HeldWork::Rewrite(r) | HeldWork::Defer(r) => Some(r),
            HeldWork::Guard(_) | HeldWork::Commit { .. } | HeldWork::Build { .. } => None,
        };
        match (rewrite, self.gate.as_mut()) {
            (Some(rewrite), Some(gate)) => {
                let frames = gate.refuse_in_batch(rewrite);
                splice(&mut self.from_client.buf, 0, held.len, &frames);
                self.from_client.ready += frames.len();
            }
            _ => self.from_client.ready += held.len,
        }
        Turn::Released
    }

    /// Runs the held statement's work on the server (a rewrite's steps,
    /// guarded DDL, a deferral, a COMMIT with deferred sequences) and
    /// queues the client's answer as if its statement ran: notices for
    /// what the proxy did, its CommandComplete tag (or the error) and
    /// ReadyForQuery. For a held Execute, the replies to the messages of
    /// its batch come first. Then `run` goes on with what the client sent
    /// after it.
    pub async fn run_held(&mut self) -> Result<(), RelayEnd> {
        let Some(held) = self.held.take() else {
            return Ok(());
        };
        exchange::discard(&mut self.from_client.buf, held.len);
        self.held_record = Default::default();
        let mut for_client = Vec::new();
        if held.execute {
            self.take_client_sync();
            let mut buf = self.from_server.buf.split_off(self.from_server.ready);
            let flushed = exchange::sync_keeping(&mut self.server, &mut buf).await;
            self.from_server.buf.unsplit(buf);
            let flushed = flushed.map_err(RelayEnd::ServerIo)?;
            for_client = flushed.frames;
            self.state.tx_status = flushed.status;
            if flushed.error.is_some() {
                // Its Parse or Bind failed: the Execute never runs.
                for_client.extend_from_slice(&exchange::ready_for_query(flushed.status));
                self.answer_held(&for_client);
                return Ok(());
            }
        }
        let answer = match &held.work {
            // Judged at its Parse: the transaction may have changed since.
            HeldWork::Rewrite(rewrite) if self.state.tx_status != b'I' => {
                self.rewrite_refused(rewrite).await?
            }
            HeldWork::Defer(rewrite) if self.state.tx_status == b'I' => {
                self.run_rewrite(rewrite).await?
            }
            HeldWork::Rewrite(rewrite) => self.run_rewrite(rewrite).await?,
            HeldWork::Guard(guarded) => self.run_guarded(guarded).await?,
            HeldWork::Defer(rewrite) => self.run_defer(rewrite),
            HeldWork::Commit { sql } => self.run_commit(sql).await?,
            HeldWork::Build { sql, timeout } => {
                let in_transaction = self.state.tx_status != b'I';
                let mut answer = Vec::new();
                let o = self
                    .run_build(sql, *timeout, in_transaction, true, &mut answer)
                    .await?;
                answer.extend_from_slice(&o.frames);
                answer.extend_from_slice(&exchange::ready_for_query(o.status));
                answer
            }
        };
        for_client.extend_from_slice(&answer);
        let record = std::mem::take(&mut self.held_record);
        if let Some(tracker) = self.tracker.as_mut() {
            if let Some(notes) = tracker.ddl_notes_mut() {
                notes.attempts = notes.attempts.max(record.attempts);
                notes.preflight_wait_ms += record.preflight_wait_ms;
                notes.lock_wait_ms += record.lock_wait_ms;
                notes.blockers.extend(record.blockers);
                notes.terminated.extend(record.terminated);
            }
        }
        self.answer_held(&for_client);
        Ok(())
    }

    /// Takes the client's Sync that follows a held Execute off the client
    /// lane, counted as if it had been forwarded: the session answers it.
    fn take_client_sync(&mut self) {
        exchange::discard(&mut self.from_client.buf, messages::SYNC.len());
        let st = &mut self.state;
        st.on_client(b'S');
        let now = Tick::now();
        if let Some(tracker) = self.tracker.as_mut() {
            tracker.on_client(b'S', &[], now);
        }
        if let Some(gate) = self.gate.as_mut() {
            gate.on_client(b'S', &[], st.tx_status, "", false);
        }
    }

    /// Queues the session's answer to a held message for the client.
    fn answer_held(&mut self, for_client: &[u8]) {
        // The answer goes through the relay's own bookkeeping (tracker,
        // gate, transaction status) as if the server had sent it.
        splice(
            &mut self.from_server.buf,
            self.from_server.ready,
            0,
            for_client,
        );
        self.scan_server(&mut WakeupClock::default());
    }

    /// Runs one statement of the proxy's own on the server.
    pub(super) async fn own_statement(
        &mut self,
        sql: &str,
        for_client: &mut Vec<u8>,
    ) -> Result<exchange::Outcome, RelayEnd> {
        // Bytes already read from the server and not yet framed start the
        // exchange's buffer (asynchronous messages for the client).
        let mut buf = self.from_server.buf.split_off(self.from_server.ready);
        let outcome = exchange::run(&mut self.server, &mut buf, sql, for_client)
            .await
            .map_err(RelayEnd::ServerIo);
        self.from_server.buf.unsplit(buf);
        outcome
    }

    /// Runs a client's statement on the server on its behalf, keeping every
    /// reply but the ReadyForQuery for the client (`Outcome::frames`).
    pub(super) async fn client_statement(
        &mut self,
        sql: &str,
    ) -> Result<exchange::Outcome, RelayEnd> {
        let mut buf = self.from_server.buf.split_off(self.from_server.ready);
        let outcome = exchange::run_keeping(&mut self.server, &mut buf, sql)
            .await
            .map_err(RelayEnd::ServerIo);
        self.from_server.buf.unsplit(buf);
        outcome
    }

    /// Puts the gate's warnings into the client's stream at the next message
    /// boundary (a NoticeResponse may come at any time).
    fn place_notices(&mut self) {
        let lane = &mut self.from_server;
        if lane.pass != 0 {
            return;
        }
        if let Some(notices) = self.gate.as_mut().and_then(Gate::take_notices) {
            splice(&mut lane.buf, lane.ready, 0, &notices);
            lane.ready += notices.len();
        }
    }

    /// Frames newly read server bytes; ReadyForQuery and ErrorResponse (and
    /// ParameterStatus when tracking) are read whole, being small; everything
    /// else passes through unread.
    fn scan_server(&mut self, now: &mut WakeupClock) {
        let lane = &mut self.from_server;
        loop {
            let avail = lane.buf.len() - lane.ready;
            if lane.pass > 0 {
                let n = lane.pass.min(avail);
                lane.ready += n;
                lane.pass -= n;
                if lane.pass > 0 {
                    return;
                }
                continue;
            }
            let head = match FrameHeader::parse(&lane.buf[lane.ready..]) {
                Ok(Some(head)) => head,
                Ok(None) => return,
                Err(_) => {
                    // A broken server frame: relay the bytes unchanged and let
                    // the client's driver judge them; never guess a boundary.
                    lane.ready = lane.buf.len();
                    self.state.unknown_server += 1;
                    return;
                }
            };
            if let Some(p) = self.prepared.as_mut() {
                let interest = p.server_interest(head.tag);
                if interest == Interest::Frame && avail < head.total_len {
                    lane.buf.reserve(head.total_len - avail);
                    return;
                }
                let seen = match interest {
                    Interest::None => 0,
                    Interest::Tag => 5,
                    Interest::Frame => head.total_len,
                };
                if seen > 0 && p.on_server(head.tag, &lane.buf[lane.ready..lane.ready + seen]) {
                    // Held back: the client gets the recovery's replies, or
                    // these frames later, in place.
                    splice(&mut lane.buf, lane.ready, head.total_len, &[]);
                    continue;
                }
            }
            let st = &mut self.state;
            tracing::trace!(tag = %(head.tag as char), len = head.total_len, "server message");
            match head.tag {
                b'Z' | b'E' | b'S'
                    if head.tag != b'S' || self.tracker.is_some() || self.gate.is_some() =>
                {
                    if avail < head.total_len {
                        lane.buf.reserve(head.total_len - avail);
                        return;
                    }
                    let mut total_len = head.total_len;
                    if let Some(gate) = self.gate.as_mut() {
                        if head.tag == b'E' && gate.armed() {
                            let body = &lane.buf[lane.ready + 5..lane.ready + total_len];
                            if let Some(frame) = gate.rewrite_error(body) {
                                splice(&mut lane.buf, lane.ready, total_len, &frame);
                                total_len = frame.len();
                            }
                        }
                    }
                    let body = &lane.buf[lane.ready + 5..lane.ready + total_len];
                    if let Some(tracker) = self.tracker.as_mut() {
                        tracker.on_server(head.tag, body, now.get());
                    }
                    if head.tag == b'S' {
                        if let Some(gate) = self.gate.as_mut() {
                            gate.on_parameter(body);
                        }
                    }
                    if head.tag == b'Z' {
                        st.tx_status = messages::ready_status(body).unwrap_or(st.tx_status);
                        st.awaiting_ready = st.awaiting_ready.saturating_sub(1);
                        st.copy_in = false;
                        if let Some(gate) = self.gate.as_mut() {
                            gate.on_ready(st.tx_status);
                        }
                    } else if head.tag == b'E' {
                        st.server_fatal = messages::error_fields(body).severity == "FATAL";
                        st.copy_in = false;
                    }
                    st.last_server_tag = head.tag;
                    lane.ready += total_len;
                    continue;
                }
                b'C' | b'I' | b's' | b'1' => {
                    if let Some(tracker) = self.tracker.as_mut() {
                        tracker.on_server(head.tag, &[], now.get());
                    }
                }
                b'G' => {
                    st.copy_in = true;
                    // Syncs pipelined behind the Execute that started this
                    // COPY reach a server in copy-in mode, which drops them.
                    let dropped = std::mem::take(&mut st.syncs_since_execute);
                    if dropped > 0 {
                        st.awaiting_ready = st.awaiting_ready.saturating_sub(dropped);
                        if let Some(gate) = self.gate.as_mut() {
                            gate.forget_syncs(dropped);
                        }
                        if let Some(tracker) = self.tracker.as_mut() {
                            tracker.forget_syncs(dropped);
                        }
                        if let Some(p) = self.prepared.as_mut() {
                            p.forget_syncs(dropped);
                        }
                    }
                }
                b'2' | b'3' | b'A' | b'c' | b'd' | b'D' | b'H' | b'K' | b'n' | b'N' | b'R'
                | b'S' | b't' | b'T' | b'v' | b'V' | b'W' => {}
                _ => st.unknown_server += 1,
            }
            st.last_server_tag = head.tag;
            lane.pass = head.total_len;
        }
    }

    /// Writes what is framed for the client, then `extra` (an error the proxy
    /// adds) if the client stream sits on a message boundary, and flushes.
    pub async fn finish_client(&mut self, extra: Option<&[u8]>) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let lane = &mut self.from_server;
        self.client.write_all(&lane.buf[..lane.ready]).await?;
        lane.buf.advance(lane.ready);
        lane.ready = 0;
        if let Some(extra) = extra {
            if lane.at_boundary() {
                self.client.write_all(extra).await?;
            }
        }
        self.client.flush().await?;
        let _ = self.client.shutdown().await;
        Ok(())
    }

    /// Reads and discards what the client still sends (see `Stream::linger`).
    pub async fn linger_client(&mut self, limit: std::time::Duration) {
        self.client.linger(limit).await;
    }

    /// Writes what is framed for the server, then (if the server stream is
    /// on a boundary and the client did not send one) a Terminate, preceded
    /// by a CopyFail when a COPY FROM STDIN is still open, and closes.
    pub async fn finish_server(&mut self) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let lane = &mut self.from_client;
        self.server.write_all(&lane.buf[..lane.ready]).await?;
        lane.buf.advance(lane.ready);
        lane.ready = 0;
        if lane.at_boundary() && !self.state.terminated {
            if self.state.copy_in {
                self.server
                    .write_all(&messages::copy_fail(COPY_ABANDONED))
                    .await?;
            }
            self.server.write_all(b"X\0\0\0\x04").await?;
        }
        self.server.flush().await?;
        let _ = self.server.shutdown().await;
        Ok(())
    }
}

/// Replaces the `len` bytes at `at` with `frame` (a rare path: a refused
/// statement, or the error that answers it).
fn splice(buf: &mut BytesMut, at: usize, len: usize, frame: &[u8]) {
    let tail = buf.split_off(at + len);
    buf.truncate(at);
    buf.extend_from_slice(frame);
    buf.extend_from_slice(&tail);
}

/// Which socket of a session an I/O call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// The client connection.
    Client,
    /// The upstream connection.
    Server,
}

/// How [`Relay::step`] reads and writes its sockets: through the runtime
/// (a task's `Context`, [`Polled`]) or directly (the epoll relay, which
/// keeps the sockets itself and leaves `stream` as [`Stream::Lent`]).
/// `Pending` means the socket waits for readiness that wakes the step again.
pub(super) trait RelayIo {
    /// Reads once into `buf`'s spare capacity (at least a quarter chunk).
    fn read(
        &mut self,
        side: Side,
        stream: &mut Stream,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>>;
    /// Writes once from `bytes`.
    fn write(&mut self, side: Side, stream: &mut Stream, bytes: &[u8]) -> Poll<io::Result<usize>>;
    /// Flushes what a write left buffered (TLS); plain sockets have nothing.
    fn flush(&mut self, side: Side, stream: &mut Stream) -> Poll<io::Result<()>>;
}

/// The relay's I/O on the session's task: each socket's readiness comes
/// from the runtime, with the task's waker.
struct Polled<'a, 'b>(&'a mut Context<'b>);

impl RelayIo for Polled<'_, '_> {
    fn read(
        &mut self,
        _: Side,
        stream: &mut Stream,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<usize>> {
        let read = pin!(stream.read_buf(buf));
        read.poll(self.0)
    }

    fn write(&mut self, _: Side, stream: &mut Stream, bytes: &[u8]) -> Poll<io::Result<usize>> {
        std::pin::Pin::new(stream).poll_write(self.0, bytes)
    }

    fn flush(&mut self, _: Side, stream: &mut Stream) -> Poll<io::Result<()>> {
        std::pin::Pin::new(stream).poll_flush(self.0)
    }
}

/// Reads once into `buf`, reserving a chunk first.
fn fill<I: RelayIo>(
    io: &mut I,
    side: Side,
    stream: &mut Stream,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    if buf.capacity() == 0 {
        *buf = buffers::take();
    } else if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
    io.read(side, stream, buf)
}

/// Writes the lane's ready bytes to `out` until it would block, then flushes.
/// Returns whether anything moved.
fn drain<I: RelayIo>(
    io: &mut I,
    side: Side,
    out: &mut Stream,
    lane: &mut Lane,
) -> Poll<io::Result<bool>> {
    let mut moved = false;
    while lane.ready > 0 {
        match io.write(side, out, &lane.buf[..lane.ready]) {
            Poll::Ready(Ok(0)) => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "peer stopped accepting data",
                )))
            }
            Poll::Ready(Ok(n)) => {
                lane.buf.advance(n);
                lane.ready -= n;
                lane.needs_flush = true;
                moved = true;
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {
                return if moved {
                    Poll::Ready(Ok(true))
                } else {
                    Poll::Pending
                }
            }
        }
    }
    if lane.needs_flush {
        match io.flush(side, out) {
            Poll::Ready(Ok(())) => lane.needs_flush = false,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => {}
        }
    }
    Poll::Ready(Ok(moved))
}

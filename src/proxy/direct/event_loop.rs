//! The loop itself: sessions in a table indexed by token, one `epoll_wait`
//! per batch of events, one [`Relay::step`] per event.

use super::socket_io::{Readiness, SocketIo};
use super::{Command, Lent, Returned, Why};
use crate::proxy::relay::{Relay, WakeupClock};
use crate::usage::held;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::{error, warn};

/// The token of the loop's waker (commands are waiting).
pub const WAKER: Token = Token(usize::MAX);
/// Events taken per `epoll_wait`.
const BATCH: usize = 256;

/// A session the loop relays.
struct Session {
    id: u64,
    relay: Box<Relay>,
    client: TcpStream,
    server: TcpStream,
    /// Client, server.
    ready: [Readiness; 2],
    span: tracing::Span,
    back: oneshot::Sender<Returned>,
}

/// The sessions, by slot; a slot's two tokens are `2 * slot` (client) and
/// `2 * slot + 1` (server).
#[derive(Default)]
struct Table {
    slots: Vec<Option<Session>>,
    free: Vec<usize>,
    /// Slots emptied in this batch: reused only after it, so that a later
    /// event of the batch for the old session cannot reach a new one.
    released: Vec<usize>,
    by_id: HashMap<u64, usize>,
    /// Sessions whose step ran out of budget: stepped again after the
    /// others (see `socket_io::BUDGET`).
    again: Vec<usize>,
}

impl Table {
    fn insert(&mut self, session: Session) -> usize {
        let id = session.id;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(session);
                slot
            }
            None => {
                self.slots.push(Some(session));
                self.slots.len() - 1
            }
        };
        self.by_id.insert(id, slot);
        slot
    }

    fn remove(&mut self, slot: usize) -> Option<Session> {
        let session = self.slots.get_mut(slot)?.take()?;
        self.by_id.remove(&session.id);
        self.released.push(slot);
        Some(session)
    }
}

/// Runs until told to stop (or until every sender is gone).
pub fn run(mut poll: Poll, commands: mpsc::Receiver<Command>) {
    let mut table = Table::default();
    let mut events = Events::with_capacity(BATCH);
    loop {
        // One clock read (if any session tracks usage) stamps everything
        // this batch brought.
        let mut clock = WakeupClock::default();
        // Sessions that still have work do not wait for an event.
        let wait = if table.again.is_empty() {
            None
        } else {
            Some(Duration::ZERO)
        };
        if let Err(e) = poll.poll(&mut events, wait) {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // Nothing can be relayed without epoll: every session goes back
            // to its task, which relays it itself.
            error!("the epoll relay failed ({e}); its sessions go back to their tasks");
            stop(&poll, &commands, &mut table);
            return;
        }
        for event in events.iter() {
            if event.token() == WAKER {
                if !take_commands(&poll, &commands, &mut table) {
                    stop(&poll, &commands, &mut table);
                    return;
                }
                continue;
            }
            let slot = event.token().0 / 2;
            let Some(Some(session)) = table.slots.get_mut(slot) else {
                // A session given back earlier in this batch.
                continue;
            };
            session.ready[event.token().0 % 2].update(event);
            step(&poll, &mut table, slot, &mut clock);
        }
        for slot in std::mem::take(&mut table.again) {
            step(&poll, &mut table, slot, &mut clock);
        }
        // The batch's usage records go to the registry when a reader
        // asked for them, or when enough have been held.
        held::end_of_batch();
        let released = std::mem::take(&mut table.released);
        table.free.extend(released);
    }
}

/// Carries out waiting commands; false when the loop is to stop.
fn take_commands(poll: &Poll, commands: &mpsc::Receiver<Command>, table: &mut Table) -> bool {
    loop {
        match commands.try_recv() {
            Ok(Command::Adopt(lent)) => adopt(poll, table, lent),
            Ok(Command::Recall(id)) => {
                if let Some(&slot) = table.by_id.get(&id) {
                    give_back(poll, table, slot, Why::Recalled);
                }
            }
            Ok(Command::Stop) | Err(mpsc::TryRecvError::Disconnected) => return false,
            Err(mpsc::TryRecvError::Empty) => return true,
        }
    }
}

/// Ends the loop: every session it relays, and every one still on its way
/// to it, goes back to its task to be relayed there.
fn stop(poll: &Poll, commands: &mpsc::Receiver<Command>, table: &mut Table) {
    for slot in 0..table.slots.len() {
        give_back(poll, table, slot, Why::LoopGone);
    }
    while let Ok(command) = commands.try_recv() {
        if let Command::Adopt(lent) = command {
            let returned = Returned {
                relay: lent.relay,
                client: lent.client,
                server: lent.server,
                why: Why::LoopGone,
            };
            let _ = lent.back.send(returned);
        }
    }
}

/// Registers a lent session's sockets and relays what is already there.
fn adopt(poll: &Poll, table: &mut Table, lent: Lent) {
    let Lent {
        id,
        relay,
        client,
        server,
        span,
        back,
    } = lent;
    let session = Session {
        id,
        relay,
        client: TcpStream::from_std(client),
        server: TcpStream::from_std(server),
        ready: [Readiness::UNKNOWN; 2],
        span,
        back,
    };
    let slot = table.insert(session);
    let both = Interest::READABLE | Interest::WRITABLE;
    let registered = table.slots[slot].as_mut().map(|s| {
        poll.registry()
            .register(&mut s.client, Token(2 * slot), both)
            .and_then(|()| {
                poll.registry()
                    .register(&mut s.server, Token(2 * slot + 1), both)
            })
    });
    if let Some(Err(e)) = registered {
        give_back(poll, table, slot, Why::NotAdopted(e));
        return;
    }
    let rescanned = match table.slots[slot].as_mut() {
        Some(s) => {
            let _entered = s.span.enter();
            std::panic::catch_unwind(AssertUnwindSafe(|| s.relay.rescan()))
        }
        None => return,
    };
    match rescanned {
        Ok(Ok(())) => step(poll, table, slot, &mut WakeupClock::default()),
        Ok(Err(end)) => give_back(poll, table, slot, Why::Ended(end)),
        Err(_) => drop_panicked(poll, table, slot),
    }
}

/// Relays what the session's sockets allow; gives the session back when
/// the relay stops.
fn step(poll: &Poll, table: &mut Table, slot: usize, clock: &mut WakeupClock) {
    let Some(Some(session)) = table.slots.get_mut(slot) else {
        return;
    };
    let Session {
        relay,
        client,
        server,
        ready,
        span,
        ..
    } = session;
    let _entered = span.enter();
    let mut io = SocketIo::new(client, server, ready);
    // A panic in one session's relay (a bug) ends that session, as a
    // panicking task would, not the loop and every session on it.
    let stepped = std::panic::catch_unwind(AssertUnwindSafe(|| relay.step(&mut io, clock)));
    let exhausted = io.exhausted;
    drop(_entered);
    match stepped {
        Ok(std::task::Poll::Pending) if exhausted => table.again.push(slot),
        Ok(std::task::Poll::Pending) => {}
        Ok(std::task::Poll::Ready(end)) => give_back(poll, table, slot, Why::Ended(end)),
        Err(_) => drop_panicked(poll, table, slot),
    }
}

/// Closes a session whose relay panicked (its task sees [`super::Lost`]).
fn drop_panicked(poll: &Poll, table: &mut Table, slot: usize) {
    if let Some(mut session) = table.remove(slot) {
        session
            .span
            .in_scope(|| error!("the relay panicked; the session is closed"));
        deregister(poll, &mut session);
    }
}

fn deregister(poll: &Poll, session: &mut Session) {
    let _ = poll.registry().deregister(&mut session.client);
    let _ = poll.registry().deregister(&mut session.server);
}

/// Returns a session to its task.
fn give_back(poll: &Poll, table: &mut Table, slot: usize, why: Why) {
    let Some(mut session) = table.remove(slot) else {
        return;
    };
    deregister(poll, &mut session);
    let returned = Returned {
        relay: session.relay,
        client: std::net::TcpStream::from(std::os::fd::OwnedFd::from(session.client)),
        server: std::net::TcpStream::from(std::os::fd::OwnedFd::from(session.server)),
        why,
    };
    if session.back.send(returned).is_err() {
        // Its task is gone (the runtime is shutting down): nothing to relay.
        let _entered = session.span.enter();
        warn!("a session's task ended while the epoll relay held it");
    }
}

//! The epoll relay: one thread per session thread that drives every plain
//! (non-TLS) session in its relay phase from a single `epoll` loop, with
//! direct `recv`/`send`, instead of through the runtime.
//!
//! A relayed transaction wakes the proxy twice. Through tokio each wakeup
//! costs readiness bookkeeping on both sockets (their waiter lists), a task
//! schedule, poll and idle transition and the reader/writer wrappers:
//! measured at about 0.9 µs of user CPU per transaction, more than the relay
//! and usage tracking together (issue 17, `benches/README.md`). Here a
//! wakeup is an event in a batch, a table lookup and the same synchronous
//! [`Relay::step`] the task runs: framing, tracking and the statement gate
//! are unchanged.
//!
//! A session comes here when relaying starts or resumes and goes back to its
//! task for everything that waits on something other than its two sockets:
//! a statement the gate holds, a prepared statement's recovery, the end of
//! the session, and the proxy's closing phase (the task recalls it). TLS
//! sessions stay on their task.

mod event_loop;
mod socket_io;
mod syscalls;

use super::relay::{Relay, RelayEnd};
use super::shared::{reached, Phase};
use crate::net::stream::Stream;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::{oneshot, watch};
use tracing::warn;

/// What the loop is asked to do.
enum Command {
    /// Relay this session.
    Adopt(Lent),
    /// Give this session back (the proxy is closing).
    Recall(u64),
    /// End the loop, giving every session back.
    Stop,
}

/// A session on loan: its relay state and its two sockets.
struct Lent {
    id: u64,
    relay: Box<Relay>,
    client: std::net::TcpStream,
    server: std::net::TcpStream,
    span: tracing::Span,
    back: oneshot::Sender<Returned>,
}

/// A session the loop gives back.
struct Returned {
    relay: Box<Relay>,
    client: std::net::TcpStream,
    server: std::net::TcpStream,
    why: Why,
}

/// Why a session came back.
enum Why {
    /// The relay stopped: ended, or needs the session's task.
    Ended(RelayEnd),
    /// The task asked for it back, or the loop stopped.
    Recalled,
    /// The loop could not register its sockets; the task relays it.
    NotAdopted(io::Error),
    /// The loop stopped (epoll failed); the task relays it.
    LoopGone,
}

/// The session's relay state was lost: the loop panicked while it held it
/// (its sockets are closed). Only that session ends.
#[derive(Debug, thiserror::Error)]
#[error("the epoll relay lost the session")]
pub struct Lost;

/// A running epoll relay thread; stopped when dropped.
pub struct EpollRelay {
    commands: mpsc::Sender<Command>,
    waker: Arc<mio::Waker>,
    next_id: AtomicU64,
}

impl EpollRelay {
    /// Starts the loop on a thread of its own named `name`. Called on the
    /// session thread's runtime: what the relay starts in the background
    /// (a catalog refresh after DDL) is spawned there.
    pub fn start(name: String) -> io::Result<Arc<EpollRelay>> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let poll = mio::Poll::new()?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), event_loop::WAKER)?);
        let (tx, rx) = mpsc::channel();
        let wakes_loop = waker.clone();
        std::thread::Builder::new().name(name).spawn(move || {
            let _runtime = runtime.enter();
            // Usage records are held on this thread and applied in groups
            // (usage::held); a report wakes the loop to apply them.
            let _holding = crate::usage::held::hold_on_this_thread(move || {
                if let Err(e) = wakes_loop.wake() {
                    warn!("cannot wake the epoll relay for a report: {e}");
                }
            });
            event_loop::run(poll, rx)
        })?;
        Ok(Arc::new(EpollRelay {
            commands: tx,
            waker,
            next_id: AtomicU64::new(1),
        }))
    }

    fn send(&self, command: Command) -> Result<(), Command> {
        let sent = self.commands.send(command).map_err(|e| e.0);
        if sent.is_ok() {
            if let Err(e) = self.waker.wake() {
                warn!("cannot wake the epoll relay: {e}");
            }
        }
        sent
    }

    /// Relays a session whose sockets are both plain TCP (see
    /// [`Relay::plain`]) on the loop until it ends, needs its task
    /// (`Held`, `Recover`) or the proxy reaches [`Phase::Closing`] (then
    /// `None`, as `unless_closing` answers). The relay comes back with its
    /// sockets in place either way, unless the loop lost it.
    pub async fn relay(
        &self,
        mut relay: Box<Relay>,
        phase: &mut watch::Receiver<Phase>,
    ) -> Result<(Box<Relay>, Option<RelayEnd>), Lost> {
        if *phase.borrow() >= Phase::Closing {
            // As `unless_closing`: no relaying once the proxy is closing.
            return Ok((relay, None));
        }
        let (client, server) = match take_sockets(&mut relay) {
            Ok(pair) => pair,
            Err(end) => return Ok((relay, Some(end))),
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (back, mut returned) = oneshot::channel();
        let lent = Lent {
            id,
            relay,
            client,
            server,
            span: tracing::Span::current(),
            back,
        };
        if let Err(Command::Adopt(lent)) = self.send(Command::Adopt(lent)) {
            // The loop is gone: relay on the task.
            let Lent {
                relay,
                client,
                server,
                ..
            } = lent;
            return Ok(on_task(relay, client, server, phase).await);
        }
        let returned = tokio::select! {
            biased;
            r = &mut returned => r,
            () = reached(phase, Phase::Closing) => {
                // Answered with the session either way: recalled, or ended
                // on its own just before.
                let _ = self.send(Command::Recall(id));
                returned.await
            }
        };
        let Returned {
            mut relay,
            client,
            server,
            why,
        } = returned.map_err(|_| Lost)?;
        let end = match why {
            Why::NotAdopted(e) => {
                warn!("the epoll relay cannot take the session ({e}); it is relayed on its task");
                return Ok(on_task(relay, client, server, phase).await);
            }
            Why::LoopGone => return Ok(on_task(relay, client, server, phase).await),
            Why::Ended(end) => Some(end),
            Why::Recalled => None,
        };
        match put_sockets(&mut relay, client, server) {
            Ok(()) => Ok((relay, end)),
            Err(failed) => Ok((relay, Some(failed))),
        }
    }
}

/// The epoll relay for one session thread when `server.epoll_relay` is
/// on; `None` (sessions relay on their tasks) when it is off or cannot start.
pub fn start_for(shared: &super::shared::Shared, name: &str) -> Option<Arc<EpollRelay>> {
    if !shared.settings().config.server.epoll_relay {
        return None;
    }
    EpollRelay::start(name.to_string())
        .inspect_err(|e| {
            tracing::error!(
                "cannot start the epoll relay thread: {e}; sessions are relayed on their tasks"
            )
        })
        .ok()
}

impl Drop for EpollRelay {
    fn drop(&mut self) {
        let _ = self.send(Command::Stop);
    }
}

/// Relays on the session's task (the loop did not take the session, or
/// stopped).
async fn on_task(
    mut relay: Box<Relay>,
    client: std::net::TcpStream,
    server: std::net::TcpStream,
    phase: &mut watch::Receiver<Phase>,
) -> (Box<Relay>, Option<RelayEnd>) {
    if let Err(end) = put_sockets(&mut relay, client, server) {
        return (relay, Some(end));
    }
    // Boxed: rare, and inline the relay's state would stay in the future
    // every session on the loop keeps while it waits.
    let end = super::closing::unless_closing(phase, Box::pin(relay.run())).await;
    (relay, end)
}

/// Takes both plain sockets out of the runtime (deregistered from its
/// reactor), leaving [`Stream::Lent`] in their place. A failure ends the
/// session, as a failed read of that socket would.
fn take_sockets(relay: &mut Relay) -> Result<(std::net::TcpStream, std::net::TcpStream), RelayEnd> {
    let client = std::mem::replace(&mut relay.client, Stream::Lent);
    let server = std::mem::replace(&mut relay.server, Stream::Lent);
    match (client, server) {
        (Stream::Plain(c), Stream::Plain(s)) => {
            let client = c.into_std().map_err(RelayEnd::ClientIo)?;
            let server = s.into_std().map_err(RelayEnd::ServerIo)?;
            Ok((client, server))
        }
        (client, server) => {
            relay.client = client;
            relay.server = server;
            Err(RelayEnd::ClientIo(io::Error::other(
                "only plain TCP sessions can be lent",
            )))
        }
    }
}

/// Gives the sockets back to the runtime (registered with this thread's
/// reactor).
fn put_sockets(
    relay: &mut Relay,
    client: std::net::TcpStream,
    server: std::net::TcpStream,
) -> Result<(), RelayEnd> {
    let client = tokio::net::TcpStream::from_std(client).map_err(RelayEnd::ClientIo)?;
    relay.client = Stream::Plain(client);
    let server = tokio::net::TcpStream::from_std(server).map_err(RelayEnd::ServerIo)?;
    relay.server = Stream::Plain(server);
    Ok(())
}

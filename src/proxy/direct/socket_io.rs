//! The relay's socket I/O on the epoll loop: direct `recv`/`send` on
//! nonblocking sockets, with the readiness the loop's events reported.

use super::super::relay::{RelayIo, Side};
use super::syscalls;
use crate::net::stream::Stream;
use bytes::BytesMut;
use std::io;
use std::os::fd::AsRawFd;
use std::task::Poll;

/// What the loop knows of one socket: whether a read or a write may get
/// somewhere. Set by an event (edge-triggered: the kernel reports each new
/// arrival or freed send space), cleared when the socket says it would block.
///
/// A close or an error is final and reported once: a socket whose peer
/// closed stays readable (the read after the last data returns the end of
/// stream), as tokio keeps its "read closed" readiness.
#[derive(Debug, Clone, Copy)]
pub struct Readiness {
    readable: bool,
    writable: bool,
    read_closed: bool,
    write_closed: bool,
}

impl Readiness {
    /// A socket just registered: unknown, so both are tried once.
    pub const UNKNOWN: Readiness = Readiness {
        readable: true,
        writable: true,
        read_closed: false,
        write_closed: false,
    };

    /// Takes in what an event reported (closed and failed sockets are
    /// readable and writable for good: the next call returns what happened).
    pub fn update(&mut self, event: &mio::event::Event) {
        self.read_closed |= event.is_read_closed() || event.is_error();
        self.write_closed |= event.is_write_closed() || event.is_error();
        self.readable |= event.is_readable() || self.read_closed;
        self.writable |= event.is_writable() || self.write_closed;
    }

    /// The socket has nothing more to read until its next event.
    fn read_drained(&mut self) {
        self.readable = self.read_closed;
    }

    /// The socket takes nothing more until its next event.
    fn write_full(&mut self) {
        self.writable = self.write_closed;
    }
}

/// Socket calls one [`Relay::step`] may make before it yields to the other
/// sessions of the loop (tokio's per-task budget is 128 too): a session
/// streaming a large result to a fast client would otherwise keep the loop
/// for as long as the stream lasts.
///
/// [`Relay::step`]: super::super::relay::Relay::step
pub const BUDGET: u32 = 128;

/// One session's sockets and their readiness, for one [`Relay::step`].
///
/// [`Relay::step`]: super::super::relay::Relay::step
pub struct SocketIo<'a> {
    pub client: &'a mio::net::TcpStream,
    pub server: &'a mio::net::TcpStream,
    pub ready: &'a mut [Readiness; 2],
    /// Socket calls left in this step.
    pub budget: u32,
    /// The budget ran out while a socket was still ready: the loop steps
    /// the session again after the others had their turn (no event will
    /// come for readiness it already reported).
    pub exhausted: bool,
}

impl SocketIo<'_> {
    /// One session's I/O for a step, with a full budget.
    pub fn new<'a>(
        client: &'a mio::net::TcpStream,
        server: &'a mio::net::TcpStream,
        ready: &'a mut [Readiness; 2],
    ) -> SocketIo<'a> {
        SocketIo {
            client,
            server,
            ready,
            budget: BUDGET,
            exhausted: false,
        }
    }

    fn socket(&mut self, side: Side) -> (&mio::net::TcpStream, &mut Readiness) {
        match side {
            Side::Client => (self.client, &mut self.ready[0]),
            Side::Server => (self.server, &mut self.ready[1]),
        }
    }

    /// Takes one call from the budget; false (and `exhausted`) when none is left.
    fn spend(&mut self) -> bool {
        if self.budget == 0 {
            self.exhausted = true;
            return false;
        }
        self.budget -= 1;
        true
    }
}

impl RelayIo for SocketIo<'_> {
    fn read(&mut self, side: Side, _: &mut Stream, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        if !self.socket(side).1.readable || !self.spend() {
            return Poll::Pending;
        }
        let (socket, ready) = self.socket(side);
        loop {
            let room = buf.capacity() - buf.len();
            return match recv_into(socket, buf) {
                // A short read emptied the socket: the next arrival is a new
                // event (as tokio does, without the extra read for EAGAIN).
                Ok(n) if n > 0 && n < room => {
                    ready.read_drained();
                    Poll::Ready(Ok(n))
                }
                Ok(n) => Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready.read_drained();
                    Poll::Pending
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Poll::Ready(Err(e)),
            };
        }
    }

    fn write(&mut self, side: Side, _: &mut Stream, bytes: &[u8]) -> Poll<io::Result<usize>> {
        if !self.socket(side).1.writable || !self.spend() {
            return Poll::Pending;
        }
        let (socket, ready) = self.socket(side);
        loop {
            return match syscalls::send(socket.as_raw_fd(), bytes) {
                Ok(n) => {
                    if n < bytes.len() {
                        ready.write_full();
                    }
                    Poll::Ready(Ok(n))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready.write_full();
                    Poll::Pending
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Poll::Ready(Err(e)),
            };
        }
    }

    fn flush(&mut self, _: Side, _: &mut Stream) -> Poll<io::Result<()>> {
        // A plain socket's writes are in the kernel already.
        Poll::Ready(Ok(()))
    }
}

/// One `recv` into `buf`'s spare capacity, without zeroing it first (a
/// 16 KiB memset per read would cost more than the relay).
fn recv_into(socket: &mio::net::TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    // SAFETY: the spare capacity is memory this buffer owns, valid for
    // writes of `spare.len()` bytes.
    let n = unsafe { syscalls::recv(socket.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len())? };
    // SAFETY: the kernel initialized the first `n` bytes of the spare
    // capacity (n <= spare.len()).
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Interest, Token};
    use std::io::Write;
    use std::time::Duration;

    /// Data and the peer's close that arrive before one `epoll_wait` come
    /// as one event: after the short read of the data, the socket must stay
    /// readable so the end of stream is read (else the session hangs).
    #[test]
    fn a_close_that_came_with_the_data_is_still_read_after_a_short_read() {
        let (mut peer, ours) = syscalls::loopback_pair();
        let mut ours = mio::net::TcpStream::from_std(ours);
        let mut poll = mio::Poll::new().unwrap();
        poll.registry()
            .register(&mut ours, Token(0), Interest::READABLE | Interest::WRITABLE)
            .unwrap();
        peer.write_all(b"hello").unwrap();
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        std::thread::sleep(Duration::from_millis(50));

        let mut ready = [Readiness::UNKNOWN; 2];
        let mut events = Events::with_capacity(8);
        poll.poll(&mut events, Some(Duration::from_secs(5)))
            .unwrap();
        for event in events.iter() {
            ready[0].update(event);
        }
        let mut io = SocketIo::new(&ours, &ours, &mut ready);
        let mut buf = BytesMut::with_capacity(1024);
        let mut lent = Stream::Lent;
        let first = io.read(Side::Client, &mut lent, &mut buf);
        assert!(matches!(first, Poll::Ready(Ok(5))), "{first:?}");
        let second = io.read(Side::Client, &mut lent, &mut buf);
        assert!(
            matches!(second, Poll::Ready(Ok(0))),
            "the end of stream, not a wait for an event that will not come: {second:?}"
        );
    }
}

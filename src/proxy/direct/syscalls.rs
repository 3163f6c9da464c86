//! `recv` and `send` on the epoll relay's sockets as plain system calls.
//!
//! glibc's `recv` and `send` are thread-cancellation points: in a process
//! with more than one thread each call switches the caller to asynchronous
//! cancellation and back around the system call. The relay thread is never
//! cancelled (nothing in ddlguard calls `pthread_cancel`), so that is work
//! for nothing: about 125 instructions per relayed transaction, measured
//! with callgrind (`benches/README.md`). `syscall(2)` is no cancellation
//! point. Elsewhere the libc wrappers are used.

use std::io;
use std::os::fd::RawFd;

/// `recv(fd, buf, len, 0)`: the bytes read, or the OS error.
///
/// # Safety
/// `ptr` must be valid for writes of `len` bytes.
pub unsafe fn recv(fd: RawFd, ptr: *mut u8, len: usize) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    // SAFETY: recvfrom with no address writes at most `len` bytes at `ptr`
    // (valid by the caller's contract) and keeps no pointer.
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd,
            ptr,
            len,
            0,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    };
    #[cfg(not(target_os = "linux"))]
    // SAFETY: as above.
    let n = unsafe { libc::recv(fd, ptr.cast(), len, 0) as libc::c_long };
    byte_count(n)
}

/// `send(fd, bytes, MSG_NOSIGNAL)` (a closed peer is an error, not a
/// SIGPIPE, as in Rust's own `send`): the bytes taken, or the OS error.
pub fn send(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    // SAFETY: sendto with no address reads `bytes` and keeps no pointer.
    let n = unsafe {
        libc::syscall(
            libc::SYS_sendto,
            fd,
            bytes.as_ptr(),
            bytes.len(),
            libc::MSG_NOSIGNAL,
            std::ptr::null::<libc::sockaddr>(),
            0 as libc::socklen_t,
        )
    };
    #[cfg(not(target_os = "linux"))]
    // SAFETY: as above.
    let n = unsafe { libc::send(fd, bytes.as_ptr().cast(), bytes.len(), 0) as libc::c_long };
    byte_count(n)
}

/// A call's result: the byte count, or the OS error when it is negative.
fn byte_count(n: libc::c_long) -> io::Result<usize> {
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// A connected loopback pair for the relay's socket tests: the peer (a
/// blocking std socket) and ours, nonblocking.
#[cfg(test)]
pub(super) fn loopback_pair() -> (std::net::TcpStream, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (ours, _) = listener.accept().unwrap();
    ours.set_nonblocking(true).unwrap();
    (peer, ours)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn bytes_go_both_ways_and_errors_are_the_os_errors() {
        let (mut peer, ours) = loopback_pair();
        let fd = ours.as_raw_fd();

        let mut buf = [0u8; 16];
        // SAFETY: buf is valid for 16 bytes.
        let empty = unsafe { recv(fd, buf.as_mut_ptr(), buf.len()) };
        assert_eq!(empty.unwrap_err().kind(), io::ErrorKind::WouldBlock);

        peer.write_all(b"hello").unwrap();
        peer.flush().unwrap();
        let mut got = 0;
        for _ in 0..500 {
            // SAFETY: as above.
            match unsafe { recv(fd, buf.as_mut_ptr(), buf.len()) } {
                Ok(n) => {
                    got = n;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(2))
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(&buf[..got], b"hello");

        assert_eq!(send(fd, b"world").unwrap(), 5);
        let mut back = [0u8; 5];
        peer.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"world");

        // A peer that is gone: an error (EPIPE or ECONNRESET), no SIGPIPE.
        drop(peer);
        let mut failed = false;
        for _ in 0..100 {
            if send(fd, &[0u8; 1024]).is_err() {
                failed = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert!(failed, "sending to a closed peer kept succeeding");
    }
}

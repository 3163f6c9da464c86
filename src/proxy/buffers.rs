//! Read buffers lent to sessions while they have bytes in flight.
//!
//! An idle session (waiting for its client's next statement, the common
//! state of a pooled application connection) needs no buffer: the relay
//! gives its empty buffers back here before it waits, and takes one when a
//! socket has something to read. A thread-local stack keeps that to a pop
//! and a push on the hot path, no allocation, and keeps the memory of idle
//! sessions to their task and protocol state.

use bytes::BytesMut;
use std::cell::RefCell;

/// Size of a fresh buffer (a read takes at most what fits).
pub const CHUNK: usize = 16 * 1024;
/// Buffers larger than this (grown for a large message) are freed, not kept.
const MAX_KEPT: usize = 4 * CHUNK;
/// Buffers kept per thread; more are freed.
const MAX_POOLED: usize = 32;

thread_local! {
    static POOL: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for one read.
pub fn take() -> BytesMut {
    POOL.with(|p| p.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(CHUNK))
}

/// Gives an empty buffer back (a buffer that still holds bytes is kept by
/// its owner: this is only called on empty ones).
pub fn give(mut buf: BytesMut) {
    if !buf.is_empty() {
        return;
    }
    // Reclaims the space before the read position (no copy: it is empty).
    buf.reserve(CHUNK);
    if buf.capacity() > MAX_KEPT {
        return;
    }
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < MAX_POOLED {
            p.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_buffers_come_back_and_large_or_full_ones_do_not() {
        let mut a = take();
        assert!(a.capacity() >= CHUNK);
        a.extend_from_slice(b"hello");
        let _ = a.split_to(5);
        let ptr = a.as_ptr() as usize;
        give(a);
        let b = take();
        assert!(b.capacity() >= CHUNK && b.is_empty());
        assert!(
            (b.as_ptr() as usize).abs_diff(ptr) <= CHUNK,
            "the same allocation is reused"
        );
        let mut big = BytesMut::with_capacity(MAX_KEPT * 2);
        big.clear();
        let before = POOL.with(|p| p.borrow().len());
        give(big);
        assert_eq!(POOL.with(|p| p.borrow().len()), before, "too large to keep");
        let mut full = take();
        full.extend_from_slice(b"x");
        give(full);
        assert_eq!(POOL.with(|p| p.borrow().len()), before, "not empty");
    }
}

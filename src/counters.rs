//! Counters the relay bumps and `/metrics` reads: plain atomics with no
//! behaviour, below both the proxy that writes them and the admin surfaces
//! that read them.

use crossbeam_utils::CachePadded;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Counters exported in logs now and as metrics later.
#[derive(Default)]
pub struct Counters {
    /// Sessions accepted since start.
    pub sessions_total: AtomicU64,
    /// Sessions refused for `max_client_connections`.
    pub sessions_refused: AtomicU64,
    /// Client messages of a type the proxy does not know, relayed unchanged.
    pub unknown_client_messages: AtomicU64,
    /// Server messages of a type the proxy does not know, relayed unchanged.
    pub unknown_server_messages: AtomicU64,
    /// Sessions ended for a protocol violation by the client.
    pub protocol_violations: AtomicU64,
    /// Logins refused for a wrong password or an unknown user (28P01),
    /// checked by the proxy (`auth.mode = "proxy"`) or by the upstream.
    pub auth_failures: AtomicU64,
    /// Sessions relayed by an epoll loop now (`server.epoll_relay`): plain
    /// sessions in their relay phase; the others are on their tasks.
    pub epoll_sessions: AtomicU64,
}

/// Bytes relayed by all sessions, each way.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Bytes read from clients.
    pub from_clients: Striped,
    /// Bytes read from the upstream.
    pub from_server: Striped,
}

/// Stripes of a [`Striped`] counter: more than the threads that relay on
/// most machines (each worker has a runtime thread and an epoll relay).
const STRIPES: usize = 16;

/// Hands out stripes to threads in turn.
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's stripe of every [`Striped`] counter.
    static STRIPE: usize = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
}

/// A counter every worker thread adds to on every statement or read: one
/// cache line per stripe, each thread adding to its own, summed when read.
///
/// With one `AtomicU64`, each add on one worker takes the line away from
/// the others (an RMW on a line another core last wrote), a cost that
/// grows with the workers: what `server.worker_threads` must not pay per
/// transaction (issue 17, item 3). Reads (metrics) are rare and sum the
/// stripes; a sum read while threads add is a moment's value, as any
/// relaxed counter's is.
#[derive(Debug, Default)]
pub struct Striped {
    stripes: [CachePadded<AtomicU64>; STRIPES],
}

impl Striped {
    /// Adds `n` on this thread's stripe.
    pub fn add(&self, n: u64) {
        let i = STRIPE.with(|s| *s);
        self.stripes[i].fetch_add(n, Ordering::Relaxed);
    }

    /// The total.
    pub fn get(&self) -> u64 {
        self.stripes
            .iter()
            .fold(0u64, |sum, s| sum.wrapping_add(s.load(Ordering::Relaxed)))
    }
}

/// What the gates of all sessions did (for metrics).
#[derive(Debug, Default)]
pub struct GateStats {
    /// Statements handed to the judge.
    pub judged: AtomicU64,
    /// Statements forwarded with warnings.
    pub warned: AtomicU64,
    /// Statements refused.
    pub blocked: AtomicU64,
    /// Statements replaced by their safe sequence.
    pub rewritten: AtomicU64,
    /// Statements run under guarded execution.
    pub guarded: AtomicU64,
    /// Statements whose safe sequence was deferred until their transaction
    /// commits (`policy.in_transaction = "after-commit"`).
    pub deferred: AtomicU64,
    /// Blockers ended by `policy.terminate_idle_blockers_after`.
    pub terminated: AtomicU64,
    /// Guarded attempts that hit their lock timeout.
    pub lock_timeouts: AtomicU64,
    /// Guarded statements that waited in pre-flight for an old transaction.
    pub preflight_waits: AtomicU64,
    /// Policy findings by (rule id, action in force); rare, so a lock is fine.
    pub findings: std::sync::Mutex<std::collections::BTreeMap<(&'static str, &'static str), u64>>,
}

impl GateStats {
    /// Counts one finding of `rule` with `action` in force.
    pub fn finding(&self, rule: &'static str, action: &'static str) {
        let mut f = match self.findings.lock() {
            Ok(f) => f,
            Err(p) => p.into_inner(),
        };
        *f.entry((rule, action)).or_default() += 1;
    }

    /// The findings counted so far.
    pub fn findings(&self) -> Vec<((&'static str, &'static str), u64)> {
        let f = match self.findings.lock() {
            Ok(f) => f,
            Err(p) => p.into_inner(),
        };
        f.iter().map(|(k, v)| (*k, *v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_striped_counter_sums_what_every_thread_added() {
        let c = std::sync::Arc::new(Striped::default());
        let threads: Vec<_> = (0..20u64)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.add(t + 1);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        c.add(5);
        // 1000 * (1 + 2 + ... + 20) + 5
        assert_eq!(c.get(), 1000 * 210 + 5);
    }
}

//! Usage records held on an epoll relay thread and applied to the registry
//! in groups, with readers that never see them late.
//!
//! Recording one execution straight into the registry touches about twenty
//! cache lines shared by every session (two map shards, the entry, the
//! shape's histograms and minute slot, the statement-kind counters). At a
//! few sessions per wakeup those lines are cold again at every wakeup (the
//! clients and Postgres run on the same cores in between): measured as
//! +0.5 µs per `pgbench -S` transaction at 8 clients, all of tracking's
//! cost there (issue 17, `benches/README.md`). A relay thread instead holds
//! its executions in a small buffer grouped by (registry, client, shape)
//! and applies a group in one pass: at most every [`MAX_AGE_MS`] of
//! recorded time or [`MAX_HELD`] executions, when the loop stops, and
//! whenever a reader asks.
//!
//! **Readers never lag.** Every reading method of the registry first calls
//! [`settle`]. A loop raises its `holding` flag before it holds its first
//! execution, which is before the client can see that statement's
//! ReadyForQuery; a reader that finds the flag raised asks the loop to
//! apply what it holds, wakes it, and waits until it has (bounded by
//! [`SETTLE_LIMIT`]; a loop answers at the end of its current batch).
//! Threads that hold nothing (session tasks, tests) record directly.

use super::runs::Runs;
use super::{ClientId, UsageRegistry};
use crate::analysis::Analysis;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// Held executions are applied once they span this much recorded time.
pub const MAX_AGE_MS: u64 = 1000;
/// Held executions are applied once there are this many.
pub const MAX_HELD: usize = 4096;
/// Held (client, shape) sums are applied once there are this many: a new
/// one is looked for among them at every execution, and a workload of
/// many distinct shapes must not make that search long.
pub const MAX_GROUPS: usize = 64;
/// How long a reader waits for a loop to apply what it holds before it
/// reads without (a loop stuck this long has bigger problems).
pub const SETTLE_LIMIT: Duration = Duration::from_millis(200);

/// One finished execution, as the registry records it.
#[derive(Debug, Clone, Copy)]
pub struct Execution {
    /// Time from the statement's sending to its answer, µs.
    pub latency_us: u64,
    /// Its SQLSTATE if it failed.
    pub error: Option<[u8; 5]>,
    /// When it finished, ms since the Unix epoch.
    pub at_ms: u64,
}

/// The held executions of one client running one shape, summed.
struct Group {
    usage: Arc<UsageRegistry>,
    client: ClientId,
    client_id: u64,
    analysis: Arc<Analysis>,
    runs: Runs,
}

/// The handshake between one holding thread and the readers.
struct LoopFlag {
    /// The thread holds executions not yet applied.
    holding: AtomicBool,
    /// Readers' requests to apply them, counted.
    requested: AtomicU64,
    /// The last request answered.
    done: AtomicU64,
    /// Wakes the thread (it may be waiting for events).
    wake: Box<dyn Fn() + Send + Sync>,
    thread: ThreadId,
}

/// What a holding thread holds.
struct Holder {
    flag: Arc<LoopFlag>,
    groups: Vec<Group>,
    held: usize,
    /// Recorded time of the oldest and the newest held execution.
    oldest_ms: u64,
    newest_ms: u64,
    /// The registries whose readers know this thread.
    known: Vec<Weak<UsageRegistry>>,
}

/// The threads that have held executions for one registry: the ones its
/// readers settle with.
#[derive(Default)]
pub struct Holders(Mutex<Vec<Weak<LoopFlag>>>);

impl Holders {
    fn add(&self, flag: &Arc<LoopFlag>) {
        let mut flags = self.0.lock().unwrap_or_else(|e| e.into_inner());
        flags.retain(|w| w.strong_count() > 0);
        flags.push(Arc::downgrade(flag));
    }

    fn live(&self) -> Vec<Arc<LoopFlag>> {
        let flags = self.0.lock().unwrap_or_else(|e| e.into_inner());
        flags.iter().filter_map(Weak::upgrade).collect()
    }
}

thread_local! {
    static HOLDER: RefCell<Option<Holder>> = const { RefCell::new(None) };
}

/// The current thread holds usage records until dropped (then it applies
/// what it holds). `wake` must make the thread call [`end_of_batch`] soon
/// even when it is idle: the epoll relay passes its waker.
pub struct Holding {
    /// Dropped on the thread it was made on.
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Makes the current thread a holding one (see the module doc).
pub fn hold_on_this_thread(wake: impl Fn() + Send + Sync + 'static) -> Holding {
    let flag = Arc::new(LoopFlag {
        holding: AtomicBool::new(false),
        requested: AtomicU64::new(0),
        done: AtomicU64::new(0),
        wake: Box::new(wake),
        thread: std::thread::current().id(),
    });
    HOLDER.with(|h| {
        *h.borrow_mut() = Some(Holder {
            flag: flag.clone(),
            groups: Vec::new(),
            held: 0,
            oldest_ms: 0,
            newest_ms: 0,
            known: Vec::new(),
        })
    });
    Holding {
        _not_send: std::marker::PhantomData,
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        let holder = HOLDER.with(|h| h.borrow_mut().take());
        if let Some(mut holder) = holder {
            holder.apply();
        }
    }
}

/// Records an execution: held when the current thread holds records,
/// else straight into `usage`.
///
/// By reference: a sum keeps its own clones, made once per (client,
/// shape, minute). Both are shared by every worker thread's sessions of
/// that client and shape, so a clone per execution would write their
/// reference counts' cache lines from every thread.
pub fn record(
    usage: &Arc<UsageRegistry>,
    client: &ClientId,
    analysis: &Arc<Analysis>,
    run: Execution,
) {
    let held = HOLDER.with(|h| match h.try_borrow_mut() {
        Ok(mut h) => match h.as_mut() {
            Some(holder) => {
                holder.hold(usage, client, analysis, run);
                true
            }
            None => false,
        },
        Err(_) => false,
    });
    if !held {
        usage.record_at(client, analysis, run.latency_us, run.error, run.at_ms);
    }
}

/// Called by a holding thread between batches of work: applies what it
/// holds when a reader asked, or when it is old or large enough.
pub fn end_of_batch() {
    HOLDER.with(|h| {
        if let Ok(mut h) = h.try_borrow_mut() {
            if let Some(holder) = h.as_mut() {
                holder.end_of_batch();
            }
        }
    });
}

/// Applies to `usage` every execution any thread held for it before this
/// call (see the module doc); the registry's readers call it first.
pub fn settle(usage: &UsageRegistry) {
    let me = std::thread::current().id();
    for flag in usage.holders.live() {
        if flag.thread == me {
            apply_own();
            continue;
        }
        if !flag.holding.load(Ordering::SeqCst) {
            continue;
        }
        let want = flag.requested.fetch_add(1, Ordering::SeqCst) + 1;
        (flag.wake)();
        wait_for(&flag, want);
    }
}

/// Waits until `flag`'s thread answered request `want` or holds nothing.
fn wait_for(flag: &LoopFlag, want: u64) {
    let answered =
        || flag.done.load(Ordering::Acquire) >= want || !flag.holding.load(Ordering::Acquire);
    let start = Instant::now();
    let mut spins = 0u32;
    while !answered() {
        // A holding thread that reads must not wait on another that waits
        // on it: it answers requests made to it meanwhile.
        end_of_batch();
        if start.elapsed() >= SETTLE_LIMIT {
            tracing::warn!(
                "a relay thread did not apply its held usage records within {SETTLE_LIMIT:?}; \
                 this report may miss its latest executions"
            );
            return;
        }
        spins += 1;
        if spins < 64 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

/// Applies what the current thread holds, if it holds records.
fn apply_own() {
    HOLDER.with(|h| {
        if let Ok(mut h) = h.try_borrow_mut() {
            if let Some(holder) = h.as_mut() {
                let asked = holder.flag.requested.load(Ordering::Acquire);
                holder.apply();
                holder.flag.done.store(asked, Ordering::Release);
            }
        }
    });
}

impl Holder {
    fn hold(
        &mut self,
        usage: &Arc<UsageRegistry>,
        client: &ClientId,
        analysis: &Arc<Analysis>,
        run: Execution,
    ) {
        let client_id = client.id();
        let fp = analysis.fingerprint.id;
        // Newest first: a thread's sessions mostly run what ran last.
        let found = self.groups.iter_mut().rev().find(|g| {
            g.client_id == client_id
                && g.analysis.fingerprint.id == fp
                && Arc::ptr_eq(&g.usage, usage)
        });
        match found {
            Some(group) if group.runs.takes(run.at_ms) => {
                group.runs.add(run.latency_us, run.error, run.at_ms)
            }
            Some(group) => {
                // A new minute: the last one's sums go now.
                let done = std::mem::replace(
                    &mut group.runs,
                    Runs::one(run.latency_us, run.error, run.at_ms),
                );
                group.usage.add_runs(&group.client, &group.analysis, &done);
            }
            None => {
                if self.groups.len() >= MAX_GROUPS {
                    self.apply();
                }
                if !self
                    .known
                    .iter()
                    .any(|k| k.strong_count() > 0 && std::ptr::eq(k.as_ptr(), &**usage))
                {
                    // Once per registry: its readers now settle with us.
                    usage.holders.add(&self.flag);
                    self.known.retain(|k| k.strong_count() > 0);
                    self.known.push(Arc::downgrade(usage));
                }
                self.groups.push(Group {
                    usage: usage.clone(),
                    client: client.clone(),
                    client_id,
                    analysis: analysis.clone(),
                    runs: Runs::one(run.latency_us, run.error, run.at_ms),
                })
            }
        }
        if self.held == 0 {
            // Raised before the client can see this statement's answer:
            // a reader that starts after that sees it.
            self.flag.holding.store(true, Ordering::SeqCst);
            self.oldest_ms = run.at_ms;
            self.newest_ms = run.at_ms;
        }
        self.held += 1;
        self.oldest_ms = self.oldest_ms.min(run.at_ms);
        self.newest_ms = self.newest_ms.max(run.at_ms);
    }

    fn end_of_batch(&mut self) {
        if self.held == 0 {
            return;
        }
        let asked = self.flag.requested.load(Ordering::Acquire);
        if asked != self.flag.done.load(Ordering::Relaxed)
            || self.held >= MAX_HELD
            || self.newest_ms.saturating_sub(self.oldest_ms) >= MAX_AGE_MS
        {
            self.apply();
            self.flag.done.store(asked, Ordering::Release);
        }
    }

    /// Applies every held group to its registry.
    fn apply(&mut self) {
        if self.held == 0 {
            return;
        }
        // The groups go too: a group keeps its client interned and its
        // analysis alive, and the next hold makes a new one.
        for group in self.groups.drain(..) {
            group
                .usage
                .add_runs(&group.client, &group.analysis, &group.runs);
        }
        self.held = 0;
        self.flag.holding.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Analyzer;
    use crate::usage::identity::test_identity as who;
    use std::sync::mpsc;

    fn run(at_ms: u64) -> Execution {
        Execution {
            latency_us: 10,
            error: None,
            at_ms,
        }
    }

    fn applied(reg: &UsageRegistry) -> usize {
        reg.len.load(Ordering::Relaxed)
    }

    #[test]
    fn a_reader_wakes_the_holding_thread_and_sees_its_executions() {
        let reg = Arc::new(UsageRegistry::new(100));
        let analysis = Analyzer::new(16).analyze("SELECT a FROM t WHERE id = 1");
        let (woken_tx, woken) = mpsc::channel::<()>();
        let (held_tx, held_rx) = mpsc::channel::<()>();
        let (stop_tx, stop) = mpsc::channel::<()>();
        let holder = {
            let (reg, analysis) = (reg.clone(), analysis.clone());
            std::thread::spawn(move || {
                let _holding = hold_on_this_thread(move || {
                    let _ = woken_tx.send(());
                });
                let client = reg.client_id(&who("app"), "");
                record(&reg, &client, &analysis, run(1_000));
                record(&reg, &client, &analysis, run(1_001));
                // Nobody asked and it is young: still held.
                end_of_batch();
                held_tx.send(()).unwrap();
                // The loop: a wakeup, then the end of its batch.
                loop {
                    match woken.recv_timeout(Duration::from_millis(10)) {
                        Ok(()) => end_of_batch(),
                        Err(_) if stop.try_recv().is_ok() => return,
                        Err(_) => {}
                    }
                }
            })
        };
        held_rx.recv().unwrap();
        assert_eq!(applied(&reg), 0, "held, not applied yet");
        let rows = reg.statements();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].calls, 2);
        assert_eq!(rows[0].last_seen_ms, 1_001);
        assert_eq!(reg.stats().recorded, 2);
        stop_tx.send(()).unwrap();
        holder.join().unwrap();
    }

    #[test]
    fn a_thread_that_holds_nothing_records_directly() {
        let reg = Arc::new(UsageRegistry::new(100));
        let analysis = Analyzer::new(16).analyze("SELECT 1");
        let client = reg.client_id(&who("app"), "");
        record(&reg, &client, &analysis, run(5));
        assert_eq!(applied(&reg), 1);
    }

    #[test]
    fn held_executions_are_applied_when_old_enough_or_when_holding_ends() {
        let reg = Arc::new(UsageRegistry::new(100));
        let analyzer = Analyzer::new(16);
        let (a, b) = (
            analyzer.analyze("SELECT 1"),
            analyzer.analyze("SELECT x FROM t"),
        );
        let on_thread = reg.clone();
        let counts = std::thread::spawn(move || {
            let reg = on_thread;
            let holding = hold_on_this_thread(|| {});
            let client = reg.client_id(&who("app"), "");
            record(&reg, &client, &a, run(10_000));
            record(&reg, &client, &a, run(10_000 + MAX_AGE_MS - 1));
            end_of_batch();
            let young = applied(&reg);
            record(&reg, &client, &b, run(10_000 + MAX_AGE_MS));
            end_of_batch();
            let old = applied(&reg);
            record(&reg, &client, &b, run(20_000));
            end_of_batch();
            let again = reg.stats().recorded;
            drop(holding);
            (young, old, again, reg.stats().recorded)
        })
        .join()
        .unwrap();
        // The thread's own reads apply what it holds (it cannot wake itself).
        assert_eq!(counts, (0, 2, 4, 4));
        let calls: u64 = reg.statements().iter().map(|r| r.calls).sum();
        assert_eq!(calls, 4);
    }

    #[test]
    fn held_and_applied_is_what_recording_one_by_one_gives() {
        let analyzer = Analyzer::new(16);
        let shapes = [
            analyzer.analyze("SELECT a FROM t WHERE id = 1"),
            analyzer.analyze("UPDATE t SET a = 2 WHERE id = 3"),
        ];
        let t0 = 5_000 * 60_000 + 58_000;
        // Two clients, two shapes, errors, three minutes, some out of order.
        let runs: Vec<(usize, usize, Execution)> = (0..400u64)
            .map(|i| {
                let at_ms = t0 + i * 300 - if i % 7 == 0 { 900 } else { 0 };
                let error = (i % 11 == 0).then_some(if i % 2 == 0 { *b"42703" } else { *b"40001" });
                let run = Execution {
                    latency_us: (i * 37) % 5_000 + 1,
                    error,
                    at_ms,
                };
                ((i % 2) as usize, (i % 3 % 2) as usize, run)
            })
            .collect();
        let direct = Arc::new(UsageRegistry::new(100));
        let held = Arc::new(UsageRegistry::new(100));
        let apps = ["a", "b"];
        for &(c, s, run) in &runs {
            let client = direct.client_id(&who(apps[c]), "");
            direct.record_at(&client, &shapes[s], run.latency_us, run.error, run.at_ms);
        }
        {
            let (held, shapes, runs) = (held.clone(), shapes.clone(), runs.clone());
            std::thread::spawn(move || {
                let _holding = hold_on_this_thread(|| {});
                for (c, s, run) in runs {
                    let client = held.client_id(&who(apps[c]), "");
                    record(&held, &client, &shapes[s], run);
                }
            })
            .join()
            .unwrap();
        }
        let sorted = |reg: &UsageRegistry| {
            let mut rows: Vec<String> = reg.statements().iter().map(|r| format!("{r:?}")).collect();
            rows.sort();
            rows
        };
        assert_eq!(sorted(&held), sorted(&direct));
        let now = t0 + 10 * 60_000;
        for shape in &shapes {
            let fp = shape.fingerprint.id;
            assert_eq!(
                format!("{:?}", held.latency(fp)),
                format!("{:?}", direct.latency(fp))
            );
        }
        let minutes = |reg: &UsageRegistry| {
            let mut m = reg.recent_latencies(now);
            m.sort_by_key(|(fp, _)| *fp);
            format!("{m:?}")
        };
        assert_eq!(minutes(&held), minutes(&direct));
        assert_eq!(held.kind_counts(), direct.kind_counts());
        let errors = |reg: &UsageRegistry| {
            let mut e: Vec<String> = reg
                .errors_since(0)
                .iter()
                .map(|r| format!("{r:?}"))
                .collect();
            e.sort();
            e
        };
        assert_eq!(errors(&held), errors(&direct));
        assert_eq!(held.stats().recorded, 400);
        assert_eq!(held.memory_bytes(), direct.memory_bytes());
    }

    #[test]
    fn many_shapes_at_once_are_applied_in_bounded_groups() {
        let reg = Arc::new(UsageRegistry::new(1_000));
        let analyzer = Analyzer::new(256);
        let shapes: Vec<_> = (0..150)
            .map(|i| analyzer.analyze(&format!("SELECT c{i} FROM t")))
            .collect();
        let on_thread = reg.clone();
        let (held_groups, applied_before_end) = std::thread::spawn(move || {
            let reg = on_thread;
            let _holding = hold_on_this_thread(|| {});
            let client = reg.client_id(&who("app"), "");
            for shape in shapes {
                record(&reg, &client, &shape, run(1_000));
            }
            let groups = HOLDER.with(|h| h.borrow().as_ref().map_or(0, |h| h.groups.len()));
            (groups, applied(&reg))
        })
        .join()
        .unwrap();
        assert!(held_groups <= MAX_GROUPS, "{held_groups} groups held");
        assert_eq!(applied_before_end, 150 - held_groups);
        assert_eq!(reg.stats().recorded, 150);
    }
}

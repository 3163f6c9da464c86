//! Session threads for `server.worker_threads` > 1: each worker is an OS
//! thread with its own single-thread tokio runtime, and a session lives on
//! one worker for its whole life. Nothing is stolen or moved between
//! threads, so each session's relay costs what it costs on one thread, and
//! more threads add throughput without adding CPU per transaction (a
//! work-stealing runtime pays for its cross-thread wakeups on every
//! message). The acceptor hands each new connection to the worker with the
//! fewest sessions. With `server.epoll_relay`, each worker has an epoll
//! relay thread of its own (`ddlguard-relay-N`, see `proxy::direct`) that
//! relays its plain sessions.

use super::session;
use super::shared::{SessionGuard, Shared};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::warn;

/// A connection handed to a worker.
struct Job {
    tcp: std::net::TcpStream,
    peer: SocketAddr,
    guard: SessionGuard,
}

/// One worker: where to send it connections, and how many it runs.
struct Worker {
    jobs: mpsc::UnboundedSender<Job>,
    sessions: Arc<AtomicUsize>,
}

/// The session threads.
pub struct Workers {
    workers: Vec<Worker>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Decrements a worker's session count when its session ends.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Workers {
    /// Starts `n` worker threads (0: one per CPU core).
    pub fn start(n: usize, shared: &Arc<Shared>) -> io::Result<Workers> {
        let n = if n == 0 {
            std::thread::available_parallelism().map_or(1, |c| c.get())
        } else {
            n
        };
        let mut workers = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let (jobs, mut rx) = mpsc::unbounded_channel::<Job>();
            let sessions = Arc::new(AtomicUsize::new(0));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let shared = shared.clone();
            let count = sessions.clone();
            let thread = std::thread::Builder::new()
                .name(format!("ddlguard-worker-{i}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        // Started on this runtime: what its sessions' relay
                        // spawns runs here.
                        let direct =
                            super::direct::start_for(&shared, &format!("ddlguard-relay-{i}"));
                        // Ends when the acceptor is gone, which is after the
                        // sessions have drained (see `Server::run`).
                        while let Some(job) = rx.recv().await {
                            let tcp = match tokio::net::TcpStream::from_std(job.tcp) {
                                Ok(tcp) => tcp,
                                Err(e) => {
                                    warn!("cannot adopt an accepted connection: {e}");
                                    count.fetch_sub(1, Ordering::Relaxed);
                                    continue;
                                }
                            };
                            let counted = Counted(count.clone());
                            let shared = shared.clone();
                            let direct = direct.clone();
                            tokio::spawn(async move {
                                session::run(tcp, job.peer, shared, job.guard, direct).await;
                                drop(counted);
                            });
                        }
                    })
                })?;
            workers.push(Worker { jobs, sessions });
            threads.push(thread);
        }
        Ok(Workers { workers, threads })
    }

    /// Hands an accepted connection to the worker with the fewest sessions.
    pub fn dispatch(&self, tcp: tokio::net::TcpStream, peer: SocketAddr, guard: SessionGuard) {
        let Some(worker) = self
            .workers
            .iter()
            .min_by_key(|w| w.sessions.load(Ordering::Relaxed))
        else {
            return;
        };
        let tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(e) => {
                warn!("cannot hand a connection to a worker: {e}");
                return;
            }
        };
        worker.sessions.fetch_add(1, Ordering::Relaxed);
        if worker.jobs.send(Job { tcp, peer, guard }).is_err() {
            worker.sessions.fetch_sub(1, Ordering::Relaxed);
            warn!("a session worker has stopped; connection dropped");
        }
    }

    /// Lets the workers end: each finishes when it has no more
    /// connections to take (called after the sessions have drained).
    pub fn stop(self) {
        drop(self.workers);
        drop(self.threads);
    }
}

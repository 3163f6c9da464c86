//! Starting server processes that die with the test process.
//!
//! Processes are spawned from one long-lived thread with `PR_SET_PDEATHSIG`,
//! so a test binary that panics, is killed or simply ends never leaves a
//! Postgres behind. (The signal fires when the spawning *thread* exits, hence
//! the dedicated thread that lives as long as the process.)

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

type Request = (Command, mpsc::Sender<io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<Request>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("pg-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                // Keep the thread (the children's parent) alive until exit.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawner thread");
        Mutex::new(tx)
    })
}

/// Spawns `cmd` so that it receives `signal` when the test process ends.
pub fn spawn_tied(mut cmd: Command, signal: i32) -> io::Result<Child> {
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .unwrap()
        .send((cmd, tx))
        .map_err(|_| io::Error::other("spawner thread gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("spawner thread gone"))?
}

/// The uid/gid of the `postgres` OS user, when the tests run as root
/// (Postgres refuses to run as root).
pub fn postgres_user() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"postgres") && f.len() > 3)
        .unwrap_or_else(|| {
            panic!("tests run as root, and Postgres refuses root: create a `postgres` OS user (apt-get install postgresql does) or run the tests as another user")
        });
    Some((entry[2].parse().unwrap(), entry[3].parse().unwrap()))
}

/// Applies `postgres_user()` to a command.
pub fn as_postgres(cmd: &mut Command) {
    if let Some((uid, gid)) = postgres_user() {
        cmd.uid(uid).gid(gid);
    }
}

/// Gives `path` to the `postgres` OS user when running as root.
pub fn chown_to_postgres(path: &std::path::Path) {
    if let Some((uid, gid)) = postgres_user() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown to postgres");
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

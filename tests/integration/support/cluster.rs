//! A throwaway Postgres cluster per test binary (DESIGN section 8): initdb into
//! a temp dir, a free port, fsync off, TLS on with a generated certificate,
//! run as the `postgres` OS user when the tests run as root, and stopped when
//! the tests end, also on panic.

use super::certs::TestCerts;
use super::pg_bin::bin_dir;
use super::spawn::{as_postgres, chown_to_postgres, free_port, spawn_tied};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Login roles created in every cluster, one per authentication method.
pub const MD5_USER: (&str, &str) = ("md5user", "md5 secret");
/// See [`MD5_USER`].
pub const SCRAM_USER: (&str, &str) = ("scramuser", "scram secret");
/// See [`MD5_USER`].
pub const PASSWORD_USER: (&str, &str) = ("pwuser", "plain secret");

const HBA: &str = "\
local all all trust
host all md5user 127.0.0.1/32 md5
host all scramuser 127.0.0.1/32 scram-sha-256
host all pwuser 127.0.0.1/32 password
host all all 127.0.0.1/32 trust
host all all ::1/128 trust
";

/// One running (or stopped) test cluster.
pub struct Cluster {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// The cluster's folder (data dir, socket, certificates, log).
    pub dir: PathBuf,
    /// The server's TLS material (ssl = on).
    pub certs: TestCerts,
    bin: PathBuf,
    child: Mutex<Option<Child>>,
}

impl Cluster {
    /// The cluster shared by all tests of this binary.
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        SHARED.get_or_init(|| Cluster::start_new("shared"))
    }

    /// A private cluster, for tests that stop or restart it.
    pub fn start_new(name: &str) -> Cluster {
        Cluster::start_with_hba(name, HBA)
    }

    /// A private cluster with its own `pg_hba.conf` (e.g. `hostssl` lines).
    pub fn start_with_hba(name: &str, hba: &str) -> Cluster {
        let bin = bin_dir();
        remove_stale_dirs();
        let base = std::env::temp_dir().join(format!(
            "ddlguard-test-{}-{}-{}",
            std::process::id(),
            name,
            free_port()
        ));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let certs = TestCerts::generate(&base.join("tls"), "postgres");
        for p in [&base, &base.join("tls"), &certs.key, &certs.cert, &certs.ca] {
            chown_to_postgres(p);
        }
        let data = base.join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_postgres(&mut initdb);
        let out = initdb.output().expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        let cluster = Cluster {
            port: free_port(),
            dir: base,
            certs,
            bin,
            child: Mutex::new(None),
        };
        cluster.start();
        cluster.psql_admin(&format!(
            "SET password_encryption = 'md5'; CREATE ROLE {} LOGIN PASSWORD '{}';
             SET password_encryption = 'scram-sha-256'; CREATE ROLE {} LOGIN PASSWORD '{}';
             CREATE ROLE {} LOGIN PASSWORD '{}';",
            MD5_USER.0, MD5_USER.1, SCRAM_USER.0, SCRAM_USER.1, PASSWORD_USER.0, PASSWORD_USER.1
        ));
        cluster
    }

    /// Starts the postmaster and waits until it accepts connections.
    pub fn start(&self) {
        let mut child = self.child.lock().unwrap();
        assert!(child.is_none(), "cluster already running");
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=400"])
            .args(["-c", "shared_buffers=64MB", "-c", "ssl=on"])
            .arg("-c")
            .arg(format!("ssl_cert_file={}", self.certs.cert.display()))
            .arg("-c")
            .arg(format!("ssl_key_file={}", self.certs.key.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(self.dir.join("postgres.log"))
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            );
        as_postgres(&mut cmd);
        // SIGINT = fast shutdown when this test process goes away.
        *child = Some(spawn_tied(cmd, libc::SIGINT).expect("start postgres"));
        drop(child);
        self.wait_ready();
    }

    /// Fast shutdown (SIGINT), waiting for the postmaster to exit.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            unsafe {
                libc::kill(child.id() as i32, libc::SIGINT);
            }
            let _ = child.wait();
        }
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .expect("run pg_isready");
            if status.success() {
                return;
            }
            if let Some(child) = self.child.lock().unwrap().as_mut() {
                if let Ok(Some(exit)) = child.try_wait() {
                    panic!(
                        "postgres exited with {exit} during startup; log:\n{}",
                        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
                    );
                }
            }
            assert!(Instant::now() < deadline, "postgres did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Path of a client program next to the server (`psql`, `pgbench`).
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bin.join(name)
    }

    /// Runs SQL directly as the superuser through psql, panicking on error.
    pub fn psql_admin(&self, sql: &str) -> String {
        run_psql(
            &self.tool("psql"),
            "127.0.0.1",
            self.port,
            "postgres",
            "postgres",
            sql,
        )
    }

    /// Creates a database for one test and returns its name.
    pub fn create_db(&self, name: &str) -> String {
        self.psql_admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        self.psql_admin(&format!("CREATE DATABASE {name}"));
        name.to_string()
    }

    /// tokio-postgres connection string, direct to the cluster.
    pub fn direct_conn(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db} sslmode=disable",
            self.port
        )
    }
}

/// Runs psql with `-v ON_ERROR_STOP=1 -XAt`, panicking with its stderr on failure.
pub fn run_psql(psql: &Path, host: &str, port: u16, user: &str, db: &str, sql: &str) -> String {
    let out = Command::new(psql)
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", host, "-p", &port.to_string(), "-U", user, "-d", db])
        .args(["-c", sql])
        .env("PGSSLMODE", "disable")
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql failed for {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Removes the folders of earlier test runs whose process is gone.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(rest) = name.strip_prefix("ddlguard-test-") else {
            continue;
        };
        let pid: i32 = rest
            .split('-')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let alive = pid > 0 && unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

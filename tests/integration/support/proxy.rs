//! Starting ddlguard against a test cluster: in process (most tests) or as
//! the real binary (command line, signals).

use super::cluster::Cluster;
use ddlguard::config::{Config, UpstreamTls};
use ddlguard::proxy::{Server, ServerHandle};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_postgres::{Client, NoTls};

/// A proxy running inside the test's runtime.
pub struct TestProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Reload and shutdown.
    pub handle: ServerHandle,
    /// The accept loop; ends after shutdown.
    pub task: tokio::task::JoinHandle<()>,
    /// The HTTP API, when the test turned it on.
    pub http: Option<SocketAddr>,
}

/// The configuration tests start from: a free port, the given cluster,
/// upstream TLS as shipped (`prefer`, and the cluster has ssl = on).
pub fn test_config(cluster: &Cluster) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.upstream.port = cluster.port;
    // Plain upstream: sessions take the epoll relay, the path plain sessions
    // take in production (TLS ones stay on their tasks); the TLS tests set
    // their own mode, and `relay::over_tls_upstream_*` runs the relay over TLS.
    config.upstream.tls = UpstreamTls::Disable;
    // Tests that want a persistent store set one; none writes into the repo.
    config.usage.store = ddlguard::usage::store::StoreSpec::Memory;
    // No fixed HTTP port shared by parallel tests; report tests turn it on.
    config.admin.http_listen = None;
    config
}

impl TestProxy {
    /// Starts a proxy in front of `cluster` with the test configuration.
    pub async fn start(cluster: &Cluster) -> TestProxy {
        TestProxy::start_with(cluster, |_| {}).await
    }

    /// Starts a proxy after `adjust` has changed the test configuration.
    pub async fn start_with(cluster: &Cluster, adjust: impl FnOnce(&mut Config)) -> TestProxy {
        if let Ok(level) = std::env::var("DDLGUARD_TEST_LOG") {
            ddlguard::logging::init(&level);
        }
        let mut config = test_config(cluster);
        adjust(&mut config);
        let server = Server::bind(config).await.expect("bind proxy");
        let addr = server.local_addr().unwrap();
        let http = server.http_addr();
        let handle = server.handle();
        let task = tokio::spawn(server.run());
        TestProxy {
            addr,
            handle,
            task,
            http,
        }
    }

    /// tokio-postgres connection string through the proxy.
    pub fn conn(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db} sslmode=disable",
            self.addr.port()
        )
    }

    /// The value of the `/metrics` line that starts with `line` (name,
    /// labels and the space before the value).
    pub fn metric(&self, line: &str) -> Option<u64> {
        let metrics = ddlguard::admin::metrics::render(&self.handle).unwrap();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line))
            .and_then(|n| n.trim().parse().ok())
    }

    /// Connects through the proxy as the superuser.
    pub async fn connect(&self, db: &str) -> Client {
        connect(&self.conn(db)).await
    }
}

/// Connects with tokio-postgres (no TLS) and drives the connection in a task.
pub async fn connect(conn: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(conn, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {conn}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// The real `ddlguard` binary, started with a configuration file.
pub struct BinProxy {
    /// The child process.
    pub child: Child,
    /// Its listen port.
    pub port: u16,
    /// The configuration file it was started with.
    pub config_path: PathBuf,
    /// Where its stderr goes.
    pub log_path: PathBuf,
}

impl BinProxy {
    /// Path of the built binary.
    pub fn exe() -> &'static str {
        env!("CARGO_BIN_EXE_ddlguard")
    }

    /// Writes `config_text` to a file in `dir` and starts `ddlguard serve`,
    /// waiting until it accepts connections.
    pub fn spawn(dir: &std::path::Path, port: u16, config_text: &str) -> BinProxy {
        std::fs::create_dir_all(dir).unwrap();
        let config_path = dir.join("proxy.toml");
        std::fs::write(&config_path, config_text).unwrap();
        let log_path = dir.join("ddlguard.log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(Self::exe())
            .args(["serve", "--config"])
            .arg(&config_path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start ddlguard");
        let proxy = BinProxy {
            child,
            port,
            config_path,
            log_path,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "ddlguard did not start: {}",
                proxy.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        proxy
    }

    /// What the proxy logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }
}

impl Drop for BinProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

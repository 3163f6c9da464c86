//! `ddlguard` command line: a thin layer over the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use ddlguard::config::Config;
use ddlguard::proxy::Server;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

#[derive(Parser)]
#[command(
    name = "ddlguard",
    version,
    about = "Postgres proxy that records schema usage and guards DDL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Serve(ConfigArg),
    /// Validate the configuration file and print the effective settings.
    CheckConfig(ConfigArg),
    /// Ask a running proxy about usage.
    Report {
        /// The proxy's HTTP address ([admin] http_listen).
        #[arg(long, default_value = "127.0.0.1:9187")]
        http: String,
        #[command(subcommand)]
        what: ReportCommand,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Clients that depended on TABLE[.COLUMN] (or SCHEMA.TABLE.COLUMN) within the window.
    Dependents {
        /// `users`, `users.email` or `billing.invoices.amount`.
        target: String,
        /// How far back to look, e.g. 1h, 7d (default: the proxy's [usage] window).
        #[arg(long)]
        since: Option<String>,
        /// Print the JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct ConfigArg {
    /// Configuration file (default: $DDLGUARD_CONFIG, else ./proxy.toml).
    #[arg(long, short)]
    config: Option<PathBuf>,
}

impl ConfigArg {
    fn path(&self) -> PathBuf {
        self.config
            .clone()
            .or_else(|| std::env::var_os("DDLGUARD_CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("proxy.toml"))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig(arg) => match ddlguard::proxy::load_config(&arg.path()) {
            Ok(config) => {
                println!("# {}: ok", arg.path().display());
                print!("{}", config.to_toml());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Report { http, what } => match what {
            ReportCommand::Dependents {
                target,
                since,
                json,
            } => match report_dependents(&http, &target, since.as_deref(), json) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            },
        },
        Command::Serve(arg) => {
            let path = arg.path();
            let config = match ddlguard::proxy::load_config(&path) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let threads = config.server.worker_threads;
            let runtime = if threads == 1 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            } else {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                if threads > 1 {
                    b.worker_threads(threads);
                }
                b.enable_all().build()
            };
            let runtime = match runtime {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(path, config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e:#}");
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(path: PathBuf, config: Config) -> anyhow::Result<()> {
    let log = ddlguard::logging::init(&config.log.level);
    let server = Server::bind(config).await.context("starting ddlguard")?;
    let handle = server.handle();
    handle.set_config_file(
        path.clone(),
        Box::new(move |level: &str| log.set_level(level)),
    );
    let mut hup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let run = tokio::spawn(server.run());
    let mut stopping = false;
    let signals = async {
        loop {
            tokio::select! {
                _ = hup.recv() => match handle.reload_from_file() {
                    Ok(restart) => {
                        info!(file = %path.display(), "configuration reloaded");
                        for key in restart {
                            warn!("{key} changed: takes effect after a restart");
                        }
                    }
                    Err(e) => error!("reload refused, keeping the old settings: {e}"),
                },
                _ = term.recv() => stop(&handle, &mut stopping, "SIGTERM"),
                _ = int.recv() => stop(&handle, &mut stopping, "SIGINT"),
            }
        }
    };
    tokio::select! {
        _ = signals => {}
        joined = run => joined.context("proxy task failed")?,
    }
    Ok(())
}

fn stop(handle: &ddlguard::proxy::ServerHandle, stopping: &mut bool, name: &str) {
    if *stopping {
        warn!("{name} again: closing all sessions now");
        handle.terminate();
    } else {
        info!("{name}: graceful shutdown");
        *stopping = true;
        handle.shutdown();
    }
}

/// One row of the dependents contract (DESIGN section 7).
#[derive(serde::Deserialize, serde::Serialize)]
struct DependentRow {
    application_name: String,
    user: String,
    database: String,
    client_addr: String,
    dependency: String,
    calls: u64,
    first_seen: String,
    last_seen: String,
    fingerprint: String,
}

fn report_dependents(
    http: &str,
    target: &str,
    since: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let t = ddlguard::admin::dependents::Target::parse_dotted(target);
    let base = if http.starts_with("http://") || http.starts_with("https://") {
        http.trim_end_matches('/').to_string()
    } else {
        format!("http://{http}")
    };
    let url = format!("{base}/api/v1/dependents");
    let token = std::env::var("DDLGUARD_HTTP_TOKEN").ok();
    // The answer comes in pages: follow X-Next-Cursor to the last one.
    let mut rows: Vec<DependentRow> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut req = ureq::get(&url).query("table", format!("{}.{}", t.schema, t.table));
        if let Some(c) = &t.column {
            req = req.query("column", c);
        }
        if let Some(s) = since {
            req = req.query("since", s);
        }
        if let Some(a) = &after {
            req = req.query("after", a);
        }
        if let Some(token) = &token {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = req.call().with_context(|| {
            format!("asking {url} (is ddlguard running with [admin] http_listen = {http:?}?)")
        })?;
        let next = response
            .headers()
            .get("x-next-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .body_mut()
            .read_to_string()
            .context("reading the answer")?;
        let page: Vec<DependentRow> = serde_json::from_str(&body)
            .with_context(|| format!("unexpected answer from {url}: {body}"))?;
        rows.extend(page);
        match next {
            Some(n) if after.as_deref() != Some(n.as_str()) => after = Some(n),
            _ => break,
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let what = match &t.column {
        Some(c) => format!("{}.{}.{c}", t.schema, t.table),
        None => format!("{}.{}", t.schema, t.table),
    };
    if rows.is_empty() {
        println!("no client depended on {what} in the window");
        return Ok(());
    }
    println!("{} client(s) depended on {what}:", rows.len());
    let header = [
        "application_name",
        "user",
        "database",
        "client_addr",
        "dependency",
        "calls",
        "last_seen",
        "fingerprint",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.application_name.clone(),
                r.user.clone(),
                r.database.clone(),
                r.client_addr.clone(),
                r.dependency.clone(),
                r.calls.to_string(),
                r.last_seen.clone(),
                r.fingerprint.clone(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..8)
        .map(|i| {
            cells
                .iter()
                .map(|c| c[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cols: Vec<&str>| {
        cols.iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    println!("{}", line(header.to_vec()));
    println!(
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-")
    );
    for c in &cells {
        println!("{}", line(c.iter().map(String::as_str).collect()));
    }
    Ok(())
}

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
        Command::CheckConfig(arg) => match Config::load(&arg.path()) {
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
        Command::Serve(arg) => {
            let path = arg.path();
            let config = match Config::load(&path) {
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
    let mut hup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let run = tokio::spawn(server.run());
    let mut stopping = false;
    let signals = async {
        loop {
            tokio::select! {
                _ = hup.recv() => match Config::load(&path) {
                    Ok(config) => {
                        let level = config.log.level.clone();
                        match handle.reload(config) {
                            Ok(restart) => {
                                log.set_level(&level);
                                info!(file = %path.display(), "configuration reloaded");
                                for key in restart {
                                    warn!("{key} changed: takes effect after a restart");
                                }
                            }
                            Err(e) => error!("reload refused, keeping the old settings: {e}"),
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

//! `ddlguard` command line: argument parsing and dispatch only; the commands
//! live in the library (`ddlguard::cli`).

use clap::{Parser, Subcommand};
use ddlguard::cli;
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Judge migration files with the proxy's DDL policy (exit 1 on findings, 2 on errors).
    Lint(ddlguard::lint::Args),
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
        Command::Lint(args) => ddlguard::lint::run(&args),
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
            } => match cli::report::dependents(&http, &target, since.as_deref(), json) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
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
            match cli::serve::run(path, config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

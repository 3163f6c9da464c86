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
    /// Start a throttled backfill inside a running proxy (exit 0 done, 1 failed, 2 error).
    Backfill(BackfillArgs),
}

#[derive(clap::Args)]
struct BackfillArgs {
    /// The proxy's HTTP address ([admin] http_listen).
    #[arg(long, default_value = "127.0.0.1:9187")]
    http: String,
    /// `table` or `schema.table`.
    table: String,
    /// The assignments, as in UPDATE: "email_lower = lower(email)".
    #[arg(long)]
    set: String,
    /// Rows to update (default: those whose target differs from the expression).
    #[arg(long = "where")]
    where_clause: Option<String>,
    /// Rows per batch at most (default: [backfill] batch_size).
    #[arg(long)]
    batch: Option<usize>,
    /// The unique NOT NULL column to walk (default: the primary key).
    #[arg(long)]
    key: Option<String>,
    /// Rows per second at most.
    #[arg(long = "max-rate")]
    max_rate: Option<f64>,
    /// The database (default: the one clients used the table in).
    #[arg(long)]
    database: Option<String>,
    /// Allow subqueries in --set and --where.
    #[arg(long = "allow-subquery")]
    allow_subquery: bool,
    /// Draw progress on stderr until the job ends.
    #[arg(long)]
    follow: bool,
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
        Command::Backfill(a) => {
            let req = ddlguard::backfill::BackfillRequest {
                table: a.table,
                set: a.set,
                where_clause: a.where_clause,
                batch: a.batch,
                key: a.key,
                max_rate: a.max_rate,
                database: a.database,
                allow_subquery: a.allow_subquery,
            };
            match cli::backfill::run(&a.http, &req, a.follow) {
                Ok(cli::backfill::Outcome::Ok) => ExitCode::SUCCESS,
                Ok(cli::backfill::Outcome::Failed) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
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

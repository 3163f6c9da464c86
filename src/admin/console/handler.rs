//! Console commands over pgwire: the simple protocol (psql) and the
//! extended protocol (tokio-postgres, drivers) run the same reports.

use super::encode;
use crate::admin::command::{self, Command, CommandError, Request};
use crate::admin::report::{self, Page, Report};
use crate::admin::view::AdminView;
use async_trait::async_trait;
use futures_util::{stream, Sink, SinkExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::response::NoticeResponse;
use pgwire::messages::PgWireBackendMessage;
use std::fmt::Debug;
use std::sync::Arc;
use tracing::{info, warn};

/// Runs console commands against the running proxy.
pub struct ConsoleHandler {
    handle: Arc<dyn AdminView>,
    parser: Arc<CommandParser>,
}

impl ConsoleHandler {
    /// A handler reading from `handle`.
    pub fn new(handle: Arc<dyn AdminView>) -> ConsoleHandler {
        ConsoleHandler {
            handle,
            parser: Arc::new(CommandParser),
        }
    }
}

fn syntax_error(e: CommandError) -> PgWireError {
    let mut info = ErrorInfo::new("ERROR".into(), "42601".into(), e.to_string());
    info.hint = Some(format!(
        "the ddlguard admin console understands: {}",
        command::VALID
    ));
    PgWireError::UserError(Box::new(info))
}

/// What a command produced: rows, or a command tag.
enum Outcome {
    Rows(Report),
    Done(&'static str, Vec<String>),
}

/// Runs one command (on a blocking thread: reports walk the whole usage
/// aggregate, and RELOAD reads a file). Reports answer one page of rows.
fn run(h: &dyn AdminView, req: &Request) -> PgWireResult<Outcome> {
    // `[usage] window`, the default of SINCE, as the last reload left it.
    let window = h.config().usage.window.0;
    let page = &req.page;
    let on = |t: &Option<crate::admin::dependents::Target>| Page {
        table: t.clone(),
        ..page.clone()
    };
    Ok(match &req.command {
        Command::Clients => Outcome::Rows(report::clients(h, page)),
        Command::Tables => Outcome::Rows(report::tables(h, page)),
        Command::Usage(t) => Outcome::Rows(report::usage(h, &on(t))),
        Command::Unresolved(t) => Outcome::Rows(report::unresolved(h, &on(t))),
        Command::Dependents(t, since) => Outcome::Rows(report::dependents(
            h,
            t,
            report::since_ms(since.unwrap_or(window)),
            page,
        )),
        Command::Queries(t) => Outcome::Rows(report::queries(h, &on(t))),
        Command::Errors(since) => Outcome::Rows(report::errors(
            h,
            report::since_ms(since.unwrap_or(window)),
            page,
        )),
        Command::Ddl(since) => {
            Outcome::Rows(report::ddl(h, since.map_or(0, report::since_ms), page))
        }
        Command::Rules => Outcome::Rows(report::rules(&h.config())),
        Command::Config => Outcome::Rows(report::config(&h.config(), h.config_file().as_deref())),
        Command::Reload => match h.reload_from_file() {
            Ok(restart) => {
                info!("configuration reloaded from the admin console");
                let notices = restart
                    .into_iter()
                    .map(|k| format!("{k} changed: takes effect after a restart"))
                    .collect();
                Outcome::Done("RELOAD", notices)
            }
            Err(e) => {
                warn!("RELOAD refused, keeping the old settings: {e}");
                let mut info = ErrorInfo::new(
                    "ERROR".into(),
                    "55000".into(),
                    format!("reload refused, the old settings stay: {e}"),
                );
                info.hint = Some(
                        "fix the configuration file (ddlguard check-config --config FILE shows what is wrong) and run RELOAD again"
                            .into(),
                    );
                return Err(PgWireError::UserError(Box::new(info)));
            }
        },
        Command::Set => Outcome::Done("SET", Vec::new()),
    })
}

/// XX000 for a report that could not be built (its task failed).
fn report_failed(e: impl std::fmt::Display) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        "XX000".into(),
        format!("the report failed: {e}; see the proxy log"),
    )))
}

/// A NOTICE saying how to ask for the rows after this page.
fn next_page_notice(report: &Report) -> Option<String> {
    report.next.as_ref().map(|cursor| {
        format!(
            "{} rows shown, more follow: repeat the command with AFTER '{cursor}' at its end (LIMIT n sets the rows per page, at most {})",
            report.rows.len(),
            report::page::MAX_LIMIT
        )
    })
}

impl ConsoleHandler {
    async fn respond<C>(
        &self,
        client: &mut C,
        req: &Request,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // One console report at a time: concurrent sessions queue rather
        // than multiply the memory a report takes.
        static BUILDING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
        let _turn = BUILDING.acquire().await.map_err(report_failed)?;
        let (handle, request, format) = (self.handle.clone(), req.clone(), format.clone());
        // Built and encoded off the relay thread; only the page's encoded
        // rows are written from the session's task.
        let outcome = tokio::task::spawn_blocking(move || {
            run(&*handle, &request).map(|outcome| match outcome {
                Outcome::Rows(mut report) => {
                    report.notices.extend(next_page_notice(&report));
                    let schema = Arc::new(encode::fields(&report, &format));
                    let rows = encode::rows(&report, schema.clone());
                    (report.notices, Ok((schema, rows)))
                }
                Outcome::Done(tag, notices) => (notices, Err(tag)),
            })
        })
        .await
        .map_err(report_failed)??;
        let (notices, response) = match outcome {
            (notices, Ok((schema, rows))) => (
                notices,
                Response::Query(QueryResponse::new(schema, stream::iter(rows))),
            ),
            (notices, Err(tag)) => (notices, Response::Execution(Tag::new(tag))),
        };
        for n in notices {
            let info = ErrorInfo::new("NOTICE".into(), "00000".into(), n);
            client
                .feed(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(
                    info,
                )))
                .await?;
        }
        Ok(response)
    }
}

#[async_trait]
impl SimpleQueryHandler for ConsoleHandler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let req = command::parse_request(query).map_err(syntax_error)?;
        Ok(vec![
            self.respond(client, &req, &Format::UnifiedText).await?,
        ])
    }
}

/// Parses console commands at Parse time, so a mistake is reported there,
/// as Postgres reports syntax errors.
#[derive(Debug)]
pub struct CommandParser;

#[async_trait]
impl QueryParser for CommandParser {
    type Statement = Request;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Request>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        command::parse_request(sql).map(Some).map_err(syntax_error)
    }

    fn get_parameter_types(&self, _stmt: &Request) -> PgWireResult<Vec<Type>> {
        Ok(Vec::new())
    }

    fn get_result_schema(
        &self,
        stmt: &Request,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let columns = command_columns(&stmt.command);
        let report = Report::new(columns);
        Ok(encode::fields(
            &report,
            column_format.unwrap_or(&Format::UnifiedText),
        ))
    }
}

/// The columns a command answers with, known without running it.
fn command_columns(cmd: &Command) -> Vec<(&'static str, report::ColumnType)> {
    match cmd {
        Command::Reload | Command::Set => Vec::new(),
        Command::Clients => report::columns::CLIENTS.to_vec(),
        Command::Tables => report::columns::TABLES.to_vec(),
        Command::Usage(_) => report::columns::USAGE.to_vec(),
        Command::Unresolved(_) => report::columns::UNRESOLVED.to_vec(),
        Command::Dependents(..) => report::columns::DEPENDENTS.to_vec(),
        Command::Queries(_) => report::columns::QUERIES.to_vec(),
        Command::Errors(_) => report::columns::ERRORS.to_vec(),
        Command::Ddl(_) => report::columns::DDL.to_vec(),
        Command::Rules => report::columns::RULES.to_vec(),
        Command::Config => report::columns::CONFIG.to_vec(),
    }
}

#[async_trait]
impl ExtendedQueryHandler for ConsoleHandler {
    type Statement = Request;
    type QueryParser = CommandParser;

    fn query_parser(&self) -> Arc<CommandParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Request>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Request>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.respond(
            client,
            &portal.statement.statement,
            &portal.result_column_format,
        )
        .await
    }
}

//! The admin console: a Postgres-protocol endpoint on the proxy's own port
//! for clients that ask for the `[admin] database`. It is served by pgwire,
//! logs in with SCRAM-SHA-256 against `[[admin.users]]`, and is never
//! relayed upstream (DESIGN section 7).

pub mod auth;
pub mod backfill;
mod budget;
mod encode;
mod handler;

use crate::admin::view::AdminView;
use crate::config::Config;
use crate::net::stream::Stream;
use crate::wire::messages::ProxyError;
use auth::AdminUsers;
use budget::LoginBudget;
use bytes::BytesMut;
use futures_util::StreamExt;
use handler::ConsoleHandler;
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::DefaultServerParameterProvider;
use pgwire::api::{ClientInfo, DefaultClient, NoopHandler, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::PgWireFrontendMessage;
use pgwire::tokio::server::{process_error, process_message, PgWireMessageServerCodec};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{Framed, FramedParts};
use tracing::{debug, info, warn};

/// Console connections open at once (logged in or not).
pub const MAX_CONSOLE_SESSIONS: usize = 32;

/// Where a console connection comes from and what it may use: the proxy
/// builds one per connection.
pub struct Console<S, C> {
    /// The client, past any TLS handshake.
    pub client: Stream,
    /// The startup packet the proxy read (pgwire decodes it again).
    pub raw: Vec<u8>,
    /// The client's address.
    pub peer: SocketAddr,
    /// The login must finish by then (counted from accept).
    pub login_deadline: tokio::time::Instant,
    /// The configuration the session started with.
    pub config: Config,
    /// A console slot out of [`MAX_CONSOLE_SESSIONS`], held while the
    /// connection is open; `None` refuses the connection as too many.
    pub slot: Option<S>,
    /// The proxy the commands read from.
    pub view: Arc<dyn AdminView>,
    /// Resolves when the proxy closes every session.
    pub closing: C,
}

/// Serves one console connection whose startup packet asked for the admin
/// database, until the client leaves or the proxy closes.
pub async fn serve<S, C: Future<Output = ()>>(console: Console<S, C>) {
    let Console {
        mut client,
        raw,
        peer,
        login_deadline,
        config,
        slot,
        view,
        closing,
    } = console;
    let config = &config;
    let Some(_slot) = slot else {
        warn!(
            limit = MAX_CONSOLE_SESSIONS,
            "admin console connection refused: too many open"
        );
        let err = ProxyError::fatal("53300", "too many admin console connections")
            .with_hint(format!(
                "ddlguard serves at most {MAX_CONSOLE_SESSIONS} admin console connections at once; close idle ones"
            ));
        let _ = client.write_all(&err.to_frame()).await;
        let _ = client.shutdown().await;
        return;
    };
    let users = AdminUsers::new(&config.admin.users);
    if users.is_empty() {
        warn!("admin console login refused: no [[admin.users]] configured");
        let err = ProxyError::fatal(
            "28000",
            "the ddlguard admin console has no users",
        )
        .with_hint("add an [[admin.users]] entry (name and password_env, or a SCRAM-SHA-256 verifier as password) and reload");
        let _ = client.write_all(&err.to_frame()).await;
        let _ = client.shutdown().await;
        return;
    }
    let mut scram = ScramAuth::new(Arc::new(users));
    scram.set_iterations(4096);
    if client.is_tls() {
        // The proxy terminates this TLS connection itself, so SCRAM channel
        // binding (SCRAM-SHA-256-PLUS, libpq's default over TLS) works here.
        if let Some(cert) = &config.server.tls_cert {
            match std::fs::read(cert).map(|pem| scram.configure_certificate(&pem)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    warn!(cert = %cert.display(), "admin console: no SCRAM channel binding with this certificate: {e}")
                }
                Err(e) => {
                    warn!(cert = %cert.display(), "admin console: cannot read server.tls_cert for SCRAM channel binding: {e}")
                }
            }
        }
    }
    let mut parameters = DefaultServerParameterProvider::default();
    parameters.server_version = format!(
        "15.0 (ddlguard {} admin console)",
        env!("CARGO_PKG_VERSION")
    );
    let startup = Arc::new(SASLAuthStartupHandler::new(Arc::new(parameters)).with_scram(scram));
    let handler = Arc::new(ConsoleHandler::new(view));
    let noop = Arc::new(NoopHandler);

    let secure = client.is_tls();
    let codec = PgWireMessageServerCodec::new(DefaultClient::new(peer, secure));
    let mut parts = FramedParts::new(LoginBudget::new(client), codec);
    // The startup packet was read by the proxy; pgwire decodes it again.
    parts.read_buf = BytesMut::from(&raw[..]);
    let mut socket = Framed::from_parts(parts);
    socket.set_state(PgWireConnectionState::AwaitingStartup);

    let mut closing = std::pin::pin!(closing);
    let mut logged_in = false;
    loop {
        let authenticating = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        if !authenticating && !logged_in {
            logged_in = true;
            socket.get_mut().logged_in();
            let user = socket.metadata().get("user").cloned().unwrap_or_default();
            info!(user, tls = secure, "admin console login");
        }
        let next = tokio::select! {
            m = socket.next() => m,
            _ = tokio::time::sleep_until(login_deadline), if authenticating => {
                debug!("admin console client did not log in within server.startup_timeout");
                break;
            }
            _ = &mut closing => break,
        };
        let message = match next {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                debug!("admin console connection ended: {e}");
                break;
            }
            None => break,
        };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let extended = message.is_extended_query();
        if let Err(e) = process_message(
            message,
            &mut socket,
            startup.clone(),
            handler.clone(),
            handler.clone(),
            noop.clone(),
            noop.clone(),
        )
        .await
        {
            let e = match e {
                // Postgres' wording, with the startup packet's user name
                // (SCRAM messages carry none).
                PgWireError::InvalidPassword(_) => {
                    let user = socket.metadata().get("user").cloned().unwrap_or_default();
                    PgWireError::UserError(Box::new(ErrorInfo::new(
                        "FATAL".into(),
                        "28P01".into(),
                        format!("password authentication failed for user \"{user}\""),
                    )))
                }
                other => other,
            };
            let fatal = e.is_fatal();
            if fatal {
                warn!("admin console: {e}");
            }
            if process_error(&mut socket, e, extended).await.is_err() || fatal {
                break;
            }
        }
    }
}

//! From the startup packet to the first ReadyForQuery, in either
//! `auth.mode`: `passthrough` connects upstream and relays the exchange;
//! `proxy` authenticates the client itself from the stored verifier, then
//! connects and logs in upstream with what the client proved. Either way
//! the rest of the startup (ParameterStatus, the server's own
//! BackendKeyData) is relayed unchanged.

use super::handshake::{self, Authenticated, Buffers, StartupError};
use super::session::send_frame;
use crate::auth::client_leg::{self, ClientLegError, Proof};
use crate::auth::lookup::Source;
use crate::auth::upstream_leg::{self, UpstreamLoginError};
use crate::auth::{AuthConfig, AuthMode, Lookup, Verifiers};
use crate::catalog::ServiceLogin;
use crate::counters::Counters;
use crate::net::stream::Stream;
use crate::net::upstream::Upstream;
use crate::wire::messages::ProxyError;
use bytes::BytesMut;
use std::sync::atomic::Ordering;
use tracing::{info, warn};

/// What the login needs from the session's settings.
pub struct LoginContext<'a> {
    /// `[auth]`.
    pub config: &'a AuthConfig,
    /// The verifier cache (shared by all sessions, kept across reloads).
    pub verifiers: &'a Verifiers,
    /// The service login that reads verifiers.
    pub service: Option<ServiceLogin>,
    /// The `tls-server-end-point` hash of the proxy's certificate.
    pub end_point: Option<&'a [u8]>,
    /// Where failed logins are counted.
    pub counters: &'a Counters,
    /// `server.max_message_size`.
    pub max_message: usize,
}

/// Authenticates the session and returns its upstream connection, or
/// `Ok(None)` when the client was refused (it has been told why).
pub async fn login(
    client: &mut Stream,
    upstream: &Upstream,
    raw: &[u8],
    user: &str,
    ctx: &LoginContext<'_>,
) -> Result<Option<(Stream, Authenticated)>, StartupError> {
    let lookup = match ctx.config.mode {
        AuthMode::Passthrough => Lookup::NoPassword,
        AuthMode::Proxy => {
            let source = Source {
                config: ctx.config,
                upstream,
                login: ctx.service.as_ref(),
            };
            ctx.verifiers.get(user, &source).await
        }
    };
    let secret = match lookup {
        Lookup::Found(secret) => Some(secret),
        Lookup::Unknown => None,
        Lookup::NoPassword | Lookup::Unavailable(_) => {
            return relayed(client, upstream, raw, ctx).await;
        }
    };
    let mut from_client = BytesMut::with_capacity(1024);
    let end_point = if client.is_tls() { ctx.end_point } else { None };
    let proof = match client_leg::authenticate(
        client,
        &mut from_client,
        user,
        secret,
        end_point,
        &ctx.verifiers.mock_key,
        ctx.max_message,
    )
    .await
    {
        Ok(proof) => proof,
        Err(ClientLegError::Refused(err)) => {
            if err.code == "28P01" {
                failed(ctx, user);
                info!(
                    "{} (checked by ddlguard, auth.mode = \"proxy\")",
                    err.message
                );
            } else {
                warn!("client authentication failed: {}", err.message);
            }
            send_frame(client, &err.to_frame()).await;
            return Ok(None);
        }
        Err(ClientLegError::Io(e)) => return Err(StartupError::Io(e)),
        Err(ClientLegError::Protocol(e)) => {
            send_frame(
                client,
                &ProxyError::fatal("08P01", e.to_string()).to_frame(),
            )
            .await;
            return Err(StartupError::Protocol(e));
        }
    };
    let Some(mut server) = connect(client, upstream).await else {
        return Ok(None);
    };
    let mut buffers = Buffers {
        from_client,
        from_server: BytesMut::with_capacity(4096),
        to_client: Vec::new(),
    };
    let end_point = server.peer_end_point();
    let upstream_login = upstream_leg::login(
        &mut server,
        &mut buffers.from_server,
        raw,
        &proof,
        end_point,
        &mut buffers.to_client,
    )
    .await;
    match upstream_login {
        Ok(()) => {}
        Err(UpstreamLoginError::Rejected {
            code,
            message,
            frame,
        }) => {
            if code == "28P01" {
                // The cached verifier is stale (the password changed).
                failed(ctx, user);
            }
            send_frame(client, &frame).await;
            return Err(StartupError::Rejected { code, message });
        }
        Err(UpstreamLoginError::Io(e)) => return Err(StartupError::Io(e)),
        Err(e) => {
            warn!("ddlguard authenticated {user:?} but could not log in upstream: {e}");
            let what = match proof {
                Proof::Scram { .. } => "SCRAM",
                Proof::Md5(_) => "md5",
            };
            let err = ProxyError::fatal(
                "28000",
                format!("ddlguard could not log in to upstream {} as \"{user}\"", upstream.config.address()),
            )
            .with_detail(e.to_string())
            .with_hint(format!("auth.mode = \"proxy\" answers the upstream with the client's {what} proof; or set auth.mode = \"passthrough\""));
            send_frame(client, &err.to_frame()).await;
            return Ok(None);
        }
    }
    let auth = handshake::relay_until_ready(client, &mut server, buffers, ctx.max_message).await?;
    Ok(Some((server, auth)))
}

/// `passthrough`, and users the proxy cannot check (no password stored,
/// verifiers unreadable): the upstream authenticates the relayed exchange.
async fn relayed(
    client: &mut Stream,
    upstream: &Upstream,
    raw: &[u8],
    ctx: &LoginContext<'_>,
) -> Result<Option<(Stream, Authenticated)>, StartupError> {
    let Some(mut server) = connect(client, upstream).await else {
        return Ok(None);
    };
    match handshake::authenticate(client, &mut server, raw, ctx.max_message).await {
        Ok(auth) => Ok(Some((server, auth))),
        Err(e) => {
            if matches!(&e, StartupError::Rejected { code, .. } if code == "28P01") {
                ctx.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
            }
            Err(e)
        }
    }
}

fn failed(ctx: &LoginContext<'_>, user: &str) {
    ctx.counters.auth_failures.fetch_add(1, Ordering::Relaxed);
    ctx.verifiers.forget(user);
}

/// Connects upstream; on failure the client gets 08001 naming the address.
async fn connect(client: &mut Stream, upstream: &Upstream) -> Option<Stream> {
    match upstream.connect().await {
        Ok(server) => Some(server),
        Err(e) => {
            warn!("{e}");
            let err = ProxyError::fatal(e.sqlstate(), format!("ddlguard {e}")).with_hint(
                "check that Postgres is running and that [upstream] host/port/tls in the ddlguard configuration are right",
            );
            send_frame(client, &err.to_frame()).await;
            None
        }
    }
}

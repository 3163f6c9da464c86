//! One client session from accept to close: opening, upstream connection,
//! authentication, relay, and the way it ends.

use super::closing::unless_closing;
use super::direct::EpollRelay;
use super::gate::{Gate, JudgeSource};
use super::handshake::{self, Opening, StartupError};
use super::prepared::Prepared;
use super::relay::{Relay, RelayEnd};
use super::shared::{reached, ClientSlot, Phase, SessionGuard, Settings, Shared};
use super::tracker::Tracker;
use crate::analysis::search_path;
use crate::net::stream::Stream;
use crate::net::upstream::Upstream;
use crate::usage::ClientIdentity;
use crate::wire::messages::ProxyError;
use crate::wire::startup::NO_USER;
use crate::wire::WireError;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::{debug, info, warn, Instrument};

/// How long the proxy waits for a peer to take a final message before closing.
const FINAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a session ended by a protocol violation waits for the server's
/// answers to the statements before it.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a closing session keeps reading so its last error is not lost to a TCP reset.
const LINGER: Duration = Duration::from_secs(2);

/// Runs one accepted connection to its end. Never panics on peer input;
/// every failure ends this session only.
///
/// `direct` is the epoll relay of the thread the session runs on, if any:
/// the session's plain relay phase runs there.
pub async fn run(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    guard: SessionGuard,
    direct: Option<Arc<EpollRelay>>,
) {
    let span = tracing::info_span!(
        "session",
        id = guard.id,
        peer = %peer,
        user = tracing::field::Empty,
        db = tracing::field::Empty,
        app = tracing::field::Empty,
    );
    async move {
        let settings = shared.settings();
        let limit = settings.config.server.startup_timeout.0;
        let login_deadline = tokio::time::Instant::now() + limit;
        // Boxed: the startup and console states are large and short-lived;
        // inline, their size would stay in every idle session's task.
        let started = timeout(limit, Box::pin(start(tcp, &settings, &shared, guard.id))).await;
        let (relay, upstream, _slot) = match started {
            Ok(Ok(Some(Begin::Relay(relay, upstream, slot)))) => (relay, upstream, slot),
            Ok(Ok(Some(Begin::Console { client, raw, peer }))) => {
                let mut phase = shared.phase();
                Box::pin(crate::admin::console::serve(crate::admin::console::Console {
                    client,
                    raw,
                    peer,
                    login_deadline,
                    config: settings.config.clone(),
                    slot: shared.claim_console_slot(crate::admin::console::MAX_CONSOLE_SESSIONS),
                    view: Arc::new(super::ServerHandle::from_shared(shared.clone())),
                    closing: async move { reached(&mut phase, Phase::Closing).await },
                }))
                .await;
                return;
            }
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                match &e {
                    StartupError::Rejected { message, .. } if message.contains("channel binding") => warn!(
                        "{e}: the client speaks TLS to ddlguard and so offers SCRAM channel binding, which a relayed exchange cannot carry; \
                         use auth.mode = \"proxy\" (the default; see README, Authentication), or set channel_binding=disable in the client"
                    ),
                    StartupError::Rejected { .. } => info!("{e}"),
                    StartupError::Io(_) => debug!("{e}"),
                    _ => warn!("{e}"),
                }
                return;
            }
            Err(_) => {
                warn!(
                    "client did not finish startup within {:?} (server.startup_timeout); connection dropped",
                    limit
                );
                return;
            }
        };
        relay_session(relay, upstream, &shared, direct.as_deref()).await;
        drop(guard);
    }
    .instrument(span)
    .await
}

/// What a connection becomes once its startup packet is read.
enum Begin {
    /// A relayed session, authenticated by the upstream.
    Relay(Box<Relay>, Arc<Upstream>, ClientSlot),
    /// The admin console (`[admin] database`), served by the proxy itself.
    Console {
        client: Stream,
        raw: Vec<u8>,
        peer: SocketAddr,
    },
}

/// Opening, limit check, upstream connection and authentication.
/// `Ok(None)` means the connection was fully handled (cancel, refusal).
async fn start(
    tcp: TcpStream,
    settings: &Settings,
    shared: &Arc<Shared>,
    session_id: u64,
) -> Result<Option<Begin>, StartupError> {
    let _ = tcp.set_nodelay(true);
    let peer = tcp
        .peer_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let peer_ip = peer.ip().to_string();
    let opening = match handshake::open(tcp, settings.acceptor.as_ref()).await {
        Ok(opening) => opening,
        Err(failure) => {
            if let (Some(mut client), StartupError::Protocol(e)) = (failure.client, &failure.error)
            {
                // As Postgres: a FATAL ErrorResponse, then a close without a reset.
                let code = match e {
                    WireError::BadStartup(NO_USER) => "28000",
                    _ => "08P01",
                };
                let err = ProxyError::fatal(code, e.to_string());
                send_final(&mut client, &err).await;
                client.linger(LINGER).await;
            }
            return Err(failure.error);
        }
    };
    let (mut client, raw, params) = match opening {
        Opening::Cancel { key, client } => {
            // Postgres closes the cancel connection only after it signalled
            // the backend; closing ours before the upstream closed its own
            // would let the client's next statement overtake the cancel.
            forward_cancel(shared, &key).await;
            drop(client);
            return Ok(None);
        }
        Opening::Session {
            client,
            raw,
            version,
            params,
        } => {
            let span = tracing::Span::current();
            span.record("user", params.user.as_str());
            span.record("db", params.database.as_str());
            span.record("app", params.application_name.as_str());
            debug!(
                version = format_args!("{}.{}", version >> 16, version & 0xffff),
                tls = client.is_tls(),
                "startup"
            );
            (client, raw, params)
        }
    };
    if params.database == settings.config.admin.database {
        // Never relayed: the proxy answers it (and it takes no client slot,
        // so operators get in when the proxy is full).
        return Ok(Some(Begin::Console { client, raw, peer }));
    }
    let server_cfg = &settings.config.server;
    let Some(slot) = shared.claim_client_slot(server_cfg.max_client_connections) else {
        shared
            .counters
            .sessions_refused
            .fetch_add(1, Ordering::Relaxed);
        warn!(
            limit = server_cfg.max_client_connections,
            "refused: too many client connections"
        );
        let err = ProxyError::fatal("53300", "sorry, too many clients already").with_hint(format!(
            "ddlguard accepts at most {} client connections (server.max_client_connections); close idle connections or raise the limit",
            server_cfg.max_client_connections
        ));
        send_final(&mut client, &err).await;
        return Ok(None);
    };
    let running = *shared.phase().borrow() == Phase::Running;
    if !running {
        let err = ProxyError::fatal("57P03", "the proxy is shutting down")
            .with_hint("connect again in a moment; another ddlguard instance may take the session");
        send_final(&mut client, &err).await;
        return Ok(None);
    }
    let upstream = settings.upstream.clone();
    let ctx = super::login::LoginContext {
        config: &settings.config.auth,
        verifiers: &shared.verifiers,
        service: super::shared::service_login(&settings.config),
        end_point: settings.end_point.as_deref(),
        counters: &shared.counters,
        max_message: server_cfg.max_message_size.0,
    };
    let Some((server, auth)) =
        super::login::login(&mut client, &upstream, &raw, &params.user, &ctx).await?
    else {
        return Ok(None);
    };
    let held_cancel = Arc::new(tokio::sync::Notify::new());
    if let Some(key) = &auth.backend_key {
        shared
            .cancels
            .insert(key.clone(), upstream.clone(), held_cancel.clone());
    }
    info!(
        client_tls = client.is_tls(),
        upstream_tls = server.is_tls(),
        "session started"
    );
    let mut relay = Relay::new(
        client,
        server,
        auth.client_buf,
        auth.server_buf,
        server_cfg.max_message_size.0,
    );
    relay.backend_key = auth.backend_key;
    relay.held_cancel = held_cancel;
    relay.traffic = shared.traffic.clone();
    let identity = ClientIdentity {
        application_name: params.application_name.clone(),
        user: params.user.clone(),
        database: params.database.clone(),
        client_addr: peer_ip,
    };
    shared.live.insert(session_id, identity.clone());
    relay.prepared = Some(Prepared::new(session_id, shared.prepared.clone()));
    let judges: JudgeSource = {
        let shared = shared.clone();
        Arc::new(move || shared.settings().gate.clone())
    };
    relay.gate = Some(Gate::new(
        judges,
        identity.clone(),
        shared.marker_prefix.clone(),
        shared.gate_stats.clone(),
    ));
    if settings.config.usage.enabled {
        let search_path =
            search_path::from_startup(params.search_path.as_deref(), params.options.as_deref());
        relay.tracker = Some(Tracker::new(
            shared.tracking.clone(),
            identity,
            search_path,
            upstream.clone(),
        ));
    }
    Ok(Some(Begin::Relay(Box::new(relay), upstream, slot)))
}

/// The relay phase and the orderly end of the session.
async fn relay_session(
    mut relay: Box<Relay>,
    upstream: Arc<Upstream>,
    shared: &Shared,
    direct: Option<&EpollRelay>,
) {
    let mut phase = shared.phase();
    let key = relay.backend_key.clone();
    let end = loop {
        let end = match direct {
            // Boxed: it waits for the whole relay phase, and inline its
            // state would add to every session's task.
            Some(direct) if relay.plain() => {
                match Box::pin(on_loop(direct, relay, &mut phase, shared)).await {
                    Ok((back, end)) => {
                        relay = back;
                        end
                    }
                    Err(lost) => {
                        tracing::error!("{lost}; the session is closed");
                        if let Some(key) = &key {
                            shared.cancels.remove(key);
                        }
                        return;
                    }
                }
            }
            _ => unless_closing(&mut phase, std::pin::pin!(relay.run())).await,
        };
        type Work<'a> =
            std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), RelayEnd>> + Send + 'a>>;
        let work: Work<'_> = match end {
            // On the task, `run` does the recovery itself.
            Some(RelayEnd::Recover) => Box::pin(relay.recover()),
            Some(RelayEnd::Held) => {
                // A rewrite: the proxy runs the safe sequence on this
                // session's upstream, then relaying goes on.
                // Boxed: the held work's state is large and rare; inline, it
                // would stay in every session's task.
                Box::pin(relay.run_held())
            }
            end => break end,
        };
        let Some(done) = unless_closing(&mut phase, work).await else {
            break None;
        };
        if let Err(end) = done {
            break Some(end);
        }
    };
    if let Some(RelayEnd::Protocol(_)) = &end {
        // Answers to statements forwarded before the bad message come first.
        let _ = timeout(DRAIN_TIMEOUT, relay.drain_server()).await;
    }
    let st = relay.state.clone();
    shared
        .counters
        .unknown_client_messages
        .fetch_add(st.unknown_client, Ordering::Relaxed);
    shared
        .counters
        .unknown_server_messages
        .fetch_add(st.unknown_server, Ordering::Relaxed);
    let cancel_if_busy = |reason: &str| {
        if let (true, Some(key)) = (st.busy(), key.clone()) {
            info!("cancelling the running statement upstream: {reason}");
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Err(e) = upstream.cancel(&key).await {
                    warn!("cancel request failed: {e}");
                }
            });
        }
    };
    let mut to_client: Option<ProxyError> = None;
    match end {
        None => {
            cancel_if_busy("proxy shutdown");
            to_client = Some(ProxyError::fatal(
                "57P01",
                "terminating connection due to administrator command",
            )
            .with_detail("ddlguard is shutting down and the grace period (server.shutdown_grace) has ended"));
            info!("closing session: proxy shutdown");
        }
        Some(RelayEnd::Drained) => debug!("relay drained"),
        Some(RelayEnd::Held) => debug!("relay ended while holding a statement"),
        Some(RelayEnd::Recover) => debug!("relay ended before a prepared statement's recovery"),
        Some(RelayEnd::ClientClosed) => {
            if !st.terminated {
                cancel_if_busy("client disconnected");
            }
            debug!("client closed the connection");
        }
        Some(RelayEnd::ClientIo(e)) => {
            cancel_if_busy("client connection failed");
            info!("client connection failed: {e}");
        }
        Some(RelayEnd::ServerClosed) if st.terminated => debug!("session ended by the client"),
        Some(RelayEnd::ServerClosed) | Some(RelayEnd::ServerIo(_)) => {
            if !st.server_fatal && !st.terminated {
                let detail = match &end {
                    Some(RelayEnd::ServerIo(e)) => e.to_string(),
                    _ => "the server closed the connection unexpectedly".to_string(),
                };
                warn!("upstream connection lost: {detail}");
                to_client = Some(
                    ProxyError::fatal(
                        "08006",
                        format!(
                            "ddlguard lost the connection to upstream {}",
                            upstream.config.address()
                        ),
                    )
                    .with_detail(detail)
                    .with_hint("the server may have restarted; reconnect to start a new session"),
                );
            } else {
                debug!("upstream ended the session");
            }
        }
        Some(RelayEnd::Protocol(e)) => {
            shared
                .counters
                .protocol_violations
                .fetch_add(1, Ordering::Relaxed);
            cancel_if_busy("protocol violation");
            warn!("protocol violation by client: {e}");
            to_client = Some(
                ProxyError::fatal("08P01", format!("invalid frontend message: {e}")).with_hint(
                    "the session was closed by ddlguard; other sessions are not affected",
                ),
            );
        }
    }
    let frame = to_client.map(|e| e.to_frame());
    let _ = timeout(FINAL_WRITE_TIMEOUT, relay.finish_server()).await;
    let _ = timeout(FINAL_WRITE_TIMEOUT, relay.finish_client(frame.as_deref())).await;
    if frame.is_some() {
        relay.linger_client(LINGER).await;
    }
    if let Some(key) = &key {
        shared.cancels.remove(key);
    }
}

/// Relays on the epoll loop, counted in `ddlguard_sessions_epoll_relay`
/// meanwhile.
async fn on_loop(
    direct: &EpollRelay,
    relay: Box<Relay>,
    phase: &mut tokio::sync::watch::Receiver<Phase>,
    shared: &Shared,
) -> Result<(Box<Relay>, Option<RelayEnd>), super::direct::Lost> {
    /// Uncounts the session however the wait ends.
    struct Counted<'a>(&'a std::sync::atomic::AtomicU64);
    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
    shared
        .counters
        .epoll_sessions
        .fetch_add(1, Ordering::Relaxed);
    let _counted = Counted(&shared.counters.epoll_sessions);
    direct.relay(relay, phase).await
}

/// Forwards a CancelRequest to the upstream that owns the key; unknown keys
/// are ignored, as Postgres ignores them.
async fn forward_cancel(shared: &Shared, key: &[u8]) {
    match shared.cancels.lookup(key) {
        Some((upstream, held)) => {
            info!("forwarding cancel request");
            if let Err(e) = upstream.cancel(key).await {
                warn!("cancel request failed: {e}");
            }
            // A wait ddlguard does for the client (pre-flight, a pause
            // between attempts) is cancelled too; the backend is idle then.
            held.notify_waiters();
        }
        None => debug!("cancel request for an unknown backend key ignored"),
    }
}

/// Sends one error to a client that is about to be closed.
async fn send_final(client: &mut Stream, err: &ProxyError) {
    send_frame(client, &err.to_frame()).await;
}

/// Writes a last frame to the client (an ErrorResponse) and closes its side.
pub(super) async fn send_frame(client: &mut Stream, frame: &[u8]) {
    let _ = timeout(FINAL_WRITE_TIMEOUT, async {
        client.write_all(frame).await?;
        client.flush().await?;
        client.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    fn size<F: std::future::Future>(_: &F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Runs `test` on a single-thread runtime with a default proxy state.
    fn with_shared<F: std::future::Future>(test: impl FnOnce(Arc<super::Shared>) -> F) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let settings =
            super::super::shared::Settings::new(crate::config::Config::default()).unwrap();
        // Made inside: the proxy state starts tasks of its own.
        rt.block_on(async { test(super::Shared::new(settings)).await });
    }

    /// The task of every session holds this future for its whole life, idle
    /// or not: the large, rare states (startup, console, held DDL work, the
    /// relay's buffers and state) are boxed so that an idle session costs
    /// little (issue: memory per idle session).
    #[test]
    fn an_idle_sessions_task_stays_small() {
        with_shared(|shared| async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let a = l.local_addr().unwrap();
            let c = tokio::net::TcpStream::connect(a).await.unwrap();
            let guard = shared.open_session();
            let f = super::run(c, a, shared, guard, None);
            let bytes = size(&f);
            assert!(bytes <= 2048, "a session's future is {bytes} bytes");
        });
    }

    /// A session relayed by the epoll loop waits in the task for its relay
    /// to come back: what it keeps meanwhile is per idle session too.
    #[test]
    fn a_session_on_the_epoll_loop_waits_in_a_small_future() {
        with_shared(|shared| async move {
            let direct = super::EpollRelay::start("ddlguard-relay-test".into()).unwrap();
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let c = tokio::net::TcpStream::connect(l.local_addr().unwrap())
                .await
                .unwrap();
            let (s, _) = l.accept().await.unwrap();
            let plain = crate::net::stream::Stream::Plain;
            let relay = Box::new(super::Relay::new(
                plain(c),
                plain(s),
                Default::default(),
                Default::default(),
                1 << 20,
            ));
            let mut phase = shared.phase();
            let f = super::on_loop(&direct, relay, &mut phase, &shared);
            let bytes = size(&f);
            assert!(bytes <= 512, "the wait on the epoll loop is {bytes} bytes");
        });
    }
}

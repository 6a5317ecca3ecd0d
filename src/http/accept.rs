//! The accept loop: plain HTTP or HTTPS (HTTP/2 or HTTP/1.1 by ALPN) served by hyper, with
//! every phase of a connection timed ([`Clock`]), a connection budget ([`Budget`]), HTTP/2
//! limits, back-off when the process runs out of descriptors, and a graceful drain on
//! shutdown. What it closes or refuses is counted in metrics and summarised in the log once
//! per interval, never line by line.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::Http;
use warp::reply::Response;

use super::budget::{Budget, Slot};
use super::clock::{Clock, Expiry};
use super::metrics::{Closed, ConnectionStats};
use super::refusals;
use super::settings::ConnectionTimeouts;
use super::wire::Wire;
use super::App;

/// The largest request head (HTTP/1 read buffer; HTTP/2 header list): past it, 431. With the
/// default budget of 4,096 connections, slow clients can pin at most 128 MiB of heads.
const MAX_HEAD_BYTES: usize = 32 * 1024;
/// HTTP/2 keep-alive pings: a peer that does not answer one within the timeout is gone.
const H2_PING_EVERY: Duration = Duration::from_secs(20);
/// See [`H2_PING_EVERY`].
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// Streams a client may open and reset before they are answered (the "rapid reset" attack).
const H2_MAX_PENDING_RESETS: usize = 20;
/// What hyper buffers per HTTP/2 stream for sending (answers are a few hundred bytes).
const H2_MAX_SEND_BUFFER: usize = 64 * 1024;
/// How long the accept loop pauses when the process is out of descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How often idle clients are dropped from the rate limiter's table.
const LIMITER_SWEEP: Duration = Duration::from_secs(60);

/// How connections are limited (`[server]`).
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Each phase's timeout.
    pub timeouts: ConnectionTimeouts,
    /// Open connections at most.
    pub max_connections: usize,
    /// Concurrent streams per HTTP/2 connection.
    pub http2_max_streams: u32,
}

/// A connection's byte stream, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// What every connection shares.
struct Shared {
    app: Arc<App>,
    http: Http,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    timeouts: ConnectionTimeouts,
    stats: Arc<ConnectionStats>,
}

/// Serves `app` on `listener` (HTTPS when `tls` is given) until `shutdown` completes; then
/// stops accepting, lets every connection finish the requests it has in flight, and returns.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    sweep_rate_limiter(&app);
    let stats = app.metrics.connections.clone();
    let budget = Budget::new(limits.max_connections, stats.clone());
    let shared = Arc::new(Shared {
        app: app.clone(),
        http: http(&limits),
        acceptor: tls.map(tokio_rustls::TlsAcceptor::from),
        timeouts: limits.timeouts,
        stats: stats.clone(),
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut report = tokio::time::interval(refusals::INTERVAL);
    let mut summary = Summary::new(&stats);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let clock = Arc::new(Clock::new(true));
                    // Over budget with every connection busy: closed at once.
                    let Some(slot) = budget.admit(&clock) else { continue };
                    let _ = stream.set_nodelay(true);
                    let serve = connection(stream, peer, shared.clone(), clock.clone(), stopped.clone());
                    connections.spawn(supervise(serve, shared.clone(), clock, slot));
                }
                Err(e) => {
                    summary.accept_failed(&stats, &e);
                    if out_of_resources(&e) {
                        budget.shed();
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = report.tick() => {
                summary.log(&stats, &budget);
                for line in app.refusals.summarise() {
                    tracing::warn!("{line}");
                }
            }
        }
    }
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
}

/// hyper's connection settings: HTTP/1.1 and HTTP/2 (by ALPN or the HTTP/2 preface).
fn http(limits: &ConnectionLimits) -> Http {
    let mut http = Http::new();
    http.max_buf_size(MAX_HEAD_BYTES)
        .http2_max_concurrent_streams(limits.http2_max_streams)
        .http2_max_header_list_size(MAX_HEAD_BYTES as u32)
        .http2_keep_alive_interval(Some(H2_PING_EVERY))
        .http2_keep_alive_timeout(H2_PING_TIMEOUT)
        .http2_max_pending_accept_reset_streams(Some(H2_MAX_PENDING_RESETS))
        .http2_max_send_buf_size(H2_MAX_SEND_BUFFER);
    http
}

/// Drops clients whose allowance is full again from the rate limiter, every minute, for as
/// long as the endpoint runs.
fn sweep_rate_limiter(app: &Arc<App>) {
    let sweeper = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(LIMITER_SWEEP);
        loop {
            tick.tick().await;
            let Some(app) = sweeper.upgrade() else { break };
            if let Some(limits) = &app.running().limits {
                limits.forget_idle_clients();
            }
        }
    });
}

fn out_of_resources(e: &std::io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM: accepting again at once would fail the same way.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Runs a connection in a task of its own and watches its clock: when a phase runs out or
/// the budget evicts it, the task is aborted (its socket closed). The connection's own task
/// thus polls nothing but hyper, whatever the number of requests.
async fn supervise(
    serve: impl Future<Output = ()> + Send + 'static,
    shared: Arc<Shared>,
    clock: Arc<Clock>,
    slot: Slot,
) {
    let serving = tokio::spawn(serve);
    let abort = serving.abort_handle();
    tokio::select! {
        _ = serving => {}
        why = clock.watch(&shared.timeouts) => {
            abort.abort();
            shared.count(why);
        }
    }
    drop(slot);
}

/// Serves one connection (after its TLS handshake) until the client closes it or shutdown
/// drains it.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    clock: Arc<Clock>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let wire = match &shared.acceptor {
        None => Wire::new(Box::new(stream) as Box<dyn Io>, clock.clone(), true),
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(tls) => {
                clock.set_http1(tls.get_ref().1.alpn_protocol() != Some(&b"h2"[..]));
                Wire::new(Box::new(tls) as Box<dyn Io>, clock.clone(), false)
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
        },
    };
    let app = shared.app.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::Body>| {
        let answering = clock.request();
        let handling = super::handlers::answer(&app, peer, request);
        async move {
            let response = handling.await;
            drop(answering);
            Ok::<Response, Infallible>(response)
        }
    });
    let served = shared.http.serve_connection(wire, service);
    tokio::pin!(served);
    let result = tokio::select! {
        result = served.as_mut() => result,
        _ = stopped.changed() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

impl Shared {
    fn count(&self, why: Expiry) {
        let closed = match why {
            Expiry::FirstRequest => Closed::FirstRequest,
            Expiry::Head => Closed::Head,
            Expiry::Idle => Closed::Idle,
            // Counted by the budget when it chose the connection.
            Expiry::Evicted => return,
        };
        self.stats.closed(closed, 1);
    }
}

/// What the log was last told, to summarise what happened since.
struct Summary {
    /// Closed for no request, a slow head, room; refused; failed accepts.
    seen: [u64; 5],
    last_error: Option<String>,
}

impl Summary {
    fn new(stats: &ConnectionStats) -> Self {
        Summary {
            seen: Self::counts(stats),
            last_error: None,
        }
    }

    fn counts(stats: &ConnectionStats) -> [u64; 5] {
        let closed = [
            Closed::FirstRequest,
            Closed::Head,
            Closed::Evicted,
            Closed::Refused,
        ]
        .map(|why| stats.closed_total(why));
        let errors = stats.accept_errors.load(Ordering::Relaxed);
        [closed[0], closed[1], closed[2], closed[3], errors]
    }

    fn accept_failed(&mut self, stats: &ConnectionStats, e: &std::io::Error) {
        stats.accept_errors.fetch_add(1, Ordering::Relaxed);
        if self.last_error.is_none() {
            self.last_error = Some(e.to_string());
        }
    }

    /// One line for connections closed for misbehaving or for room, one for failed accepts;
    /// nothing when all was well. (Idle timeouts are normal: metrics only.)
    fn log(&mut self, stats: &ConnectionStats, budget: &Budget) {
        let now = Self::counts(stats);
        let [first, head, evicted, refused, errors] =
            std::array::from_fn(|i| now[i].saturating_sub(self.seen[i]));
        self.seen = now;
        let seconds = refusals::INTERVAL.as_secs();
        if first + head + evicted + refused > 0 {
            tracing::warn!(
                no_request = first,
                slow_head = head,
                evicted,
                refused,
                open = stats.open.load(Ordering::Relaxed),
                budget = budget.max(),
                "connections closed by the server in the last {seconds} s"
            );
        }
        if errors > 0 {
            tracing::error!(
                count = errors,
                error = %self.last_error.take().unwrap_or_default(),
                "accepting connections failed in the last {seconds} s; backing off each time"
            );
        }
    }
}

//! The HTTP endpoint: one path that takes GET, POST form and POST JSON, and answers JSON.
//! Nothing here knows about LDAP; everything about a lookup is asked of [`Lookup`].

pub mod accept;
pub mod access;
pub mod budget;
pub mod clock;
pub mod limit;
pub mod metrics;
pub mod refusals;
pub mod reply;
pub mod request;
pub mod tls;
pub mod wire;

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use futures_util::{Stream, StreamExt};
use warp::http::{header, HeaderValue, Method, StatusCode};
use warp::path::FullPath;
use warp::reply::Response;
use warp::Filter;

use crate::call::CallDetails;
use crate::cidr::Cidr;
use crate::config::{Config, HEALTH_PATH, READY_PATH};
use crate::directory::DirectoryError;
use crate::logging::phone_for_log;
use crate::lookup::{Lookup, LookupError};
use accept::Peer;
pub use accept::{serve, ConnectionLimits};
use access::{Access, Presented};
use arc_swap::ArcSwap;
use limit::{Limited, RateLimits};
use metrics::{Metrics, Outcome};
use refusals::RefusalLog;
use request::RequestError;

/// The header that may carry `access.token` (besides `?token=` and `Authorization: Bearer`).
pub const TOKEN_HEADER: &str = "x-popup-token";

/// A popup URL is a path and a few short fields; a longer one is refused (414).
const MAX_URL_BYTES: usize = 8 * 1024;

/// What a configuration sets up, replaced as a whole when the configuration is reloaded.
pub struct Settings {
    /// The lookup service.
    pub lookup: Lookup,
    /// `server.path`
    pub path: String,
    /// `server.max_body_bytes`
    pub max_body_bytes: usize,
    /// `server.body_timeout_s`
    pub body_timeout: Duration,
    /// Who may call.
    pub access: Access,
    /// Rate limits, when enabled.
    pub limits: Option<RateLimits>,
    /// `log.mask_numbers`
    pub mask_numbers: bool,
}

impl Settings {
    /// Opens the directory and, in index mode, starts following it.
    async fn from_config(config: &Config) -> Result<Self, DirectoryError> {
        let lookup = Lookup::from_config(config).await?;
        lookup.directory().follow();
        Ok(Settings {
            lookup,
            path: config.server.path.clone(),
            max_body_bytes: config.server.max_body_bytes,
            body_timeout: config.server.timeouts.body,
            access: Access::new(config.access.clone()),
            limits: config.rate_limit.as_ref().map(RateLimits::new),
            mask_numbers: config.log.mask_numbers,
        })
    }

    /// Whom `client` is counted with: its rate-limit network, or by default an IPv4 address
    /// or an IPv6 /64.
    fn group(&self, client: IpAddr) -> Cidr {
        match &self.limits {
            Some(limits) => limits.key(client),
            None => limit::group(client, limit::DEFAULT_GROUPING),
        }
    }
}

/// The running endpoint's shared state.
pub struct App {
    current: ArcSwap<Settings>,
    /// Request and lookup counters (kept across reloads).
    pub metrics: Metrics,
    /// Refusals not yet summarised in the log.
    pub refusals: RefusalLog,
}

impl App {
    /// Builds the endpoint's state from a validated configuration: opens the directory and,
    /// in index mode, starts following it.
    pub async fn from_config(config: &Config) -> Result<Self, DirectoryError> {
        Ok(App {
            current: ArcSwap::from_pointee(Settings::from_config(config).await?),
            metrics: Metrics::default(),
            refusals: RefusalLog::default(),
        })
    }

    /// Counts a refused request, and logs it through `say` if it is the first from the
    /// client's `group` in this interval (the rest are summarised, see [`refusals`]).
    fn refused(&self, group: Cidr, outcome: Outcome, say: impl FnOnce()) {
        self.metrics.request(outcome);
        if self.refusals.first(group, outcome) {
            say();
        }
    }

    /// The settings requests are answered with now.
    pub fn settings(&self) -> Arc<Settings> {
        self.current.load_full()
    }

    /// Replaces the settings with those of `config` (in index mode after its first sync);
    /// requests in flight finish with the settings they started with.
    pub async fn reload(&self, config: &Config) -> Result<(), DirectoryError> {
        let fresh = Settings::from_config(config).await?;
        self.current.store(Arc::new(fresh));
        Ok(())
    }
}

/// The assembled routes: every request gets a JSON answer.
pub fn routes(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let parts = warp::method()
        .and(warp::path::full())
        .and(query)
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<usize>("content-length"))
        .and(warp::addr::remote())
        .and(warp::ext::optional::<Peer>())
        .and(warp::header::optional::<String>("x-forwarded-for"))
        .and(warp::header::optional::<String>(TOKEN_HEADER))
        .and(warp::header::optional::<String>("authorization"))
        .map(
            |method,
             path,
             query,
             content_type,
             content_length,
             remote: Option<SocketAddr>,
             peer: Option<Peer>,
             forwarded_for,
             token,
             authorization| RawRequest {
                method,
                path,
                query,
                content_type,
                content_length,
                remote: peer.map(|p| p.0).or(remote),
                forwarded_for,
                token,
                authorization,
            },
        );
    warp::any()
        .map(move || app.clone())
        .and(parts)
        .and(warp::body::stream())
        .then(handle)
        .recover(reply::recover)
        .unify()
}

/// The metrics listener's routes: `GET /metrics` in Prometheus' text format.
pub fn metrics_routes(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    warp::path!("metrics")
        .and(warp::get())
        .map(move || {
            let settings = app.settings();
            let mut r = Response::new(app.metrics.render(settings.lookup.directory()).into());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        })
        .recover(reply::recover)
        .unify()
}

/// Everything about a request but its body.
struct RawRequest {
    method: Method,
    path: FullPath,
    query: String,
    content_type: Option<String>,
    content_length: Option<usize>,
    remote: Option<SocketAddr>,
    forwarded_for: Option<String>,
    token: Option<String>,
    authorization: Option<String>,
}

async fn handle<S, B>(shared: Arc<App>, request: RawRequest, body: S) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let started = Instant::now();
    let metrics = &shared.metrics;
    let app = shared.settings();
    match request.path.as_str() {
        HEALTH_PATH => return reply::status(true),
        READY_PATH => {
            let ready = app.lookup.directory().readiness().await;
            if let Err(why) = &ready {
                tracing::warn!(reason = %why, "not ready");
            }
            return reply::status(ready.is_ok());
        }
        _ => {}
    }
    if request.path.as_str() != app.path {
        return reply::error(StatusCode::NOT_FOUND, "not found");
    }
    if request.path.as_str().len() + request.query.len() > MAX_URL_BYTES {
        metrics.request(Outcome::BadRequest);
        return reply::error(StatusCode::URI_TOO_LONG, "the request URL is too long");
    }
    if request.method != Method::GET && request.method != Method::POST {
        let mut r = reply::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed; use GET or POST",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        return r;
    }
    let peer = request
        .remote
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let client = app.access.client(peer, request.forwarded_for.as_deref());
    if app.access.check_address(client).is_err() {
        shared.refused(app.group(client), Outcome::Forbidden, || {
            tracing::warn!(%client, %peer, "refused: address not in access.allow");
        });
        return reply::error(StatusCode::FORBIDDEN, "forbidden");
    }
    if let Some(limits) = &app.limits {
        if let Err(which) = limits.check(client) {
            shared.refused(app.group(client), Outcome::RateLimited, || {
                tracing::warn!(%client, limit = ?which, "rate limited");
            });
            let message = match which {
                Limited::Client => "too many requests from this address",
                Limited::Global => "too many requests",
            };
            let mut r = reply::error(StatusCode::TOO_MANY_REQUESTS, message);
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return r;
        }
    }
    let presented = Presented {
        query: &request.query,
        header: request.token.as_deref(),
        authorization: request.authorization.as_deref(),
    };
    if app.access.check_token(presented).is_err() {
        shared.refused(app.group(client), Outcome::Unauthorized, || {
            tracing::warn!(%client, "refused: missing or wrong token");
        });
        let mut r = reply::error(StatusCode::UNAUTHORIZED, "a valid token is required");
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    let headers = BodyHeaders {
        content_type: request.content_type.as_deref(),
        content_length: request.content_length,
    };
    let call = match read_call(&app, &request.method, &request.query, headers, body).await {
        Ok(call) => call,
        Err(e) => {
            let status = match e {
                RequestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                RequestError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
                _ => StatusCode::BAD_REQUEST,
            };
            shared.refused(app.group(client), Outcome::BadRequest, || {
                tracing::info!(%client, error = %e, "unreadable request");
            });
            return reply::error(status, &e.to_string());
        }
    };
    let result = app.lookup.answer(&call).await;
    let took = started.elapsed();
    metrics.lookup(took);
    let us = took.as_micros() as u64;
    let phone = call
        .phone
        .as_deref()
        .map(|p| phone_for_log(p, app.mask_numbers));
    let ivrid = call.ivrid.as_deref().unwrap_or("-");
    let state = call.state.as_deref().unwrap_or("-");
    match result {
        Ok(answer) => {
            let (counted, outcome) =
                match (answer.trace.skipped_state.is_some(), answer.popup.total) {
                    (true, _) => (Outcome::Skipped, "skipped"),
                    (false, 0) => (Outcome::Unknown, "unknown"),
                    (false, _) => (Outcome::Match, "match"),
                };
            metrics.request(counted);
            tracing::info!(
                %client, %ivrid, %state, phone = %phone.as_deref().unwrap_or("-"), %outcome,
                total = answer.popup.total,
                server = %answer.trace.server.as_deref().map_or("-", String::as_str),
                us,
                "popup"
            );
            reply::popup(&answer.popup)
        }
        Err(e) if e.is_bad_request() => {
            shared.refused(app.group(client), Outcome::BadRequest, || {
                tracing::warn!(
                    %client, %ivrid, %state, phone = %phone.as_deref().unwrap_or("-"),
                    outcome = "bad_request", error = %e, us, "popup"
                );
            });
            reply::error(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Err(e) => {
            metrics.request(Outcome::DirectoryError);
            let kind = match &e {
                LookupError::Directory(d) => d.kind(),
                _ => "deadline",
            };
            metrics.directory_error(kind);
            tracing::warn!(
                %client, %ivrid, %state, phone = %phone.as_deref().unwrap_or("-"),
                outcome = "directory_error", %kind, error = %e, us, "popup"
            );
            // Directory details are for the log, not for whoever calls the endpoint.
            reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the directory is unavailable; try again",
            )
        }
    }
}

/// The request headers that say what the body is.
#[derive(Clone, Copy)]
struct BodyHeaders<'a> {
    content_type: Option<&'a str>,
    content_length: Option<usize>,
}

async fn read_call<S, B>(
    app: &Settings,
    method: &Method,
    query: &str,
    headers: BodyHeaders<'_>,
    body: S,
) -> Result<CallDetails, RequestError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let from_query = request::from_form(query);
    if method == Method::GET {
        return Ok(from_query);
    }
    if headers
        .content_length
        .is_some_and(|n| n > app.max_body_bytes)
    {
        return Err(RequestError::TooLarge(app.max_body_bytes));
    }
    let body = tokio::time::timeout(app.body_timeout, read_body(body, app.max_body_bytes))
        .await
        .map_err(|_| RequestError::BodyTimeout(app.body_timeout.as_secs()))??;
    request::from_body(headers.content_type, &body, from_query)
}

async fn read_body<S, B>(body: S, limit: usize) -> Result<BytesMut, RequestError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut collected = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| RequestError::Body(e.to_string()))?;
        if collected.len() + chunk.remaining() > limit {
            return Err(RequestError::TooLarge(limit));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            collected.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(collected)
}

//! The popup request's handler: the health and readiness probes, the guards (path, size,
//! method, address, rate, token), reading the call, the lookup with its log line and
//! counters, and the answer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use futures_util::future::{BoxFuture, Either, Ready};
use futures_util::{FutureExt, Stream, StreamExt};
use warp::http::header::HeaderName;
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use warp::reply::Response;

use super::access::Presented;
use super::cors::BrowserHeaders;
use super::limit::Limited;
use super::metrics::Outcome;
use super::recent::RecentCall;
use super::request::{self, RequestError};
use super::{reply, App, Running, HEALTH_PATH, MAX_URL_BYTES, READY_PATH, TOKEN_HEADER};
use crate::call::CallDetails;
use crate::logging::{phone_for_log, PopupLine};
use crate::lookup::{Answer, LookupError};

/// Everything about a request but its body.
pub(super) struct RawRequest {
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) headers: HeaderMap,
    pub(super) remote: Option<SocketAddr>,
}

/// `X-Popup-Token`, parsed once.
static TOKEN: HeaderName = HeaderName::from_static(TOKEN_HEADER);
/// `X-Forwarded-For` (the `http` crate names no constant for it).
static FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// Private Network Access's request header, sent with preflights.
static PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-request-private-network");

impl RawRequest {
    fn path(&self) -> &str {
        self.uri.path()
    }

    /// The query string, empty when there is none.
    fn query(&self) -> &str {
        self.uri.query().unwrap_or_default()
    }

    /// A header's value; `Err` when it is there but not visible ASCII text.
    fn text(&self, name: &HeaderName) -> Result<Option<&str>, ()> {
        self.headers
            .get(name)
            .map(|v| v.to_str().map_err(drop))
            .transpose()
    }

    /// A header's value, a value that is not text counted as absent.
    fn optional(&self, name: &HeaderName) -> Option<&str> {
        self.text(name).ok().flatten()
    }
}

/// The answer to a CORS preflight (`OPTIONS` on the popup path with `server.cors_origins`);
/// `None` for other requests, answered as any other (an `OPTIONS` one with 405).
fn preflight(app: &Running, request: &RawRequest) -> Option<Response> {
    if request.method != Method::OPTIONS || request.path() != app.path {
        return None;
    }
    let cors = app.cors.as_ref()?;
    Some(
        cors.preflight(BrowserHeaders {
            origin: request.optional(&header::ORIGIN),
            private_network: request
                .optional(&PRIVATE_NETWORK)
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        }),
    )
}

/// A request's answer: ready at once when nothing is awaited (a refusal, the health probe, a
/// GET looked up in memory), else a boxed future. warp and hyper move a request's future
/// whole, several times; the lookup's and the body's awaits would make it kilobytes.
pub(super) type Handling = Either<Ready<Response>, BoxFuture<'static, Response>>;

/// Answers one request on the popup listener; with `server.cors_origins`, every answer to a
/// listed origin carries its CORS headers.
pub(super) fn handle<S, B, E>(shared: &Arc<App>, request: RawRequest, body: S) -> Handling
where
    S: Stream<Item = Result<B, E>> + Send + 'static,
    B: Buf,
    E: std::fmt::Display,
{
    let started = Instant::now();
    let app = shared.running();
    if request.path() == READY_PATH {
        return Either::Right(Box::pin(async move {
            let probed = readiness(&app).await;
            decorated(&app, &request, probed)
        }));
    }
    if request.path() == HEALTH_PATH {
        return now(&app, &request, reply::status(true));
    }
    if let Some(preflight) = preflight(&app, &request) {
        // With the CORS headers it calls for already.
        return Either::Left(futures_util::future::ready(preflight));
    }
    let client = match check_shape(shared, &app, &request)
        .and_then(|()| check_client(shared, &app, &request))
    {
        Ok(client) => client,
        Err(refused) => return now(&app, &request, refused.reply()),
    };
    if request.method == Method::GET && app.lookup.directory().in_memory() {
        let call = request::from_form(request.query());
        // A directory held in memory is never waited for: the lookup is done on its first
        // poll (were it not, the call is answered below as in live mode).
        if let Some(result) = app.lookup.answer(&call).now_or_never() {
            let answered = answered(shared, &app, (client, started), &call, result);
            return now(&app, &request, answered);
        }
    }
    let shared = Arc::clone(shared);
    Either::Right(Box::pin(async move {
        let headers = BodyHeaders {
            content_type: request.optional(&header::CONTENT_TYPE),
            content_length: request
                .optional(&header::CONTENT_LENGTH)
                .and_then(|n| n.parse().ok()),
        };
        let answer = match read_call(&app, &request.method, request.query(), headers, body).await {
            Ok(call) => {
                let result = app.lookup.answer(&call).await;
                answered(&shared, &app, (client, started), &call, result)
            }
            Err(e) => unreadable(&shared, &app, client, &e),
        };
        decorated(&app, &request, answer)
    }))
}

/// Answers a request from `peer` as hyper hands it over: the popup listener's service.
/// (Not through warp's filters, [`super::routes`]: they copy the header map, box the peer
/// into the request's extensions and add layers of futures, 5,000 instructions of the 28,000
/// a popup cost with them.)
pub(super) fn answer(
    shared: &Arc<App>,
    peer: SocketAddr,
    request: hyper::Request<hyper::Body>,
) -> Handling {
    let (parts, body) = request.into_parts();
    let request = RawRequest {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        remote: Some(peer),
    };
    handle(shared, request, body)
}

/// `response`, answered at once.
fn now(app: &Running, request: &RawRequest, response: Response) -> Handling {
    Either::Left(futures_util::future::ready(decorated(
        app, request, response,
    )))
}

/// `response` with the CORS headers its origin calls for.
fn decorated(app: &Running, request: &RawRequest, mut response: Response) -> Response {
    if let Some(cors) = &app.cors {
        let browser = BrowserHeaders {
            origin: request.optional(&header::ORIGIN),
            private_network: false,
        };
        cors.decorate(browser, &mut response);
    }
    response
}

/// The answer to a request whose call cannot be read, counted and logged as a bad request.
fn unreadable(shared: &App, app: &Running, client: IpAddr, e: &RequestError) -> Response {
    let status = match e {
        RequestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        RequestError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
        _ => StatusCode::BAD_REQUEST,
    };
    shared.refused(app.group(client), Outcome::BadRequest, || {
        tracing::info!(%client, error = %e, "unreadable request");
    });
    reply::error(status, &e.to_string())
}

/// The readiness probe's answer.
async fn readiness(app: &Running) -> Response {
    let ready = app.lookup.directory().readiness().await;
    if let Err(why) = &ready {
        tracing::warn!(reason = %why, "not ready");
    }
    reply::status(ready.is_ok())
}

/// Why a request is refused before its call is read.
enum Refused {
    /// Another path (404).
    NotFound,
    /// A URL over [`MAX_URL_BYTES`] (414).
    UrlTooLong,
    /// A method other than GET and POST (405).
    Method,
    /// An address not in `access.allow` (403).
    Forbidden,
    /// Over a rate limit (429).
    RateLimited(Limited),
    /// A missing or wrong token (401).
    Unauthorized,
    /// A header the endpoint reads that is not text (400).
    Unreadable,
}

impl Refused {
    /// The JSON error, with the header the status calls for.
    fn reply(self) -> Response {
        let (status, message, extra) = match self {
            Refused::NotFound => (StatusCode::NOT_FOUND, "not found", None),
            Refused::UrlTooLong => (
                StatusCode::URI_TOO_LONG,
                "the request URL is too long",
                None,
            ),
            Refused::Method => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed; use GET or POST",
                Some((header::ALLOW, "GET, POST")),
            ),
            Refused::Forbidden => (StatusCode::FORBIDDEN, "forbidden", None),
            Refused::RateLimited(which) => (
                StatusCode::TOO_MANY_REQUESTS,
                match which {
                    Limited::Client => "too many requests from this address",
                    Limited::Global => "too many requests",
                },
                Some((header::RETRY_AFTER, "1")),
            ),
            Refused::Unreadable => (
                StatusCode::BAD_REQUEST,
                "the request could not be read",
                None,
            ),
            Refused::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "a valid token is required",
                Some((header::WWW_AUTHENTICATE, "Bearer")),
            ),
        };
        let mut r = reply::error(status, message);
        if let Some((name, value)) = extra {
            r.headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        r
    }
}

/// Refuses what is not a popup request by its shape: another path, a URL too long, a method
/// other than GET and POST.
fn check_shape(shared: &App, app: &Running, request: &RawRequest) -> Result<(), Refused> {
    if request.path() != app.path {
        return Err(Refused::NotFound);
    }
    if request.path().len() + request.query().len() > MAX_URL_BYTES {
        shared.metrics.request(Outcome::BadRequest);
        return Err(Refused::UrlTooLong);
    }
    if request.method != Method::GET && request.method != Method::POST {
        return Err(Refused::Method);
    }
    Ok(())
}

/// The client (behind trusted proxies) when it may call now: its address allowed, within the
/// rate limits, with the token. Refusals are counted and logged (the first per client and
/// interval, see [`super::refusals`]).
fn check_client(shared: &App, app: &Running, request: &RawRequest) -> Result<IpAddr, Refused> {
    let peer = request
        .remote
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let Ok(forwarded_for) = request.text(&FORWARDED_FOR) else {
        shared.refused(app.group(peer), Outcome::BadRequest, || {
            tracing::warn!(%peer, "refused: X-Forwarded-For is not text");
        });
        return Err(Refused::Unreadable);
    };
    let client = app.access.client(peer, forwarded_for);
    if app.access.check_address(client).is_err() {
        shared.refused(app.group(client), Outcome::Forbidden, || {
            tracing::warn!(%client, %peer, "refused: address not in access.allow");
        });
        return Err(Refused::Forbidden);
    }
    if let Some(Err(which)) = app.limits.as_ref().map(|l| l.check(client)) {
        shared.refused(app.group(client), Outcome::RateLimited, || {
            tracing::warn!(%client, limit = ?which, "rate limited");
        });
        return Err(Refused::RateLimited(which));
    }
    // The token's three places are looked up only when one is set.
    let presented = || Presented {
        query: request.query(),
        header: request.optional(&TOKEN),
        authorization: request.optional(&header::AUTHORIZATION),
    };
    if app.access.requires_token() && app.access.check_token(presented()).is_err() {
        shared.refused(app.group(client), Outcome::Unauthorized, || {
            tracing::warn!(%client, "refused: missing or wrong token");
        });
        return Err(Refused::Unauthorized);
    }
    Ok(client)
}

/// Counts and logs a looked-up call (one line per popup), and answers it.
fn answered(
    shared: &App,
    app: &Running,
    (client, started): (IpAddr, Instant),
    call: &CallDetails,
    result: Result<Arc<Answer>, LookupError>,
) -> Response {
    let took = started.elapsed();
    shared.metrics.lookup(took);
    let us = took.as_micros() as u64;
    let phone = call
        .phone
        .as_deref()
        .map(|p| phone_for_log(p, app.mask_numbers));
    let phone = phone.as_deref().unwrap_or("-");
    let ivrid = call.ivrid.as_deref().unwrap_or("-");
    let state = call.state.as_deref().unwrap_or("-");
    match result {
        Ok(answer) => {
            let sent = reply::sent(&answer);
            let outcome = Outcome::from(sent.outcome);
            shared.metrics.request(outcome);
            remember(shared, app, call, phone, (outcome, sent.total, us));
            PopupLine {
                client,
                ivrid,
                state,
                phone,
                outcome: outcome.label(),
                total: sent.total,
                server: sent.server.as_deref().map_or("-", String::as_str),
                us,
            }
            .log();
            reply::popup(sent)
        }
        Err(e) if e.is_bad_request() => {
            shared.refused(app.group(client), Outcome::BadRequest, || {
                tracing::warn!(
                    %client, ivrid, state, phone,
                    outcome = %Outcome::BadRequest.label(), error = %e, us, "popup"
                );
            });
            reply::error(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Err(e) => {
            shared.metrics.request(Outcome::DirectoryError);
            let kind = match &e {
                LookupError::Directory(d) => d.kind(),
                _ => "deadline",
            };
            shared.metrics.directory_error(kind);
            tracing::warn!(
                %client, ivrid, state, phone,
                outcome = %Outcome::DirectoryError.label(), %kind, error = %e, us, "popup"
            );
            // Directory details are for the log, not for whoever calls the endpoint.
            reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the directory is unavailable; try again",
            )
        }
    }
}

/// Keeps the call for the admin console's recent calls, when it keeps them: the number as
/// the log shows it (`shown`), the whole one only when numbers are not masked.
fn remember(
    shared: &App,
    app: &Running,
    call: &CallDetails,
    shown: &str,
    (outcome, total, micros): (Outcome, usize, u64),
) {
    if app.recent_calls {
        shared.recent.push(RecentCall {
            at: std::time::SystemTime::now(),
            shown: shown.to_owned(),
            phone: call.phone.clone().filter(|_| !app.mask_numbers),
            outcome: outcome.label(),
            total,
            micros,
        });
    }
}

/// The request headers that say what the body is.
#[derive(Clone, Copy)]
struct BodyHeaders<'a> {
    content_type: Option<&'a str>,
    content_length: Option<usize>,
}

async fn read_call<S, B, E>(
    app: &Running,
    method: &Method,
    query: &str,
    headers: BodyHeaders<'_>,
    body: S,
) -> Result<CallDetails, RequestError>
where
    S: Stream<Item = Result<B, E>> + Send,
    B: Buf,
    E: std::fmt::Display,
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

async fn read_body<S, B, E>(body: S, limit: usize) -> Result<BytesMut, RequestError>
where
    S: Stream<Item = Result<B, E>> + Send,
    B: Buf,
    E: std::fmt::Display,
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

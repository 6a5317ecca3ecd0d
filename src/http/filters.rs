//! The routes as warp filters: the popup path (every request gets a JSON answer) and the
//! metrics listener's `/metrics`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::Filter;

use super::accept::Peer;
use super::handlers::{handle, preflight, RawRequest};
use super::{reply, App};
use warp::path::FullPath;

/// The assembled routes: every request gets a JSON answer.
pub fn routes(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    // The headers are read from one copy of the map (reference-counted values): a
    // `warp::header::optional` filter per header parses and hashes its name on every
    // request and adds a layer of futures (about 600 instructions each).
    let parts = warp::method()
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
        .and(warp::ext::optional::<Peer>())
        .map(
            |method, path, query, headers, remote: Option<SocketAddr>, peer: Option<Peer>| {
                RawRequest {
                    method,
                    path,
                    query,
                    headers,
                    remote: peer.map(|p| p.0).or(remote),
                }
            },
        );
    // Preflights are a route of their own, so that only OPTIONS requests pay for reading
    // Private Network Access's header; without `cors_origins` they fall through to the
    // popup route's 405.
    let preflight_app = app.clone();
    let preflights = warp::options()
        .and(warp::path::full())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>(
            "access-control-request-private-network",
        ))
        .and_then(
            move |path: FullPath, origin: Option<String>, private_network: Option<String>| {
                let app = preflight_app.clone();
                async move {
                    let private_network =
                        private_network.is_some_and(|v| v.eq_ignore_ascii_case("true"));
                    preflight(&app, path.as_str(), origin.as_deref(), private_network)
                        .ok_or_else(warp::reject)
                }
            },
        );
    preflights
        .or(parts
            .and(warp::body::stream())
            .then(move |request, body| handle(&app, request, body)))
        .unify()
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
            let running = app.running();
            let mut r = Response::new(app.metrics.render(running.lookup.directory()).into());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        })
        .recover(reply::recover)
        .unify()
}

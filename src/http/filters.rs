//! The routes as warp filters: the popup path (every request gets a JSON answer) and the
//! metrics listener's `/metrics`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use warp::http::{header, HeaderValue};
use warp::reply::Response;
use warp::Filter;

use super::accept::Peer;
use super::handlers::{handle, RawRequest};
use super::{reply, App};

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
    // CORS preflights too are answered by `handle`: a route of their own made every other
    // request fail it first (a boxed rejection, dropped).
    parts
        .and(warp::body::stream())
        .then(move |request, body| handle(&app, request, body))
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

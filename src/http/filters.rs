//! The routes as warp filters: the popup path (every request gets a JSON answer) and the
//! metrics listener's `/metrics`.

use std::convert::Infallible;
use std::sync::Arc;

use futures_util::future::Either;
use warp::http::{header, HeaderValue, StatusCode, Uri};
use warp::path::FullPath;
use warp::reply::Response;
use warp::Filter;

use super::handlers::{handle, RawRequest};
use super::{reply, App};

/// The popup listener's requests as a warp filter, for `warp::test`; the server itself
/// hands hyper's requests to the same handler without warp's filters
/// ([`super::handlers::answer`]).
pub fn routes(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::method()
        .and(warp::path::full())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(warp::addr::remote())
        .and(warp::body::stream())
        .then(
            move |method, path: FullPath, query: String, headers, remote, body| match uri(
                &path, &query,
            ) {
                Ok(uri) => {
                    let request = RawRequest {
                        method,
                        uri,
                        headers,
                        remote,
                    };
                    handle(&app, request, body)
                }
                Err(_) => Either::Left(futures_util::future::ready(reply::error(
                    StatusCode::BAD_REQUEST,
                    "the request could not be read",
                ))),
            },
        )
        .recover(reply::recover)
        .unify()
}

/// The request's path and query as one URI again (warp hands them over apart).
fn uri(path: &FullPath, query: &str) -> Result<Uri, warp::http::uri::InvalidUri> {
    if query.is_empty() {
        path.as_str().parse()
    } else {
        format!("{}?{query}", path.as_str()).parse()
    }
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

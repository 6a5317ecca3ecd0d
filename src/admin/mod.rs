//! The admin console: a read-only page in the browser, on a listener of its own, behind the
//! admin token. It shows what the agent's notification would say for a number and why, how
//! the directory and its servers are doing, and what in the directory's phone data to fix.
//!
//! Everything it serves is compiled in (no external assets: it works on an air-gapped host);
//! the page builds its DOM with `textContent` only, so a directory value is never markup, and
//! the Content-Security-Policy allows nothing but the console's own script and style.

mod api;
mod auth;
mod history;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Filter;

use crate::cidr::Cidr;
use crate::http::App;
use crate::secret::Secret;

pub use auth::Sessions;
pub use history::History;

/// `[admin]`: where the console listens and who may use it.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// `listen`: its own address (or the metrics listener's).
    pub listen: SocketAddr,
    /// The admin token, typed into the login form (or sent as `Authorization: Bearer`).
    pub token: Secret,
    /// `allow`: client networks let in (default: this host only).
    pub allow: Vec<Cidr>,
    /// `recent_calls`: keep the last calls in memory for the console.
    pub recent_calls: bool,
}

/// What the console's handlers share.
pub struct Console {
    /// The running endpoint (lookups, counters).
    pub app: Arc<App>,
    /// `[admin]`
    pub settings: AdminSettings,
    /// Logged-in browsers.
    pub sessions: Sessions,
    /// The last hour, a minute a sample.
    pub history: Arc<History>,
}

/// The security headers every console answer carries.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const INDEX_HTML: &str = include_str!("assets/index.html");
const LOGIN_HTML: &str = include_str!("assets/login.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The console alone on its listener: its routes, and 404 for everything else.
pub fn standalone(
    console: Arc<Console>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static {
    routes(console)
        .recover(|_| async { Ok::<_, Infallible>(secured(not_found())) })
        .unify()
}

/// The console's routes under `/admin`; other paths are left to the listener's other routes.
pub fn routes(
    console: Arc<Console>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let console = warp::any().map(move || console.clone());
    let peer = warp::addr::remote().map(|a: Option<SocketAddr>| a.map(|a| a.ip()));
    let cookie = warp::header::optional::<String>("cookie");
    let authorization = warp::header::optional::<String>("authorization");
    let asset = warp::path!("admin" / "assets" / String)
        .and(warp::get())
        .map(|name: String| asset(&name));
    let login = warp::path!("admin" / "login")
        .and(warp::post())
        .and(console.clone())
        .and(peer)
        .and(warp::body::content_length_limit(4096))
        .and(warp::body::form())
        .map(auth::login);
    let gated = warp::path("admin")
        .and(warp::path::tail())
        .and(warp::get())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(console)
        .and(peer)
        .and(cookie)
        .and(authorization)
        .then(
            |tail: warp::path::Tail,
             query: String,
             console: Arc<Console>,
             peer: Option<IpAddr>,
             cookie: Option<String>,
             authorization: Option<String>| async move {
                match auth::admit(&console, peer, cookie.as_deref(), authorization.as_deref()) {
                    Err(refused) => refused.reply(),
                    Ok(()) => page(&console, tail.as_str(), &query).await,
                }
            },
        );
    asset.or(login).unify().or(gated).unify().map(secured)
}

/// A logged-in request: the page, or one of the API's answers.
async fn page(console: &Console, path: &str, query: &str) -> Response {
    match path {
        "" => html(StatusCode::OK, INDEX_HTML),
        "api/preview" => api::preview(console, query).await,
        "api/status" => api::status(console).await,
        "api/recent" => api::recent(console),
        "api/hygiene" => api::hygiene(console, api::Format::Json).await,
        "api/hygiene.csv" => api::hygiene(console, api::Format::Csv).await,
        "api/repair.ldif" => api::hygiene(console, api::Format::RepairLdif).await,
        _ => not_found(),
    }
}

fn asset(name: &str) -> Response {
    let (body, kind) = match name {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => return not_found(),
    };
    with_type(StatusCode::OK, body.to_owned(), kind)
}

fn not_found() -> Response {
    with_type(
        StatusCode::NOT_FOUND,
        "not found\n".to_owned(),
        "text/plain",
    )
}

/// An HTML page.
fn html(status: StatusCode, body: &str) -> Response {
    with_type(status, body.to_owned(), "text/html; charset=utf-8")
}

/// A body with its status and content type.
fn with_type(status: StatusCode, body: String, kind: &'static str) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}

/// Adds the console's security headers.
fn secured(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

//! Who may use the console: clients in `admin.allow`, with the admin token, typed once into
//! the login form (which sets an HttpOnly, SameSite=Strict session cookie) or sent as
//! `Authorization: Bearer`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;

use super::{html, Console, LOGIN_HTML};
use crate::locks::lock;

/// The session cookie's name.
const COOKIE: &str = "popup_admin";
/// How long a login lasts.
const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at most (the oldest go first).
const MAX_SESSIONS: usize = 64;

/// Logged-in browsers: random session ids and when they end. In memory: a restart logs
/// everyone out.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Instant>>);

impl Sessions {
    fn start(&self) -> Option<String> {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).ok()?;
        let id = bytes.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
        let mut all = lock(&self.0);
        let now = Instant::now();
        all.retain(|_, end| *end > now);
        if all.len() >= MAX_SESSIONS {
            if let Some(oldest) = all
                .iter()
                .min_by_key(|(_, end)| **end)
                .map(|(k, _)| k.clone())
            {
                all.remove(&oldest);
            }
        }
        all.insert(id.clone(), now + LIFETIME);
        Some(id)
    }

    fn valid(&self, id: &str) -> bool {
        lock(&self.0)
            .get(id)
            .is_some_and(|end| *end > Instant::now())
    }
}

/// Why a request is not let in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The client is not in `admin.allow` (403).
    Address,
    /// No session and no token (401, with the login form).
    Login,
}

impl Refusal {
    /// The answer: nothing but the refusal and the login form.
    pub(super) fn reply(self) -> Response {
        match self {
            Refusal::Address => super::with_type(
                StatusCode::FORBIDDEN,
                "not allowed from this address (admin.allow)\n".to_owned(),
                "text/plain",
            ),
            Refusal::Login => html(StatusCode::UNAUTHORIZED, LOGIN_HTML),
        }
    }
}

/// Lets the request in: a client in `allow` with a session or the token.
pub(super) fn admit(
    console: &Console,
    peer: Option<IpAddr>,
    cookie: Option<&str>,
    authorization: Option<&str>,
) -> Result<(), Refusal> {
    allowed(console, peer)?;
    let bearer = authorization.and_then(|a| a.strip_prefix("Bearer ").map(str::trim));
    if bearer.is_some_and(|t| is_token(console, t)) {
        return Ok(());
    }
    let session = cookie
        .into_iter()
        .flat_map(|c| c.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value);
    if session.is_some_and(|id| console.sessions.valid(id)) {
        return Ok(());
    }
    Err(Refusal::Login)
}

/// `POST /admin/login`: the token from the form starts a session.
pub(super) fn login(
    console: Arc<Console>,
    peer: Option<IpAddr>,
    form: HashMap<String, String>,
) -> Response {
    if let Err(refused) = allowed(&console, peer) {
        return refused.reply();
    }
    let token = form.get("token").map(String::as_str).unwrap_or("");
    if !is_token(&console, token) {
        tracing::warn!(client = ?peer, "admin console: wrong token");
        return html(StatusCode::UNAUTHORIZED, LOGIN_HTML);
    }
    let Some(id) = console.sessions.start() else {
        return html(StatusCode::INTERNAL_SERVER_ERROR, LOGIN_HTML);
    };
    let mut r = Response::new(warp::hyper::Body::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/admin/"));
    let cookie = format!(
        "{COOKIE}={id}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}",
        LIFETIME.as_secs()
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, value);
    }
    r
}

fn allowed(console: &Console, peer: Option<IpAddr>) -> Result<(), Refusal> {
    let ok = peer.is_some_and(|ip| console.settings.allow.iter().any(|n| n.contains(ip)));
    if ok {
        Ok(())
    } else {
        Err(Refusal::Address)
    }
}

/// Compares in constant time.
fn is_token(console: &Console, presented: &str) -> bool {
    let expected = console.settings.token.expose().as_bytes();
    !presented.is_empty() && bool::from(presented.as_bytes().ct_eq(expected))
}

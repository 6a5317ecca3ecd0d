//! Calls from a browser (`server.cors_origins`): Voicenter's Chrome extension or an intranet
//! page calling the popup path with `fetch`. Listed origins get the CORS headers on answers
//! and on preflights, and, when Chrome asks (Private Network Access), leave to reach an
//! intranet address; nothing changes when the key is absent.

use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;

use super::reply;

/// The request headers a page may send: the body's type and the token's two headers.
const ALLOWED_HEADERS: &str = "Content-Type, Authorization, X-Popup-Token";
/// How long a browser may keep a preflight's answer, in seconds.
const MAX_AGE: &str = "600";

/// The origins allowed to call from a browser.
#[derive(Clone, Debug)]
pub struct Cors {
    origins: Vec<String>,
}

/// What a browser's request says about where it comes from.
#[derive(Clone, Copy, Debug, Default)]
pub struct BrowserHeaders<'a> {
    /// `Origin`
    pub origin: Option<&'a str>,
    /// `Access-Control-Request-Private-Network`: a page asking to reach a private address.
    pub private_network: bool,
}

impl Cors {
    /// For `origins` as configured (validated: `scheme://host[:port]`, lower case).
    pub fn new(origins: Vec<String>) -> Self {
        Cors { origins }
    }

    fn allowed<'a>(&self, origin: Option<&'a str>) -> Option<&'a str> {
        origin.filter(|o| {
            self.origins
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(o))
        })
    }

    /// The answer to a preflight (`OPTIONS`): 204 with what the origin may send, or 403 for
    /// an origin not listed.
    pub fn preflight(&self, browser: BrowserHeaders<'_>) -> Response {
        let Some(origin) = self.allowed(browser.origin) else {
            return reply::error(
                StatusCode::FORBIDDEN,
                "origin not allowed (server.cors_origins)",
            );
        };
        let mut r = Response::new(warp::hyper::Body::empty());
        *r.status_mut() = StatusCode::NO_CONTENT;
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(MAX_AGE),
        );
        if browser.private_network {
            h.insert(
                "access-control-allow-private-network",
                HeaderValue::from_static("true"),
            );
        }
        allow(&mut r, origin);
        r
    }

    /// Lets a listed origin read `response` (answers and errors alike, so that a page sees why
    /// a call failed).
    pub fn decorate(&self, browser: BrowserHeaders<'_>, response: &mut Response) {
        if let Some(origin) = self.allowed(browser.origin) {
            allow(response, origin);
        }
    }
}

fn allow(response: &mut Response, origin: &str) {
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    h.append(header::VARY, HeaderValue::from_static("Origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors() -> Cors {
        Cors::new(vec![
            "chrome-extension://abcdefghijklmnopabcdefghijklmnop".to_owned(),
            "https://crm.example.com".to_owned(),
        ])
    }

    #[test]
    fn listed_origins_get_the_headers_and_others_do_not() {
        let listed = BrowserHeaders {
            origin: Some("https://crm.example.com"),
            private_network: true,
        };
        let r = cors().preflight(listed);
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let h = r.headers();
        assert_eq!(h["access-control-allow-origin"], "https://crm.example.com");
        assert_eq!(h["access-control-allow-private-network"], "true");
        assert_eq!(h["vary"], "Origin");
        let other = BrowserHeaders {
            origin: Some("https://evil.example.net"),
            private_network: false,
        };
        assert_eq!(cors().preflight(other).status(), StatusCode::FORBIDDEN);
        let mut r = reply::error(StatusCode::BAD_REQUEST, "x");
        cors().decorate(other, &mut r);
        assert!(r.headers().get("access-control-allow-origin").is_none());
    }
}

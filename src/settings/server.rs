//! `[server]` and `[metrics]`: where and how the endpoint listens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::raw::{RawMetrics, RawServer};
use super::{invalid, seconds, within, ConfigError};
use crate::http::{ConnectionTimeouts, ServerSettings, HEALTH_PATH, READY_PATH};

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_PATH: &str = "/popup";
const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024;
const DEFAULT_HEADER_TIMEOUT_S: u64 = 10;
const DEFAULT_BODY_TIMEOUT_S: u64 = 10;
const DEFAULT_IDLE_TIMEOUT_S: u64 = 60;
const DEFAULT_HTTP2_MAX_STREAMS: u32 = 100;

pub(super) fn server(raw: RawServer, base: &Path) -> Result<ServerSettings, ConfigError> {
    let listen = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = listen.parse().map_err(|_| {
        invalid(
            "server.listen",
            format!("{listen:?} is not an address and port such as 127.0.0.1:8080 or [::]:8080"),
        )
    })?;
    let path = popup_path(raw.path.as_deref())?;
    let max_body_bytes = raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if !(256..=1024 * 1024).contains(&max_body_bytes) {
        return Err(invalid(
            "server.max_body_bytes",
            "must be between 256 and 1048576",
        ));
    }
    let tls = tls(
        raw.tls_cert_file.as_deref(),
        raw.tls_key_file.as_deref(),
        base,
    )?;
    let timeouts = timeouts(&raw)?;
    if raw.max_connections.is_some_and(|n| n < 16) {
        return Err(invalid(
            "server.max_connections",
            "must be at least 16; leave it out to derive it from the descriptor limit",
        ));
    }
    let http2_max_streams = within(
        "server.http2_max_streams",
        raw.http2_max_streams.unwrap_or(DEFAULT_HTTP2_MAX_STREAMS),
        1..=1000,
    )?;
    Ok(ServerSettings {
        listen,
        path,
        max_body_bytes,
        tls,
        timeouts,
        max_connections: raw.max_connections,
        http2_max_streams,
        cors_origins: cors_origins(raw.cors_origins)?,
    })
}

/// `tls_cert_file` and `tls_key_file`: both or neither.
fn tls(
    cert: Option<&str>,
    key: Option<&str>,
    base: &Path,
) -> Result<Option<(PathBuf, PathBuf)>, ConfigError> {
    Ok(match (cert, key) {
        (Some(cert), Some(key)) => Some((base.join(cert), base.join(key))),
        (None, None) => None,
        (Some(_), None) => {
            return Err(invalid(
                "server.tls_key_file",
                "missing: HTTPS needs the private key of server.tls_cert_file",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "server.tls_cert_file",
                "missing: HTTPS needs the certificate (chain) for server.tls_key_file",
            ))
        }
    })
}

/// `header_timeout_s`, `body_timeout_s` and `idle_timeout_s`.
fn timeouts(raw: &RawServer) -> Result<ConnectionTimeouts, ConfigError> {
    Ok(ConnectionTimeouts {
        header: seconds(
            "server.header_timeout_s",
            raw.header_timeout_s,
            DEFAULT_HEADER_TIMEOUT_S,
            3600,
        )?,
        body: seconds(
            "server.body_timeout_s",
            raw.body_timeout_s,
            DEFAULT_BODY_TIMEOUT_S,
            3600,
        )?,
        idle: seconds(
            "server.idle_timeout_s",
            raw.idle_timeout_s,
            DEFAULT_IDLE_TIMEOUT_S,
            3600,
        )?,
    })
}

/// `cors_origins`: each an origin as browsers send it, `https://crm.example.com` or
/// `chrome-extension://<id>` (scheme and host, a port if any, no path), kept in lower case.
fn cors_origins(origins: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
    origins
        .unwrap_or_default()
        .into_iter()
        .map(|origin| {
            let bad = || {
                invalid(
                    "server.cors_origins",
                    format!(
                        "{origin:?} is not an origin such as \"https://crm.example.com\" or \
                         \"chrome-extension://<extension id>\" (no path, no trailing /)"
                    ),
                )
            };
            let url = url::Url::parse(&origin).map_err(|_| bad())?;
            let plain = url.host_str().is_some_and(|h| !h.is_empty())
                && url.path().is_empty()
                && url.query().is_none()
                && url.fragment().is_none()
                && url.username().is_empty()
                && !origin.ends_with('/');
            let special_plain = matches!(url.scheme(), "http" | "https")
                && url.path() == "/"
                && !origin.ends_with('/')
                && url.query().is_none();
            if plain || special_plain {
                Ok(origin.to_ascii_lowercase())
            } else {
                Err(bad())
            }
        })
        .collect()
}

/// `server.path`, or the default: absolute, without query or trailing `/`, and not a probe's.
fn popup_path(path: Option<&str>) -> Result<String, ConfigError> {
    let path = path.unwrap_or(DEFAULT_PATH).to_owned();
    let path_ok = path.starts_with('/')
        && !path.contains(['?', '#', ' '])
        && !path.contains("//")
        && (path == "/" || !path.ends_with('/'));
    if !path_ok {
        return Err(invalid(
            "server.path",
            format!(
                "{path:?} must be an absolute path such as /popup, without query or trailing /"
            ),
        ));
    }
    if path == HEALTH_PATH || path == READY_PATH {
        return Err(invalid(
            "server.path",
            format!("{path} is the service's own health check; choose another path"),
        ));
    }
    Ok(path)
}

pub(super) fn metrics_listen(
    raw: RawMetrics,
    server: &ServerSettings,
) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(l) = raw.listen else { return Ok(None) };
    let addr: SocketAddr = l.parse().map_err(|_| {
        invalid(
            "metrics.listen",
            format!("{l:?} is not an address and port such as 127.0.0.1:9464"),
        )
    })?;
    let wildcard = |a: &SocketAddr| a.ip().is_unspecified();
    let clash = addr.port() == server.listen.port()
        && (addr.ip() == server.listen.ip() || wildcard(&addr) || wildcard(&server.listen));
    if clash && addr.port() != 0 {
        return Err(invalid(
            "metrics.listen",
            format!(
                "{addr} is where server.listen ({}) already listens; give metrics another port",
                server.listen
            ),
        ));
    }
    Ok(Some(addr))
}

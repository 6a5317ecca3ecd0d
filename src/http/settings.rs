//! `[server]`, `[access]` and `[rate_limit]` as the endpoint takes them (built and validated
//! by `settings`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cidr::Cidr;
use crate::secret::Secret;

/// `[server]`: where the endpoint listens.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `listen`, default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// `path`, default `/popup`.
    pub path: String,
    /// `max_body_bytes`, default 16 KiB.
    pub max_body_bytes: usize,
    /// `tls_cert_file` and `tls_key_file`: serve HTTPS with this PEM chain and key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How long each phase of a client connection may take.
    pub timeouts: ConnectionTimeouts,
    /// `max_connections`: open client connections at most; `None` derives it from the
    /// process's descriptor limit at start.
    pub max_connections: Option<usize>,
    /// `http2_max_streams`: concurrent requests on one HTTP/2 connection.
    pub http2_max_streams: u32,
    /// `cors_origins`: browser origins that may call the popup path (none by default).
    pub cors_origins: Vec<String>,
}

/// `[server]` timeouts: every phase of a client connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionTimeouts {
    /// `header_timeout_s`: a request's head, from its first byte (and the first request of a
    /// connection, from the connect or the TLS handshake).
    pub header: Duration,
    /// `body_timeout_s`: a request's whole body.
    pub body: Duration,
    /// `idle_timeout_s`: a kept-alive connection with no request.
    pub idle: Duration,
}

/// `[access]`: who may call the endpoint.
#[derive(Debug, Clone, Default)]
pub struct AccessSettings {
    /// The shared secret Voicenter sends as `?token=` or in `X-Popup-Token` /
    /// `Authorization: Bearer`; `None` lets any caller in.
    pub token: Option<Secret>,
    /// `allow`: client networks let in; empty lets every address in.
    pub allow: Vec<Cidr>,
    /// `trusted_proxies`: peers whose `X-Forwarded-For` names the real client.
    pub trusted_proxies: Vec<Cidr>,
}

/// `[rate_limit]`: requests per second allowed before 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    /// Sustained rate per client address.
    pub per_ip_per_second: u32,
    /// Burst per client address.
    pub per_ip_burst: u32,
    /// Sustained rate over all clients.
    pub global_per_second: u32,
    /// Burst over all clients.
    pub global_burst: u32,
    /// `ipv4_prefix` (default 32): IPv4 clients in one network of this size share a limit.
    pub ipv4_prefix: u8,
    /// `ipv6_prefix` (default 64): IPv6 clients in one network of this size share a limit
    /// (one customer or host usually holds a whole /64).
    pub ipv6_prefix: u8,
}

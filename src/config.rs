//! The configuration file: raw TOML structs that reject unknown keys, then one validation step
//! that applies defaults, reads secrets and names the offending key in every error.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::call::canonical_state;
use crate::cidr::Cidr;
use crate::directory::filter::FilterTemplate;
use crate::mapping::Template;
use crate::phone::PhoneNormalizer;
use crate::secret::Secret;

/// The demo configuration compiled into the binary (README command 1).
pub const DEMO_TOML: &str = include_str!("../config/demo.toml");
/// The demo directory compiled into the binary.
pub const DEMO_LDIF: &str = include_str!("../config/demo.ldif");

/// A configuration that cannot be used, naming the key and what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, a wrong type, or an unknown key.
    #[error("{0}")]
    Syntax(String),
    /// A value that parses but cannot work.
    #[error("{key}: {message}")]
    Invalid {
        /// The key, as `section.name`.
        key: String,
        /// What is wrong and what to write instead.
        message: String,
    },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Raw file structs: exactly what the TOML may say.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    directory: RawDirectory,
    #[serde(default)]
    phone: RawPhone,
    #[serde(default)]
    lookup: RawLookup,
    #[serde(default)]
    response: RawResponse,
    index: Option<RawIndex>,
    #[serde(default)]
    access: RawAccess,
    #[serde(default)]
    rate_limit: RawRateLimit,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    metrics: RawMetrics,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    path: Option<String>,
    max_body_bytes: Option<usize>,
    tls_cert_file: Option<String>,
    tls_key_file: Option<String>,
    header_timeout_s: Option<u64>,
    body_timeout_s: Option<u64>,
    idle_timeout_s: Option<u64>,
    max_connections: Option<usize>,
    http2_max_streams: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    source: Option<String>,
    mode: Option<String>,
    ldif: Option<String>,
    urls: Option<Vec<String>>,
    starttls: Option<bool>,
    ca_file: Option<String>,
    danger_accept_invalid_certs: Option<bool>,
    allow_plaintext: Option<bool>,
    bind_dn: Option<String>,
    bind_password_file: Option<String>,
    bind_password_env: Option<String>,
    bind_password_credential: Option<String>,
    base_dn: Option<String>,
    scope: Option<String>,
    filter: Option<String>,
    phone_attributes: Option<Vec<String>>,
    match_filter: Option<String>,
    max_entries: Option<u32>,
    connect_timeout_ms: Option<u64>,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndex {
    poll_interval_s: Option<u64>,
    full_resync_interval_s: Option<u64>,
    presence_check_interval_s: Option<u64>,
    page_size: Option<u32>,
    change_attribute: Option<String>,
    state_file: Option<String>,
    sync_timeout_s: Option<u64>,
    ready_max_age_s: Option<u64>,
    max_entries: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhone {
    default_region: Option<String>,
    max_extension_digits: Option<usize>,
    country_attributes: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLookup {
    states: Option<Vec<String>>,
    deadline_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResponse {
    client_name: Option<String>,
    company: Option<String>,
    url: Option<String>,
    unknown_client_name: Option<String>,
    unknown_company: Option<String>,
    unknown_url: Option<String>,
    max_client_name_chars: Option<usize>,
    max_company_chars: Option<usize>,
    max_url_chars: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    token_file: Option<String>,
    token_env: Option<String>,
    token_credential: Option<String>,
    allow: Option<Vec<String>>,
    trusted_proxies: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    enabled: Option<bool>,
    per_ip_per_second: Option<u32>,
    per_ip_burst: Option<u32>,
    global_per_second: Option<u32>,
    global_burst: Option<u32>,
    ipv4_prefix: Option<u8>,
    ipv6_prefix: Option<u8>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    mask_numbers: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// Validated configuration.

/// Everything the service needs, validated and with defaults applied.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`
    pub server: ServerConfig,
    /// `[directory]`
    pub directory: DirectoryConfig,
    /// `[phone]`
    pub phone: PhoneNormalizer,
    /// `[lookup]`
    pub lookup: LookupConfig,
    /// `[response]`
    pub response: ResponseConfig,
    /// `[access]`: who may call.
    pub access: AccessConfig,
    /// `[rate_limit]`; `None` when disabled.
    pub rate_limit: Option<RateLimitConfig>,
    /// `[log]`
    pub log: LogConfig,
    /// `[metrics] listen`: where Prometheus scrapes `/metrics`; `None` serves none.
    pub metrics_listen: Option<SocketAddr>,
}

/// `[server]`: where the endpoint listens.
#[derive(Debug, Clone)]
pub struct ServerConfig {
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

/// `[directory]`: where entries come from and which attributes hold numbers.
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    /// The source of entries.
    pub source: SourceConfig,
    /// `phone_attributes`, lower-cased, in priority order for choosing the best match.
    pub phone_attributes: Vec<String>,
}

/// Where entries come from.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// `source = "ldif"`: entries from an LDIF file.
    Ldif(LdifData),
    /// `source = "ldap"`: live searches against a directory server.
    Ldap(Box<LdapConfig>),
}

/// Where the LDIF text lives.
#[derive(Debug, Clone)]
pub enum LdifData {
    /// A file, resolved against the configuration file's folder.
    File(PathBuf),
    /// Text compiled into the binary (the demo).
    Embedded(&'static str),
}

/// How to reach and search an LDAP directory.
#[derive(Debug, Clone)]
pub struct LdapConfig {
    /// `urls`: tried in order; the first that connects and binds serves.
    pub urls: Vec<String>,
    /// `starttls`: upgrade `ldap://` connections with StartTLS.
    pub starttls: bool,
    /// `ca_file`: PEM CA certificates; `None` uses the system's roots.
    pub ca_file: Option<PathBuf>,
    /// `danger_accept_invalid_certs`: skip certificate verification.
    pub danger_accept_invalid_certs: bool,
    /// The service account and its password; `None` binds anonymously.
    pub bind: Option<(String, Secret)>,
    /// `base_dn`.
    pub base_dn: String,
    /// `scope`: `subtree` (default), `one` or `base`.
    pub scope: ldap3::Scope,
    /// `filter`: which entries are eligible at all.
    pub filter: String,
    /// `match_filter`: how the caller's number is searched for.
    pub match_filter: FilterTemplate,
    /// `max_entries`: size limit of one lookup's search.
    pub max_entries: u32,
    /// `connect_timeout_ms`: connecting, TLS and binding to one server.
    pub connect_timeout: Duration,
    /// `timeout_ms`: one search, or one page of a sync.
    pub timeout: Duration,
    /// `mode = "index"` (the default): answer from an index synced from the directory;
    /// `None` for `mode = "live"`.
    pub index: Option<IndexConfig>,
}

impl LdapConfig {
    /// The entries that count and have a phone attribute: `(&<filter>(|(<attr>=*)...))`.
    pub fn eligible_filter(&self, phone_attributes: &[String]) -> String {
        let any_phone: String = phone_attributes
            .iter()
            .map(|a| format!("({a}=*)"))
            .collect();
        format!("(&{}(|{any_phone}))", self.filter)
    }
}

/// `[index]`: how the in-memory index follows the directory.
#[derive(Debug, Clone)]
pub struct IndexConfig {
    /// `poll_interval_s`: how often changes are fetched.
    pub poll_interval: Duration,
    /// `full_resync_interval_s`: how often everything is read again.
    pub full_resync_interval: Duration,
    /// `presence_check_interval_s`: how often the names of all eligible entries are read to
    /// find the deleted ones (at most the full resync interval, which also checks).
    pub presence_check_interval: Duration,
    /// `page_size`: entries per page of the paged search.
    pub page_size: u32,
    /// `change_attribute`: `modifyTimestamp` (OpenLDAP) or `whenChanged` (AD).
    pub change_attribute: String,
    /// `state_file`: where the last good index is kept for restarts during an outage.
    pub state_file: Option<PathBuf>,
    /// `sync_timeout_s`: a whole sync.
    pub sync_timeout: Duration,
    /// `ready_max_age_s`: `/readyz` fails once the index is older than this.
    pub ready_max_age: Duration,
    /// `max_entries`: the most entries the index holds; a larger directory fails the sync,
    /// and a state file over [`IndexConfig::state_file_limit`] is not read.
    pub max_entries: usize,
}

/// State file bytes allowed per entry of `index.max_entries` (a real entry takes 300-600).
pub const STATE_FILE_BYTES_PER_ENTRY: u64 = 2048;

impl IndexConfig {
    /// The largest state file that is read: `max_entries` x [`STATE_FILE_BYTES_PER_ENTRY`].
    pub fn state_file_limit(&self) -> u64 {
        (self.max_entries as u64).saturating_mul(STATE_FILE_BYTES_PER_ENTRY)
    }
}

/// `[lookup]`: when to look callers up.
#[derive(Debug, Clone)]
pub struct LookupConfig {
    /// `states`, canonical; `None` looks up every call state.
    pub states: Option<BTreeSet<String>>,
    /// `deadline_ms`: the whole lookup, after which the answer is 503.
    pub deadline: Duration,
}

/// `[response]`: how entries become Voicenter's answer.
#[derive(Debug, Clone)]
pub struct ResponseConfig {
    /// CLIENTNAME template.
    pub client_name: Option<Template>,
    /// COMPANY template.
    pub company: Option<Template>,
    /// URL template.
    pub url: Option<Template>,
    /// CLIENTNAME when no entry matches.
    pub unknown_client_name: Option<Template>,
    /// COMPANY when no entry matches.
    pub unknown_company: Option<Template>,
    /// URL when no entry matches.
    pub unknown_url: Option<Template>,
    /// How long each field may be.
    pub caps: AnswerCaps,
}

/// `[response] max_*_chars`: the longest CLIENTNAME, COMPANY and URL sent, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerCaps {
    /// `max_client_name_chars`, default 256.
    pub client_name: usize,
    /// `max_company_chars`, default 256.
    pub company: usize,
    /// `max_url_chars`, default 2048.
    pub url: usize,
}

impl ResponseConfig {
    /// Every entry attribute the templates read.
    pub fn attributes(&self) -> BTreeSet<String> {
        [&self.client_name, &self.company, &self.url]
            .into_iter()
            .flatten()
            .flat_map(|t| t.attributes().map(str::to_owned))
            .collect()
    }
}

/// `[access]`: who may call the endpoint.
#[derive(Debug, Clone, Default)]
pub struct AccessConfig {
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
pub struct RateLimitConfig {
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

/// `[log]`
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `level`: a tracing filter such as `info` or `popup_ldap=debug`; `RUST_LOG` wins.
    pub level: String,
    /// `mask_numbers`: show only the last 3 digits of phone numbers in logs.
    pub mask_numbers: bool,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
const DEFAULT_PATH: &str = "/popup";
const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024;
const DEFAULT_REGION: &str = "IL";
const DEFAULT_MAX_EXTENSION_DIGITS: usize = 6;
const DEFAULT_DEADLINE_MS: u64 = 2000;
const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1500;
const DEFAULT_TIMEOUT_MS: u64 = 1500;
const DEFAULT_MAX_ENTRIES: u32 = 100;
const DEFAULT_FILTER: &str = "(objectClass=*)";
const DEFAULT_PHONE_ATTRIBUTES: &[&str] = &["telephoneNumber", "mobile"];
const DEFAULT_CLIENT_NAME: &str = "{displayName|cn}";
const DEFAULT_COMPANY: &str = "{company|o}";
const DEFAULT_PER_IP: (u32, u32) = (20, 40);
/// A shorter shared secret is guessable.
const MIN_TOKEN_CHARS: usize = 16;
const DEFAULT_POLL_S: u64 = 60;
const DEFAULT_FULL_RESYNC_S: u64 = 30 * 60;
const DEFAULT_PRESENCE_CHECK_S: u64 = 5 * 60;
const DEFAULT_PAGE_SIZE: u32 = 500;
const DEFAULT_CHANGE_ATTRIBUTE: &str = "modifyTimestamp";
const DEFAULT_SYNC_TIMEOUT_S: u64 = 300;
const DEFAULT_READY_MAX_AGE_S: u64 = 3600;
/// Paths the service answers itself, whatever `server.path` is.
pub const HEALTH_PATH: &str = "/healthz";
/// See [`HEALTH_PATH`].
pub const READY_PATH: &str = "/readyz";
/// Under systemd with `StateDirectory=`, the index is kept here by default.
const STATE_FILE_NAME: &str = "index.state";
const DEFAULT_GLOBAL: (u32, u32) = (500, 1000);
const DEFAULT_HEADER_TIMEOUT_S: u64 = 10;
const DEFAULT_BODY_TIMEOUT_S: u64 = 10;
const DEFAULT_IDLE_TIMEOUT_S: u64 = 60;
const DEFAULT_HTTP2_MAX_STREAMS: u32 = 100;
const DEFAULT_CAPS: AnswerCaps = AnswerCaps {
    client_name: 256,
    company: 256,
    url: 2048,
};
const DEFAULT_INDEX_MAX_ENTRIES: usize = 1_000_000;
const DEFAULT_PREFIXES: (u8, u8) = (32, 64);
const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

impl Config {
    /// Reads and validates a configuration file; relative paths in it are resolved against the
    /// file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::parse(&text, base)
    }

    /// The demo configuration and directory compiled into the binary.
    pub fn embedded_demo() -> Result<Self, ConfigError> {
        let mut config = Self::parse(DEMO_TOML, Path::new("config"))?;
        config.directory.source = SourceConfig::Ldif(LdifData::Embedded(DEMO_LDIF));
        Ok(config)
    }

    /// Validates configuration text; `base` resolves relative paths.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let phone = PhoneNormalizer::new(
            raw.phone
                .default_region
                .as_deref()
                .unwrap_or(DEFAULT_REGION),
            raw.phone
                .max_extension_digits
                .unwrap_or(DEFAULT_MAX_EXTENSION_DIGITS),
        )
        .map_err(|e| invalid("phone.default_region", e.to_string()))?;
        let phone = match raw.phone.country_attributes {
            Some(attrs) if attrs.iter().any(|a| !is_attribute_name(a)) => {
                return Err(invalid(
                    "phone.country_attributes",
                    "list attribute names such as [\"c\", \"countryCode\"], or [] for none",
                ))
            }
            Some(attrs) => phone.with_country_attributes(attrs),
            None => phone,
        };
        if raw.phone.max_extension_digits.is_some_and(|n| n > 8) {
            return Err(invalid(
                "phone.max_extension_digits",
                "must be at most 8, or real numbers would be taken for extensions",
            ));
        }
        let server = server(raw.server, base)?;
        Ok(Config {
            directory: directory(raw.directory, raw.index, base)?,
            phone,
            lookup: lookup(raw.lookup)?,
            response: response(raw.response)?,
            access: access(raw.access, base)?,
            rate_limit: rate_limit(raw.rate_limit)?,
            log: log(raw.log)?,
            metrics_listen: metrics_listen(raw.metrics, &server)?,
            server,
        })
    }

    /// Attributes a search must return: the phone attributes, the country attributes and
    /// those the templates read.
    pub fn wanted_attributes(&self) -> Vec<String> {
        let mut attrs: BTreeSet<String> = self.response.attributes();
        attrs.extend(self.directory.phone_attributes.iter().cloned());
        attrs.extend(self.phone.country_attributes().iter().cloned());
        attrs.into_iter().collect()
    }
}

fn server(raw: RawServer, base: &Path) -> Result<ServerConfig, ConfigError> {
    let listen = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = listen.parse().map_err(|_| {
        invalid(
            "server.listen",
            format!("{listen:?} is not an address and port such as 127.0.0.1:8080 or [::]:8080"),
        )
    })?;
    let path = raw.path.unwrap_or_else(|| DEFAULT_PATH.to_owned());
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
    let max_body_bytes = raw.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if !(256..=1024 * 1024).contains(&max_body_bytes) {
        return Err(invalid(
            "server.max_body_bytes",
            "must be between 256 and 1048576",
        ));
    }
    let tls = match (raw.tls_cert_file, raw.tls_key_file) {
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
    };
    let seconds = |key: &str, v: Option<u64>, default: u64| match v.unwrap_or(default) {
        s @ 1..=3600 => Ok(Duration::from_secs(s)),
        _ => Err(invalid(key, "must be between 1 and 3600 seconds")),
    };
    let timeouts = ConnectionTimeouts {
        header: seconds(
            "server.header_timeout_s",
            raw.header_timeout_s,
            DEFAULT_HEADER_TIMEOUT_S,
        )?,
        body: seconds(
            "server.body_timeout_s",
            raw.body_timeout_s,
            DEFAULT_BODY_TIMEOUT_S,
        )?,
        idle: seconds(
            "server.idle_timeout_s",
            raw.idle_timeout_s,
            DEFAULT_IDLE_TIMEOUT_S,
        )?,
    };
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
    Ok(ServerConfig {
        listen,
        path,
        max_body_bytes,
        tls,
        timeouts,
        max_connections: raw.max_connections,
        http2_max_streams,
    })
}

fn directory(
    mut raw: RawDirectory,
    index: Option<RawIndex>,
    base: &Path,
) -> Result<DirectoryConfig, ConfigError> {
    let phone_attributes: Vec<String> = raw.phone_attributes.take().unwrap_or_else(|| {
        DEFAULT_PHONE_ATTRIBUTES
            .iter()
            .map(|s| s.to_string())
            .collect()
    });
    if phone_attributes.is_empty() {
        return Err(invalid(
            "directory.phone_attributes",
            "list at least one attribute, such as [\"telephoneNumber\", \"mobile\"]",
        ));
    }
    for a in &phone_attributes {
        if a.is_empty() || !a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(invalid(
                "directory.phone_attributes",
                format!("{a:?} is not an attribute name"),
            ));
        }
    }
    let phone_attributes: Vec<String> = phone_attributes
        .into_iter()
        .map(|a| a.to_ascii_lowercase())
        .collect();
    let source = match raw.source.as_deref() {
        Some("ldif") => {
            if index.is_some() {
                return Err(invalid(
                    "index",
                    "applies to source = \"ldap\" only; an LDIF file is indexed once at start",
                ));
            }
            ldif_source(raw, base)?
        }
        Some("ldap") => {
            SourceConfig::Ldap(Box::new(ldap_source(raw, index, base, &phone_attributes)?))
        }
        Some(other) => {
            return Err(invalid(
                "directory.source",
                format!("{other:?} is not a source; use \"ldap\" or \"ldif\""),
            ))
        }
        None => {
            return Err(invalid(
                "directory.source",
                "missing; use \"ldap\" (a directory server) or \"ldif\" (a file)",
            ))
        }
    };
    Ok(DirectoryConfig {
        source,
        phone_attributes,
    })
}

fn ldif_source(raw: RawDirectory, base: &Path) -> Result<SourceConfig, ConfigError> {
    let ldap_only = [
        ("urls", raw.urls.is_some()),
        ("bind_dn", raw.bind_dn.is_some()),
        ("base_dn", raw.base_dn.is_some()),
        ("match_filter", raw.match_filter.is_some()),
        ("mode", raw.mode.is_some()),
    ];
    if let Some((key, _)) = ldap_only.iter().find(|(_, set)| *set) {
        return Err(invalid(
            &format!("directory.{key}"),
            "applies to source = \"ldap\" only",
        ));
    }
    let path = raw
        .ldif
        .ok_or_else(|| invalid("directory.ldif", "missing: the LDIF file to load"))?;
    Ok(SourceConfig::Ldif(LdifData::File(base.join(path))))
}

fn ldap_source(
    raw: RawDirectory,
    index: Option<RawIndex>,
    base: &Path,
    phone_attributes: &[String],
) -> Result<LdapConfig, ConfigError> {
    let index = match raw.mode.as_deref().unwrap_or("index") {
        "index" => Some(index_config(index.unwrap_or_default(), base)?),
        "live" if index.is_some() => {
            return Err(invalid("index", "applies to mode = \"index\" only"))
        }
        "live" => None,
        other => {
            return Err(invalid(
                "directory.mode",
                format!("{other:?} is not a mode; use \"index\" or \"live\""),
            ))
        }
    };
    if raw.ldif.is_some() {
        return Err(invalid(
            "directory.ldif",
            "applies to source = \"ldif\" only",
        ));
    }
    let starttls = raw.starttls.unwrap_or(false);
    let allow_plaintext = raw.allow_plaintext.unwrap_or(false);
    let urls = raw.urls.clone().unwrap_or_default();
    if urls.is_empty() {
        return Err(invalid(
            "directory.urls",
            "list at least one server, such as [\"ldaps://dc1.example.com\"]",
        ));
    }
    for url in &urls {
        check_url(url, starttls, allow_plaintext)?;
    }
    let password = SecretSource {
        section: "directory",
        name: "bind_password",
        file: raw.bind_password_file.as_deref(),
        env: raw.bind_password_env.as_deref(),
        credential: raw.bind_password_credential.as_deref(),
    };
    let bind = match raw.bind_dn.clone() {
        Some(dn) => match password.read(base)? {
            Some(secret) => Some((dn, secret)),
            None => {
                return Err(invalid(
                    "directory.bind_password_file",
                    "with bind_dn set, one of bind_password_file, bind_password_env and \
                     bind_password_credential must say where the password is",
                ))
            }
        },
        None if password.is_set() => {
            return Err(invalid(
                "directory.bind_dn",
                "a bind password is configured but no bind_dn to use it with",
            ))
        }
        None => None,
    };
    let base_dn = raw
        .base_dn
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| {
            invalid(
                "directory.base_dn",
                "missing: where to search, such as \"DC=example,DC=com\"",
            )
        })?;
    let scope = match raw.scope.as_deref().unwrap_or("subtree") {
        "subtree" | "sub" => ldap3::Scope::Subtree,
        "one" | "onelevel" => ldap3::Scope::OneLevel,
        "base" => ldap3::Scope::Base,
        other => {
            return Err(invalid(
                "directory.scope",
                format!("{other:?} is not a scope; use \"subtree\", \"one\" or \"base\""),
            ))
        }
    };
    let filter = raw.filter.unwrap_or_else(|| DEFAULT_FILTER.to_owned());
    if !is_filter(&filter) {
        return Err(invalid(
            "directory.filter",
            format!(
                "{filter:?} is not an LDAP filter (RFC 4515), such as \"(objectClass=person)\""
            ),
        ));
    }
    let match_filter = match raw.match_filter {
        Some(t) => FilterTemplate::parse(&t),
        None => Ok(FilterTemplate::any_attribute(phone_attributes)),
    }
    .map_err(|e| invalid("directory.match_filter", e.to_string()))?;
    let max_entries = raw.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
    if !(1..=1000).contains(&max_entries) {
        return Err(invalid(
            "directory.max_entries",
            "must be between 1 and 1000",
        ));
    }
    Ok(LdapConfig {
        urls,
        starttls,
        ca_file: raw.ca_file.map(|f| base.join(f)),
        danger_accept_invalid_certs: raw.danger_accept_invalid_certs.unwrap_or(false),
        bind,
        base_dn,
        scope,
        filter,
        match_filter,
        max_entries,
        connect_timeout: millis(
            "directory.connect_timeout_ms",
            raw.connect_timeout_ms.unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS),
        )?,
        timeout: millis(
            "directory.timeout_ms",
            raw.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
        )?,
        index,
    })
}

fn index_config(raw: RawIndex, base: &Path) -> Result<IndexConfig, ConfigError> {
    let seconds = |key: &str, v: Option<u64>, default: u64, max: u64| {
        let v = v.unwrap_or(default);
        if (1..=max).contains(&v) {
            Ok(Duration::from_secs(v))
        } else {
            Err(invalid(key, format!("must be between 1 and {max} seconds")))
        }
    };
    let poll_interval = seconds(
        "index.poll_interval_s",
        raw.poll_interval_s,
        DEFAULT_POLL_S,
        24 * 3600,
    )?;
    let full_resync_interval = seconds(
        "index.full_resync_interval_s",
        raw.full_resync_interval_s,
        DEFAULT_FULL_RESYNC_S,
        7 * 24 * 3600,
    )?;
    if full_resync_interval < poll_interval {
        return Err(invalid(
            "index.full_resync_interval_s",
            "must not be shorter than index.poll_interval_s",
        ));
    }
    let presence_check_interval = seconds(
        "index.presence_check_interval_s",
        raw.presence_check_interval_s,
        DEFAULT_PRESENCE_CHECK_S.clamp(poll_interval.as_secs(), full_resync_interval.as_secs()),
        7 * 24 * 3600,
    )?;
    if !(poll_interval..=full_resync_interval).contains(&presence_check_interval) {
        return Err(invalid(
            "index.presence_check_interval_s",
            "must be between index.poll_interval_s and index.full_resync_interval_s",
        ));
    }
    let page_size = raw.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=1000).contains(&page_size) {
        return Err(invalid(
            "index.page_size",
            "must be between 1 and 1000 (Active Directory's MaxPageSize is 1000)",
        ));
    }
    let change_attribute = raw
        .change_attribute
        .unwrap_or_else(|| DEFAULT_CHANGE_ATTRIBUTE.to_owned());
    if change_attribute.is_empty()
        || !change_attribute
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(invalid(
            "index.change_attribute",
            format!("{change_attribute:?} is not an attribute name"),
        ));
    }
    let state_file = match raw.state_file {
        Some(f) if f.is_empty() => None,
        Some(f) => Some(base.join(f)),
        None => std::env::var_os("STATE_DIRECTORY").map(|d| PathBuf::from(d).join(STATE_FILE_NAME)),
    };
    Ok(IndexConfig {
        poll_interval,
        full_resync_interval,
        presence_check_interval,
        page_size,
        change_attribute,
        state_file,
        sync_timeout: seconds(
            "index.sync_timeout_s",
            raw.sync_timeout_s,
            DEFAULT_SYNC_TIMEOUT_S,
            3600,
        )?,
        ready_max_age: seconds(
            "index.ready_max_age_s",
            raw.ready_max_age_s,
            DEFAULT_READY_MAX_AGE_S,
            30 * 24 * 3600,
        )?,
        max_entries: within(
            "index.max_entries",
            raw.max_entries.unwrap_or(DEFAULT_INDEX_MAX_ENTRIES),
            1..=100_000_000,
        )?,
    })
}

/// An LDAP attribute name (letters, digits, `-`), as a key may name one.
fn is_attribute_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A complete RFC 4515 filter, parenthesised (ldap3's parser also takes `a=b` bare).
pub(crate) fn is_filter(text: &str) -> bool {
    text.starts_with('(') && text.ends_with(')') && ldap3::parse_filter(text).is_ok()
}

fn check_url(url: &str, starttls: bool, allow_plaintext: bool) -> Result<(), ConfigError> {
    let parsed = url::Url::parse(url).map_err(|e| {
        invalid(
            "directory.urls",
            format!("{url:?} is not a URL such as ldaps://dc1.example.com ({e})"),
        )
    })?;
    if parsed.host_str().unwrap_or("").is_empty() {
        return Err(invalid("directory.urls", format!("{url:?} names no host")));
    }
    match parsed.scheme() {
        "ldaps" if starttls => Err(invalid(
            "directory.starttls",
            format!("{url:?} is already TLS; StartTLS applies to ldap:// URLs"),
        )),
        "ldaps" => Ok(()),
        "ldap" if starttls || allow_plaintext => Ok(()),
        "ldap" => Err(invalid(
            "directory.urls",
            format!(
                "{url:?} would send the bind password and personal data in clear text; use \
                 ldaps://, or set starttls = true (allow_plaintext = true only for a local test)"
            ),
        )),
        other => Err(invalid(
            "directory.urls",
            format!("{url:?}: scheme {other:?} is not ldaps or ldap"),
        )),
    }
}

/// Where a secret may be read from: `<name>_file`, `<name>_env` or `<name>_credential`.
struct SecretSource<'a> {
    section: &'a str,
    name: &'a str,
    file: Option<&'a str>,
    env: Option<&'a str>,
    credential: Option<&'a str>,
}

impl SecretSource<'_> {
    fn key(&self, suffix: &str) -> String {
        format!("{}.{}_{suffix}", self.section, self.name)
    }

    fn is_set(&self) -> bool {
        self.file.is_some() || self.env.is_some() || self.credential.is_some()
    }

    /// The secret, `None` when no source is set; more than one source is an error.
    fn read(&self, base: &Path) -> Result<Option<Secret>, ConfigError> {
        let set = [self.file, self.env, self.credential]
            .iter()
            .filter(|s| s.is_some())
            .count();
        if set > 1 {
            return Err(invalid(
                &self.key("file"),
                format!(
                    "set only one of {name}_file, {name}_env and {name}_credential",
                    name = self.name
                ),
            ));
        }
        if let Some(file) = self.file {
            return read_secret(&self.key("file"), &base.join(file)).map(Some);
        }
        if let Some(var) = self.env {
            return std::env::var(var)
                .map(|v| Some(Secret::new(v)))
                .map_err(|_| {
                    invalid(
                        &self.key("env"),
                        format!("environment variable {var} is not set"),
                    )
                });
        }
        let Some(name) = self.credential else {
            return Ok(None);
        };
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
            invalid(
                &self.key("credential"),
                "CREDENTIALS_DIRECTORY is not set: this key works under systemd with \
                 LoadCredential=; use the _file key elsewhere",
            )
        })?;
        read_secret(&self.key("credential"), &Path::new(&dir).join(name)).map(Some)
    }
}

fn read_secret(key: &str, path: &Path) -> Result<Secret, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))?;
    let secret = Secret::new(text);
    if secret.expose().is_empty() {
        return Err(invalid(key, format!("{} is empty", path.display())));
    }
    Ok(secret)
}

fn log(raw: RawLog) -> Result<LogConfig, ConfigError> {
    let level = raw.level.unwrap_or_else(|| "info".to_owned());
    let fail = |why: &str| {
        invalid(
            "log.level",
            format!("{level:?} is not a log filter such as info, warn or popup_ldap=debug: {why}"),
        )
    };
    // tracing reads a bare word as a target, so `debgu` would quietly log almost nothing:
    // here a bare word must be a level, and targets take `target=level`.
    for directive in level.split(',').map(str::trim) {
        let wanted = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !LOG_LEVELS.contains(&wanted.to_ascii_lowercase().as_str()) {
            return Err(fail(&format!(
                "{wanted:?} is not one of {}",
                LOG_LEVELS.join(", ")
            )));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(&level)
        .map_err(|e| fail(&e.to_string()))?;
    Ok(LogConfig {
        level,
        mask_numbers: raw.mask_numbers.unwrap_or(true),
    })
}

fn metrics_listen(
    raw: RawMetrics,
    server: &ServerConfig,
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

fn millis(key: &str, ms: u64) -> Result<Duration, ConfigError> {
    if !(10..=60_000).contains(&ms) {
        return Err(invalid(key, "must be between 10 and 60000 milliseconds"));
    }
    Ok(Duration::from_millis(ms))
}

fn lookup(raw: RawLookup) -> Result<LookupConfig, ConfigError> {
    let states = match raw.states {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(invalid(
                "lookup.states",
                "an empty list would never look anyone up; leave the key out to look up every \
                 call state",
            ))
        }
        Some(list) => Some(list.iter().map(|s| canonical_state(s)).collect()),
    };
    Ok(LookupConfig {
        states,
        deadline: millis(
            "lookup.deadline_ms",
            raw.deadline_ms.unwrap_or(DEFAULT_DEADLINE_MS),
        )?,
    })
}

fn response(raw: RawResponse) -> Result<ResponseConfig, ConfigError> {
    fn text(key: &str, v: Option<String>) -> Result<Option<Template>, ConfigError> {
        v.filter(|s| !s.is_empty())
            .map(|s| Template::text(&s))
            .transpose()
            .map_err(|e| invalid(key, e.to_string()))
    }
    fn url(key: &str, v: Option<String>) -> Result<Option<Template>, ConfigError> {
        v.filter(|s| !s.is_empty())
            .map(|s| Template::url(&s))
            .transpose()
            .map_err(|e| invalid(key, e.to_string()))
    }
    Ok(ResponseConfig {
        client_name: text(
            "response.client_name",
            Some(
                raw.client_name
                    .unwrap_or_else(|| DEFAULT_CLIENT_NAME.to_owned()),
            ),
        )?,
        company: text(
            "response.company",
            Some(raw.company.unwrap_or_else(|| DEFAULT_COMPANY.to_owned())),
        )?,
        url: url("response.url", raw.url)?,
        unknown_client_name: text("response.unknown_client_name", raw.unknown_client_name)?,
        unknown_company: text("response.unknown_company", raw.unknown_company)?,
        unknown_url: url("response.unknown_url", raw.unknown_url)?,
        caps: AnswerCaps {
            client_name: cap(
                "response.max_client_name_chars",
                raw.max_client_name_chars,
                DEFAULT_CAPS.client_name,
            )?,
            company: cap(
                "response.max_company_chars",
                raw.max_company_chars,
                DEFAULT_CAPS.company,
            )?,
            url: cap(
                "response.max_url_chars",
                raw.max_url_chars,
                DEFAULT_CAPS.url,
            )?,
        },
    })
}

fn cap(key: &str, v: Option<usize>, default: usize) -> Result<usize, ConfigError> {
    within(key, v.unwrap_or(default), 16..=8192)
}

/// `value`, or an error naming `key` when it is outside `range`.
fn within<T>(key: &str, value: T, range: std::ops::RangeInclusive<T>) -> Result<T, ConfigError>
where
    T: PartialOrd + std::fmt::Display,
{
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(invalid(
            key,
            format!("must be between {} and {}", range.start(), range.end()),
        ))
    }
}

fn access(raw: RawAccess, base: &Path) -> Result<AccessConfig, ConfigError> {
    let token = SecretSource {
        section: "access",
        name: "token",
        file: raw.token_file.as_deref(),
        env: raw.token_env.as_deref(),
        credential: raw.token_credential.as_deref(),
    }
    .read(base)?;
    if token
        .as_ref()
        .is_some_and(|t| t.expose().len() < MIN_TOKEN_CHARS)
    {
        return Err(invalid(
            "access.token_file",
            format!("the token must be at least {MIN_TOKEN_CHARS} characters (try: openssl rand -hex 24)"),
        ));
    }
    let networks = |key: &str, list: Option<Vec<String>>| {
        list.unwrap_or_default()
            .iter()
            .map(|n| n.parse::<Cidr>().map_err(|e| invalid(key, e.to_string())))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(AccessConfig {
        token,
        allow: networks("access.allow", raw.allow)?,
        trusted_proxies: networks("access.trusted_proxies", raw.trusted_proxies)?,
    })
}

fn rate_limit(raw: RawRateLimit) -> Result<Option<RateLimitConfig>, ConfigError> {
    if raw.enabled == Some(false) {
        return Ok(None);
    }
    let positive = |key: &str, v: Option<u32>, default: u32| match v.unwrap_or(default) {
        0 => Err(invalid(
            key,
            "must be at least 1; set rate_limit.enabled = false to turn limiting off",
        )),
        n => Ok(n),
    };
    Ok(Some(RateLimitConfig {
        per_ip_per_second: positive(
            "rate_limit.per_ip_per_second",
            raw.per_ip_per_second,
            DEFAULT_PER_IP.0,
        )?,
        per_ip_burst: positive(
            "rate_limit.per_ip_burst",
            raw.per_ip_burst,
            DEFAULT_PER_IP.1,
        )?,
        global_per_second: positive(
            "rate_limit.global_per_second",
            raw.global_per_second,
            DEFAULT_GLOBAL.0,
        )?,
        global_burst: positive(
            "rate_limit.global_burst",
            raw.global_burst,
            DEFAULT_GLOBAL.1,
        )?,
        ipv4_prefix: prefix(
            "rate_limit.ipv4_prefix",
            raw.ipv4_prefix,
            DEFAULT_PREFIXES.0,
            32,
        )?,
        ipv6_prefix: prefix(
            "rate_limit.ipv6_prefix",
            raw.ipv6_prefix,
            DEFAULT_PREFIXES.1,
            128,
        )?,
    }))
}

fn prefix(key: &str, v: Option<u8>, default: u8, width: u8) -> Result<u8, ConfigError> {
    within(key, v.unwrap_or(default), 8..=width)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LDAP: &str = r#"
        [directory]
        source = "ldap"
        urls = ["ldaps://dc1.example.com"]
        base_dn = "dc=example,dc=com"
    "#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/popup-ldap"))
    }

    fn error(text: &str) -> String {
        parse(text).expect_err("must be rejected").to_string()
    }

    #[test]
    fn minimal_ldap_config_gets_defaults() {
        let c = parse(LDAP).expect("valid");
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.server.path, "/popup");
        assert_eq!(c.lookup.deadline, Duration::from_secs(2));
        assert!(c.lookup.states.is_none());
        assert!(c.log.mask_numbers);
        assert_eq!(c.directory.phone_attributes, ["telephonenumber", "mobile"]);
        let SourceConfig::Ldap(l) = &c.directory.source else {
            panic!("ldap")
        };
        assert!(l.bind.is_none());
        assert!(!l.danger_accept_invalid_certs);
        assert_eq!(
            c.rate_limit,
            Some(RateLimitConfig {
                per_ip_per_second: 20,
                per_ip_burst: 40,
                global_per_second: 500,
                global_burst: 1000,
                ipv4_prefix: 32,
                ipv6_prefix: 64,
            })
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = error(&format!("{LDAP}\nbind_pasword = \"x\""));
        assert!(e.contains("bind_pasword"), "{e}");
        let e = error("[server]\nlisten = \"127.0.0.1:1\"\nport = 1\n[directory]\nsource=\"ldif\"\nldif=\"x\"");
        assert!(e.contains("port"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("[server]\nlisten = \"localhost\"", "server.listen"),
            ("[server]\npath = \"popup\"", "server.path"),
            ("[server]\npath = \"/readyz\"", "server.path"),
            ("[server]\nmax_body_bytes = 1", "server.max_body_bytes"),
            ("[server]\ntls_cert_file = \"c.pem\"", "server.tls_key_file"),
            ("[server]\ntls_key_file = \"k.pem\"", "server.tls_cert_file"),
            ("[phone]\ndefault_region = \"XX\"", "phone.default_region"),
            (
                "[phone]\nmax_extension_digits = 12",
                "phone.max_extension_digits",
            ),
            ("[lookup]\nstates = []", "lookup.states"),
            ("[lookup]\ndeadline_ms = 0", "lookup.deadline_ms"),
            ("[response]\nurl = \"intranet/{uid}\"", "response.url"),
            ("[response]\nclient_name = \"{cn\"", "response.client_name"),
            ("[rate_limit]\nper_ip_burst = 0", "rate_limit.per_ip_burst"),
            ("[metrics]\nlisten = \"9464\"", "metrics.listen"),
            ("[access]\nallow = [\"10.0.0.0/33\"]", "access.allow"),
            (
                "[access]\ntrusted_proxies = [\"proxy\"]",
                "access.trusted_proxies",
            ),
            (
                "[access]\ntoken_env = \"POPUP_LDAP_TEST_UNSET\"",
                "access.token_env",
            ),
            (
                "[access]\ntoken_file = \"/nonexistent/token\"",
                "access.token_file",
            ),
            (
                "[access]\ntoken_file = \"a\"\ntoken_env = \"B\"",
                "access.token_file",
            ),
            (
                "[access]\nallow = [\"192.0.2.9/24\"]",
                "access.allow: \"192.0.2.9/24\" has host bits set: write the network 192.0.2.0/24",
            ),
            ("[log]\nlevel = \"verbose!!\"", "log.level"),
            (
                "[server]\nlisten = \"127.0.0.1:8080\"\n[metrics]\nlisten = \"127.0.0.1:8080\"",
                "metrics.listen: 127.0.0.1:8080 is where server.listen (127.0.0.1:8080) already listens",
            ),
            (
                "[server]\nlisten = \"0.0.0.0:8080\"\n[metrics]\nlisten = \"127.0.0.1:8080\"",
                "metrics.listen",
            ),
            ("[server]\nheader_timeout_s = 0", "server.header_timeout_s"),
            ("[server]\nidle_timeout_s = 99999", "server.idle_timeout_s"),
            ("[server]\nmax_connections = 2", "server.max_connections"),
            ("[server]\nhttp2_max_streams = 0", "server.http2_max_streams"),
            ("[response]\nmax_url_chars = 1", "response.max_url_chars"),
            ("[rate_limit]\nipv6_prefix = 129", "rate_limit.ipv6_prefix"),
            ("[index]\nmax_entries = 0", "index.max_entries"),
        ];
        for (extra, key) in cases {
            let e = error(&format!("{LDAP}\n{extra}"));
            assert!(e.starts_with(key), "{extra}: {e}");
        }
    }

    #[test]
    fn directory_mistakes_name_their_key() {
        let cases = [
            ("[directory]\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"", "directory.source"),
            ("[directory]\nsource=\"sql\"", "directory.source"),
            ("[directory]\nsource=\"ldif\"", "directory.ldif"),
            ("[directory]\nsource=\"ldif\"\nldif=\"a\"\nurls=[\"ldaps://x\"]", "directory.urls"),
            ("[directory]\nsource=\"ldap\"\nbase_dn=\"dc=x\"", "directory.urls"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldap://x\"]\nbase_dn=\"dc=x\"", "directory.urls"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"http://x\"]\nbase_dn=\"dc=x\"", "directory.urls"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://\"]\nbase_dn=\"dc=x\"", "directory.urls"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nstarttls=true\nbase_dn=\"dc=x\"", "directory.starttls"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]", "directory.base_dn"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nscope=\"deep\"", "directory.scope"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nfilter=\"objectClass=person\"", "directory.filter"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nmatch_filter=\"(mobile={nope})\"", "directory.match_filter"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nphone_attributes=[]", "directory.phone_attributes"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nphone_attributes=[\"a b\"]", "directory.phone_attributes"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nbind_dn=\"cn=a\"", "directory.bind_password_file"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nbind_password_env=\"X\"", "directory.bind_dn"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nbind_dn=\"cn=a\"\nbind_password_file=\"/nonexistent/pw\"", "directory.bind_password_file"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nbind_dn=\"cn=a\"\nbind_password_env=\"POPUP_LDAP_TEST_UNSET\"", "directory.bind_password_env"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nmax_entries=0", "directory.max_entries"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\ntimeout_ms=0", "directory.timeout_ms"),
        ];
        for (text, key) in cases {
            let e = error(text);
            assert!(e.starts_with(key), "{text}: {e}");
        }
    }

    #[test]
    fn index_mode_is_the_default_and_its_keys_are_checked() {
        let c = parse(LDAP).expect("valid");
        let SourceConfig::Ldap(l) = &c.directory.source else {
            panic!("ldap")
        };
        let index = l.index.as_ref().expect("index mode by default");
        assert_eq!(index.poll_interval, Duration::from_secs(60));
        assert_eq!(index.full_resync_interval, Duration::from_secs(1800));
        assert_eq!(index.presence_check_interval, Duration::from_secs(300));
        // Unset, the presence check follows the other intervals.
        for (intervals, presence) in [
            ("poll_interval_s = 600\nfull_resync_interval_s = 3600", 600),
            ("poll_interval_s = 1\nfull_resync_interval_s = 60", 60),
        ] {
            let c = parse(&format!("{LDAP}\n[index]\n{intervals}")).expect("valid");
            let SourceConfig::Ldap(l) = &c.directory.source else {
                panic!("ldap")
            };
            let index = l.index.as_ref().expect("index");
            assert_eq!(index.presence_check_interval, Duration::from_secs(presence));
        }
        assert_eq!(
            (index.page_size, index.change_attribute.as_str()),
            (500, "modifyTimestamp")
        );
        let c = parse(&LDAP.replace("source", "mode = \"live\"\nsource")).expect("valid");
        let SourceConfig::Ldap(l) = &c.directory.source else {
            panic!("ldap")
        };
        assert!(l.index.is_none());

        let cases = [
            (
                LDAP.replace("source", "mode = \"cached\"\nsource"),
                "directory.mode",
            ),
            (
                format!(
                    "{}\n[index]\npoll_interval_s = 5",
                    LDAP.replace("source", "mode = \"live\"\nsource")
                ),
                "index",
            ),
            (
                format!("{LDAP}\n[index]\npage_size = 5000"),
                "index.page_size",
            ),
            (
                format!("{LDAP}\n[index]\npoll_interval_s = 0"),
                "index.poll_interval_s",
            ),
            (
                format!("{LDAP}\n[index]\npoll_interval_s = 600\nfull_resync_interval_s = 60"),
                "index.full_resync_interval_s",
            ),
            (
                format!("{LDAP}\n[index]\npoll_interval_s = 60\npresence_check_interval_s = 30"),
                "index.presence_check_interval_s",
            ),
            (
                format!("{LDAP}\n[index]\npresence_check_interval_s = 3600"),
                "index.presence_check_interval_s",
            ),
            (
                format!("{LDAP}\n[index]\nchange_attribute = \"when changed\""),
                "index.change_attribute",
            ),
            (format!("{LDAP}\n[index]\nrefresh = 1"), "refresh"),
            (
                "[directory]\nsource = \"ldif\"\nldif = \"x\"\n[index]\npoll_interval_s = 5"
                    .to_owned(),
                "index",
            ),
        ];
        for (text, key) in cases {
            let e = error(&text);
            assert!(e.starts_with(key) || e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn the_state_file_is_relative_to_the_config_or_off() {
        let c = parse(&format!(
            "{LDAP}\n[index]\nstate_file = \"state/index.state\""
        ))
        .expect("valid");
        let SourceConfig::Ldap(l) = &c.directory.source else {
            panic!("ldap")
        };
        let index = l.index.as_ref().expect("index");
        assert_eq!(
            index.state_file.as_deref(),
            Some(Path::new("/etc/popup-ldap/state/index.state"))
        );
        let c = parse(&format!("{LDAP}\n[index]\nstate_file = \"\"")).expect("valid");
        let SourceConfig::Ldap(l) = &c.directory.source else {
            panic!("ldap")
        };
        assert_eq!(l.index.as_ref().expect("index").state_file, None);
    }

    #[test]
    fn plaintext_needs_starttls_or_an_explicit_allowance() {
        let base = "[directory]\nsource=\"ldap\"\nbase_dn=\"dc=x\"\nurls=[\"ldap://x\"]\n";
        assert!(parse(&format!("{base}starttls = true")).is_ok());
        assert!(parse(&format!("{base}allow_plaintext = true")).is_ok());
    }

    #[test]
    fn password_from_a_file_is_read_and_redacted() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pw"), "s3cret\n").expect("write");
        let text = "[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\n\
                    bind_dn=\"cn=svc\"\nbind_password_file=\"pw\"";
        let c = Config::parse(text, dir.path()).expect("valid");
        let SourceConfig::Ldap(l) = &c.directory.source else {
            panic!("ldap")
        };
        let (dn, pw) = l.bind.as_ref().expect("bind");
        assert_eq!((dn.as_str(), pw.expose()), ("cn=svc", "s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn states_are_canonical() {
        let c = parse(&format!(
            "{LDAP}\n[lookup]\nstates = [\"Ringin\", \"DIALING\"]"
        ))
        .expect("valid");
        let states: Vec<_> = c.lookup.states.expect("set").into_iter().collect();
        assert_eq!(states, ["dialing", "ringing"]);
    }

    #[test]
    fn rate_limit_can_be_disabled() {
        let c = parse(&format!("{LDAP}\n[rate_limit]\nenabled = false")).expect("valid");
        assert!(c.rate_limit.is_none());
    }

    #[test]
    fn the_embedded_demo_is_valid() {
        let c = Config::embedded_demo().expect("demo config");
        assert!(matches!(
            c.directory.source,
            SourceConfig::Ldif(LdifData::Embedded(_))
        ));
    }

    #[test]
    fn not_toml_is_a_syntax_error() {
        assert!(matches!(parse("[directory"), Err(ConfigError::Syntax(_))));
        assert!(matches!(parse(""), Err(ConfigError::Syntax(_))));
    }
}

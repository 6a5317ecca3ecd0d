//! `[access]` and `[rate_limit]`: who may call, and how often.

use std::path::Path;

use super::raw::{RawAccess, RawRateLimit};
use super::secrets::SecretSource;
use super::{invalid, within, ConfigError};
use crate::cidr::Cidr;
use crate::secret::Secret;

const DEFAULT_PER_IP: (u32, u32) = (20, 40);
const DEFAULT_GLOBAL: (u32, u32) = (500, 1000);
const DEFAULT_PREFIXES: (u8, u8) = (32, 64);
/// A shorter shared secret is guessable.
const MIN_TOKEN_CHARS: usize = 16;

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

pub(super) fn access(raw: RawAccess, base: &Path) -> Result<AccessConfig, ConfigError> {
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

pub(super) fn rate_limit(raw: RawRateLimit) -> Result<Option<RateLimitConfig>, ConfigError> {
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

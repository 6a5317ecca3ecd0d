//! `[access]` and `[rate_limit]`: who may call, and how often.

use std::path::Path;

use super::raw::{RawAccess, RawRateLimit};
use super::secrets::SecretSource;
use super::{invalid, within, ConfigError};
use crate::cidr::Cidr;
use crate::http::{AccessSettings, RateLimitSettings};

const DEFAULT_PER_IP: (u32, u32) = (20, 40);
const DEFAULT_GLOBAL: (u32, u32) = (500, 1000);
const DEFAULT_PREFIXES: (u8, u8) = (32, 64);
/// A shorter shared secret is guessable.
pub(super) const MIN_TOKEN_CHARS: usize = 16;

pub(super) fn access(raw: RawAccess, base: &Path) -> Result<AccessSettings, ConfigError> {
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
    Ok(AccessSettings {
        token,
        allow: networks("access.allow", raw.allow)?,
        trusted_proxies: networks("access.trusted_proxies", raw.trusted_proxies)?,
    })
}

/// A list of networks under `key`.
pub(super) fn networks(key: &str, list: Option<Vec<String>>) -> Result<Vec<Cidr>, ConfigError> {
    list.unwrap_or_default()
        .iter()
        .map(|n| n.parse::<Cidr>().map_err(|e| invalid(key, e.to_string())))
        .collect()
}

pub(super) fn rate_limit(raw: RawRateLimit) -> Result<Option<RateLimitSettings>, ConfigError> {
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
    Ok(Some(RateLimitSettings {
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

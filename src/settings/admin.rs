//! `[admin]`: the console's listener, its token and who may reach it.

use std::net::SocketAddr;
use std::path::Path;

use super::access::{networks, MIN_TOKEN_CHARS};
use super::raw::RawAdmin;
use super::secrets::SecretSource;
use super::{invalid, ConfigError};
use crate::admin::AdminSettings;
use crate::http::ServerSettings;

/// This host only, unless `allow` says otherwise.
const DEFAULT_ALLOW: [&str; 2] = ["127.0.0.1/32", "::1/128"];

pub(super) fn admin(
    raw: Option<RawAdmin>,
    base: &Path,
    server: &ServerSettings,
) -> Result<Option<AdminSettings>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let listen = raw.listen.as_deref().ok_or_else(|| {
        invalid(
            "admin.listen",
            "missing: where the console listens, such as 127.0.0.1:9465",
        )
    })?;
    let listen: SocketAddr = listen.parse().map_err(|_| {
        invalid(
            "admin.listen",
            format!("{listen:?} is not an address and port such as 127.0.0.1:9465"),
        )
    })?;
    if listen == server.listen {
        return Err(invalid(
            "admin.listen",
            format!("{listen} is where server.listen already serves Voicenter; give the console its own address (or metrics.listen's)"),
        ));
    }
    let token = SecretSource {
        section: "admin",
        name: "token",
        file: raw.token_file.as_deref(),
        env: raw.token_env.as_deref(),
        credential: raw.token_credential.as_deref(),
    }
    .read(base)?
    .ok_or_else(|| {
        invalid(
            "admin.token_file",
            "the console needs a token: token_file, token_env or token_credential",
        )
    })?;
    if token.expose().len() < MIN_TOKEN_CHARS {
        return Err(invalid(
            "admin.token_file",
            format!("the token must be at least {MIN_TOKEN_CHARS} characters (try: openssl rand -hex 24)"),
        ));
    }
    let allow = raw
        .allow
        .unwrap_or_else(|| DEFAULT_ALLOW.iter().map(|s| s.to_string()).collect());
    Ok(Some(AdminSettings {
        listen,
        token,
        allow: networks("admin.allow", Some(allow))?,
        recent_calls: raw.recent_calls.unwrap_or(true),
    }))
}

//! `[log]`: level and number masking.

use super::raw::RawLog;
use super::{invalid, ConfigError};
use crate::logging::LogSettings;

pub(super) fn log(raw: RawLog) -> Result<LogSettings, ConfigError> {
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
    Ok(LogSettings {
        level,
        mask_numbers: raw.mask_numbers.unwrap_or(true),
    })
}

const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

//! `[index]`: how index mode follows the directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::RawIndex;
use super::{invalid, seconds, within, ConfigError};
use crate::directory::{IndexSettings, DEFAULT_PAGE_TIMEOUT};

const DEFAULT_POLL_S: u64 = 60;
const DEFAULT_FULL_RESYNC_S: u64 = 30 * 60;
const DEFAULT_PRESENCE_CHECK_S: u64 = 5 * 60;
const DEFAULT_PAGE_SIZE: u32 = 500;
/// Small pages keep each burst of the directory's sending and of the decoding shorter than a
/// scheduler slice, which a call's thread would otherwise wait out.
const DEFAULT_PACED_PAGE_SIZE: u32 = 50;
const DEFAULT_CHANGE_ATTRIBUTE: &str = "modifyTimestamp";
const DEFAULT_SYNC_TIMEOUT_S: u64 = 300;
const DEFAULT_READY_MAX_AGE_S: u64 = 3600;
/// Under systemd with `StateDirectory=`, the index is kept here by default.
const STATE_FILE_NAME: &str = "index.state";
const DEFAULT_INDEX_MAX_ENTRIES: usize = 1_000_000;

pub(super) fn index_config(raw: RawIndex, base: &Path) -> Result<IndexSettings, ConfigError> {
    let (poll_interval, full_resync_interval, presence_check_interval) = intervals(&raw)?;
    let page_size = page("index.page_size", raw.page_size, DEFAULT_PAGE_SIZE)?;
    let paced_page_size = page(
        "index.paced_page_size",
        raw.paced_page_size,
        DEFAULT_PACED_PAGE_SIZE,
    )?;
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
    Ok(IndexSettings {
        poll_interval,
        full_resync_interval,
        presence_check_interval,
        page_size,
        paced_page_size,
        change_attribute,
        state_file,
        sync_timeout: seconds(
            "index.sync_timeout_s",
            raw.sync_timeout_s,
            DEFAULT_SYNC_TIMEOUT_S,
            3600,
        )?,
        page_timeout: seconds(
            "index.page_timeout_s",
            raw.page_timeout_s,
            DEFAULT_PAGE_TIMEOUT.as_secs(),
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

/// A page size as written, or its default.
fn page(key: &str, value: Option<u32>, default: u32) -> Result<u32, ConfigError> {
    let size = value.unwrap_or(default);
    if !(1..=1000).contains(&size) {
        return Err(invalid(
            key,
            "must be between 1 and 1000 (Active Directory's MaxPageSize is 1000)",
        ));
    }
    Ok(size)
}

/// The poll, full resync and presence check intervals, in that order of length; the
/// presence check's default is clamped between the other two.
fn intervals(raw: &RawIndex) -> Result<(Duration, Duration, Duration), ConfigError> {
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
    Ok((poll_interval, full_resync_interval, presence_check_interval))
}

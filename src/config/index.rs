//! `[index]`: how index mode follows the directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::raw::RawIndex;
use super::{invalid, within, ConfigError};

const DEFAULT_POLL_S: u64 = 60;
const DEFAULT_FULL_RESYNC_S: u64 = 30 * 60;
const DEFAULT_PRESENCE_CHECK_S: u64 = 5 * 60;
const DEFAULT_PAGE_SIZE: u32 = 500;
const DEFAULT_CHANGE_ATTRIBUTE: &str = "modifyTimestamp";
const DEFAULT_SYNC_TIMEOUT_S: u64 = 300;
const DEFAULT_READY_MAX_AGE_S: u64 = 3600;
/// Under systemd with `StateDirectory=`, the index is kept here by default.
const STATE_FILE_NAME: &str = "index.state";
const DEFAULT_INDEX_MAX_ENTRIES: usize = 1_000_000;

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

impl IndexConfig {
    /// The largest state file that is read: `max_entries` x [`STATE_FILE_BYTES_PER_ENTRY`].
    pub fn state_file_limit(&self) -> u64 {
        (self.max_entries as u64).saturating_mul(STATE_FILE_BYTES_PER_ENTRY)
    }
}

/// State file bytes allowed per entry of `index.max_entries` (a real entry takes 300-600).
pub const STATE_FILE_BYTES_PER_ENTRY: u64 = 2048;

pub(super) fn index_config(raw: RawIndex, base: &Path) -> Result<IndexConfig, ConfigError> {
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

//! The index saved to the state file after syncs, and loaded from it when the directory
//! cannot be read at start.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::SyncedIndex;
use crate::directory::state::{Change, Header};
use crate::directory::{Entry, PhoneIndex};
use crate::locks::{lock, read, write};

/// A state file may say it was written this far in the future (clocks of restored VMs).
const CLOCK_SKEW: Duration = Duration::from_secs(300);
/// No state file was written before this (2026-01-01); an older time is a broken file.
const OLDEST_SNAPSHOT: u64 = 1_767_225_600;

impl SyncedIndex {
    /// Saves what a sync changed: appended to the journal when it can be (a full resync that
    /// changed nothing appends only its time), else as a new snapshot.
    pub(super) async fn persist(&self, changes: Option<Vec<Change>>, full: bool) {
        let Some(state) = self.state.clone() else {
            return;
        };
        let header = Header {
            written_at: unix_seconds(SystemTime::now()),
            server: self.status().server.unwrap_or_default(),
            watermark: lock(&self.progress).watermark.clone(),
        };
        let index = self.index.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut state = lock(&state);
            let result = match changes {
                Some(changes) if state.can_append() && (full || !changes.is_empty()) => {
                    state.append(&changes, &header)
                }
                _ => {
                    let entries: Vec<Entry> = read(&index).all().map(|(_, e)| e.clone()).collect();
                    state.write_snapshot(&header, &entries)
                }
            };
            result.map_err(|e| (state.path().to_owned(), e))
        })
        .await;
        match written {
            Ok(Ok(_)) => {}
            Ok(Err((path, e))) => tracing::warn!(
                state_file = %path.display(), error = %e,
                "cannot save the index; a restart during an outage would have nothing to answer from"
            ),
            Err(e) => tracing::warn!(error = %e, "saving the index failed"),
        }
    }

    /// Loads the state file (snapshot and journal) into the index; returns its age.
    pub(super) async fn load_state(&self) -> Result<Duration, String> {
        let Some(state) = self.state.clone() else {
            return Err("no state file".to_owned());
        };
        let (keyer, max) = (self.keyer.clone(), self.config.max_entries);
        let loaded = tokio::task::spawn_blocking(move || {
            let mut state = lock(&state);
            let mut index = PhoneIndex::new(keyer);
            let mut over = false;
            let loaded = state.load(|change| over |= !load_change(&mut index, change, max))?;
            if over {
                return Err(format!(
                    "it holds more than index.max_entries ({max}) entries"
                ));
            }
            Ok((index, loaded))
        })
        .await
        .map_err(|e| e.to_string())??;
        let (index, loaded) = loaded;
        let written = written_at(loaded.header.written_at, SystemTime::now())?;
        tracing::info!(
            entries = loaded.entries,
            journal_changes = loaded.changes,
            "saved index read"
        );
        if let Some(why) = &loaded.journal_cut {
            tracing::warn!(
                why = %why, changes = loaded.changes,
                "the state file's journal was read up to its last complete change"
            );
        }
        *write(&self.index) = index;
        self.version.fetch_add(1, Ordering::Relaxed);
        {
            let mut p = lock(&self.progress);
            // Resync fully as soon as the directory is back: the saved index may be old.
            p.watermark = loaded.header.watermark;
            p.last_full = None;
        }
        let server = loaded.header.server;
        self.synced_from(&server);
        {
            let mut s = lock(&self.status);
            s.synced_at = Some(written);
            s.server = Some(server);
            s.from_snapshot = true;
        }
        Ok(SystemTime::now()
            .duration_since(written)
            .unwrap_or_default())
    }
}

/// Applies one saved change to an index being loaded; `false` when the index is full.
fn load_change(index: &mut PhoneIndex, change: Change, max: usize) -> bool {
    let dn = match &change {
        Change::Put(e) => e.dn(),
        Change::Drop(dn) => dn.as_str(),
    };
    let old = index.held(dn).map(|(_, e)| e.clone());
    if old.is_none() && matches!(change, Change::Put(_)) && index.entries() >= max {
        return false;
    }
    let old = old.map(|e| index.keyer().key(e));
    let new = match change {
        Change::Put(e) => Some(index.keyer().key(e)),
        Change::Drop(_) => None,
    };
    index.replace(old.as_ref(), new);
    true
}

pub(super) fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The time a state file says it was written, if it is believable: not before this format
/// existed, and not in the future beyond [`CLOCK_SKEW`].
fn written_at(unix: u64, now: SystemTime) -> Result<SystemTime, String> {
    let at = UNIX_EPOCH
        .checked_add(Duration::from_secs(unix))
        .filter(|t| *t <= now + CLOCK_SKEW)
        .ok_or_else(|| format!("it says it was written in the future (unix time {unix})"))?;
    if unix < OLDEST_SNAPSHOT {
        return Err(format!(
            "its time (unix time {unix}) is older than this software"
        ));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbelievable_state_file_times_are_refused() {
        let now = UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        assert!(written_at(1_790_000_000, now).is_ok());
        assert!(
            written_at(1_790_000_200, now).is_ok(),
            "within the clock skew"
        );
        for (unix, why) in [
            (u64::MAX, "in the future"),
            (99_999_999_999, "in the future"),
            (0, "older than this software"),
        ] {
            let e = written_at(unix, now).expect_err("refused");
            assert!(e.contains(why), "{unix}: {e}");
        }
    }
}

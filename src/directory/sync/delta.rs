//! Polls: what changed since the watermark, tombstones included on Active Directory.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use super::saved::unix_seconds;
use super::{SyncKind, SyncReport, SyncedIndex};
use crate::directory::ldap::{DcIdentity, Fetched, Paging, Read};
use crate::directory::{DirectoryError, Entry};
use crate::locks::{lock, read};

impl SyncedIndex {
    /// Makes the last sync's read look `later` than it was (tests of [`next_settled_second`]).
    #[doc(hidden)]
    pub fn pretend_read_later(&self, later: Duration) {
        let mut progress = lock(&self.progress);
        progress.last_read = progress.last_read.map(|t| t + later);
    }

    /// Applies what changed since the watermark: eligible entries with numbers are added or
    /// replaced, other changed entries are removed.
    ///
    /// The first search reads every entry changed since the watermark; when there is none,
    /// the poll ends there. With `modifyTimestamp` or `whenChanged` the filter is `>=` the
    /// watermark until its second has settled (see [`next_settled_second`]), so that second
    /// is read again (the attributes have one-second resolution, and a strict `>` would miss
    /// a change made later in that second): such polls search twice, but apply nothing that
    /// is held as read; once settled, it is `>=` the next second. With `entryCSN` (a value
    /// per change) and with `uSNChanged` (read on the DC it belongs to; another DC, or the
    /// same one restored, means reading everything again) the filter is a strict `>`.
    ///
    /// With `uSNChanged`, tombstones changed since the watermark are read as well (Show
    /// Deleted control) and the DNs their objects had join the first search's.
    ///
    /// The second search reads the changed entries that are eligible. An entry is removed
    /// only when the first read returned it and the later one no longer does, so a change made
    /// between the two never drops a person who still qualifies. The next watermark is the
    /// first read's: what changed during the poll is read again by the next one.
    pub async fn delta_sync(&self) -> Result<SyncReport, DirectoryError> {
        self.delta_sync_with(async {}).await
    }

    /// [`SyncedIndex::delta_sync`], running `between` after the first search and before the
    /// second (tests use it to change the directory at the worst moment).
    #[doc(hidden)]
    pub async fn delta_sync_with(
        &self,
        between: impl std::future::Future<Output = ()>,
    ) -> Result<SyncReport, DirectoryError> {
        let (watermark, bound, last_read) = {
            let p = lock(&self.progress);
            (p.watermark.clone(), p.dc.clone(), p.last_read)
        };
        let Some(watermark) = watermark else {
            return self.full_sync().await;
        };
        let Some(changed) = self.changed_filter(&watermark, last_read) else {
            return self.full_sync().await;
        };
        let started = Instant::now();
        let mut touched: HashSet<String> = HashSet::new();
        // Only the names: whether they are still eligible, the second search says.
        let all_changed = self.names(&changed, Read::Names, &mut touched).await?;
        if self.other_dc(&all_changed, bound.as_ref()) {
            return self.full_sync().await;
        }
        let watermark = match &all_changed.dc {
            Some(dc) => Some(dc.highest_usn.to_string()),
            None => all_changed.watermark.clone(),
        };
        if self.per_dc {
            // Deleted entries, by the names they had: the second search cannot return them.
            let filter = format!("(&(isDeleted=TRUE){changed})");
            let deleted = self.names(&filter, Read::Deleted, &mut touched).await?;
            if self.other_dc(&deleted, bound.as_ref()) {
                return self.full_sync().await;
            }
        }
        if touched.is_empty() {
            self.advance(watermark, false, &all_changed, started.elapsed());
            return Ok(self.report(SyncKind::Delta, (all_changed.count, 0, 0), started));
        }
        between.await;
        let first = (touched, all_changed.count, watermark);
        self.apply_changed(&changed, first, bound.as_ref(), started)
            .await
    }

    /// Adds to `touched` the DNs (lower-cased) that a search of `filter` reads as `read`.
    pub(super) async fn names(
        &self,
        filter: &str,
        read: Read,
        touched: &mut HashSet<String>,
    ) -> Result<Fetched, DirectoryError> {
        let paging = Paging {
            read,
            ..self.paging()
        };
        self.fetch_with(filter, paging, |batch| {
            touched.extend(batch.iter().map(|e| e.dn().to_lowercase()))
        })
        .await
    }

    /// A poll's second half: reads the changed entries that are eligible into the index,
    /// removes those of `touched` (the first search's) it no longer returns, and saves what
    /// changed. `first`: the DNs the first search returned, how many, and its watermark.
    pub(super) async fn apply_changed(
        &self,
        changed: &str,
        (touched, searched, watermark): (HashSet<String>, usize, Option<String>),
        bound: Option<&DcIdentity>,
        started: Instant,
    ) -> Result<SyncReport, DirectoryError> {
        let applier = self.applier(false);
        let eligible = format!("(&{}{changed})", self.eligible);
        let upserts = self
            .fetch_with(&eligible, self.paging(), |batch| applier.send(batch))
            .await?;
        let mut applied = applier.finish().await?;
        if self.other_dc(&upserts, bound) {
            return self.full_sync().await;
        }
        let gone: Vec<Entry> = {
            let index = read(&self.index);
            touched
                .iter()
                .filter(|dn| !applied.read.contains(*dn))
                .filter_map(|dn| index.held(dn).map(|(_, e)| e.clone()))
                .collect()
        };
        let removed = self.remove(gone, &mut applied).await?;
        let counts = (searched + upserts.count, applied.changed, removed);
        let report = self.report(SyncKind::Delta, counts, started);
        self.advance(watermark, false, &upserts, report.took);
        if applied.changed + removed > 0 {
            self.persist(applied.changes, false).await;
        }
        if applied.refused > 0 {
            tracing::warn!(
                left_out = applied.refused,
                max_entries = self.config.max_entries,
                "the index is full: new entries were left out; raise index.max_entries"
            );
        }
        Ok(report)
    }

    /// The filter of entries changed since `watermark`; `None` when it cannot be used.
    /// `last_read`: when the last sync's read began (see [`next_settled_second`]).
    pub(super) fn changed_filter(
        &self,
        watermark: &str,
        last_read: Option<SystemTime>,
    ) -> Option<String> {
        let attr = &self.config.change_attribute;
        if self.per_dc {
            let usn = watermark.parse::<u64>().ok()?;
            return Some(format!("({attr}>={})", usn.saturating_add(1)));
        }
        let at = ldap3::ldap_escape(watermark);
        if self.exact {
            return Some(format!("(&({attr}>={at})(!({attr}={at})))"));
        }
        // Not `(!(attr=w))`: a directory cannot answer a negation from its index, and reads
        // every entry of the watermark's second (after a bulk load, all of them) to apply it.
        Some(
            match last_read.and_then(|read| next_settled_second(watermark, read)) {
                Some(next) => format!("({attr}>={next})"),
                None => format!("({attr}>={at})"),
            },
        )
    }

    /// Whether `fetched` was read on another DC than the watermark's (or a restored one).
    pub(super) fn other_dc(&self, fetched: &Fetched, bound: Option<&DcIdentity>) -> bool {
        if !self.per_dc || fetched.dc.as_ref().map(|d| &d.identity) == bound {
            return false;
        }
        tracing::info!(
            server = %fetched.server,
            dc = %fetched.dc.as_ref().map_or("-", |d| d.identity.service.as_str()),
            was = %bound.map_or("-", |d| d.service.as_str()),
            "another domain controller (or a restored one) answered: reading everything again"
        );
        true
    }
}

/// How far the directory's clock may lag behind this host's without a change being missed:
/// see [`next_settled_second`].
const CLOCK_SKEW_MARGIN: Duration = Duration::from_secs(5 * 60);

/// The second after `watermark`'s (a generalized time: `modifyTimestamp`, `whenChanged`), as
/// a generalized time in UTC, once that second had ended on the directory's clock when a read
/// began at `read` on this host's, with [`CLOCK_SKEW_MARGIN`] to spare. A read made then saw
/// every entry stamped in that second as it stays (a later change gets a later stamp, and the
/// watermark is the latest stamp read), so the next polls may ask for later seconds only, and
/// an idle poll reads nothing. Until then (`None`) each poll reads that second's entries
/// again. A value that does not parse is never settled.
fn next_settled_second(watermark: &str, read: SystemTime) -> Option<String> {
    let format = time::macros::format_description!("[year][month][day][hour][minute][second]");
    let second = time::PrimitiveDateTime::parse(watermark.get(..14)?, format).ok()?;
    // UTC only ("Z", with or without a fraction): others are not worth the risk.
    let offset = &watermark[14..];
    let utc = offset == "Z"
        || offset.strip_prefix('.').is_some_and(|f| {
            f.strip_suffix('Z')
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        });
    let next = second.assume_utc().checked_add(time::Duration::SECOND)?;
    let ends = u64::try_from(next.unix_timestamp()).ok()?;
    let settled = utc && unix_seconds(read) >= ends.saturating_add(CLOCK_SKEW_MARGIN.as_secs());
    let text = next.format(format).ok()?;
    settled.then(|| format!("{text}Z"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn a_timestamps_second_is_settled_once_read_well_after_it() {
        let second = UNIX_EPOCH + Duration::from_secs(1_794_987_200);
        let stamp = "20261118073320Z"; // that second
        let margin = CLOCK_SKEW_MARGIN + Duration::from_secs(1);
        let next = Some("20261118073321Z".to_owned());
        assert_eq!(next_settled_second(stamp, second), None);
        assert_eq!(
            next_settled_second(stamp, second + margin - Duration::from_secs(1)),
            None
        );
        assert_eq!(next_settled_second(stamp, second + margin), next);
        assert_eq!(
            next_settled_second("20261118073320.0Z", second + margin),
            next
        );
        assert_eq!(
            next_settled_second("20261118073320.75Z", second + margin),
            next
        );
        // The next second may be the next year's.
        assert_eq!(
            next_settled_second("20261231235959Z", second + Duration::from_secs(86_400 * 60)),
            Some("20270101000000Z".to_owned())
        );
        // Other forms, and values that are no time, are never settled.
        for other in [
            "20261118073320+0200",
            "20261118073320",
            "20261118073320.Z",
            "42",
            "",
        ] {
            assert_eq!(
                next_settled_second(other, second + margin * 100),
                None,
                "{other}"
            );
        }
    }
}

//! Full syncs (everything read, compared, the unread removed) and presence checks (only the
//! names read, the missing removed).

use std::time::Instant;

use super::apply::Applied;
use super::{SyncKind, SyncReport, SyncedIndex};
use crate::directory::ldap::{DcState, Fetched, Read};
use crate::directory::{DirectoryError, Entry};
use crate::locks::{lock, read};

impl SyncedIndex {
    /// Reads everything again and brings the index in line, in place: entries held exactly
    /// as read are kept (not normalised again), changed ones replaced, and those not read
    /// removed at the end. Calls are answered throughout, from one index; once they are, the
    /// read is paced (small pages at half speed) to leave them the machine.
    ///
    /// The next watermark is the one from before this read when there was one: an entry made
    /// ineligible while the read runs, after its page was read, may carry an older stamp than
    /// the newest one read, and the next poll must still see it. (With `uSNChanged` the DC's
    /// USN is read before the search, which is exact.)
    pub async fn full_sync(&self) -> Result<SyncReport, DirectoryError> {
        self.full_sync_with(|| {}).await
    }

    /// [`SyncedIndex::full_sync`], running `after_first_page` once the first page is read
    /// (tests use it to change the directory in the middle of the read).
    #[doc(hidden)]
    pub async fn full_sync_with(
        &self,
        after_first_page: impl FnOnce(),
    ) -> Result<SyncReport, DirectoryError> {
        let started = Instant::now();
        let applier = self.applier(true);
        let paging = self.paging_all(Read::Entries);
        let mut hook = Some(after_first_page);
        let fetched = self
            .fetch_with(&self.eligible, paging, |batch| {
                applier.send(batch);
                if let Some(hook) = hook.take() {
                    hook();
                }
            })
            .await?;
        let mut applied = applier.finish().await?;
        let unread = self.unmarked(&applied.marks);
        let removed = self.remove(unread, &mut applied).await?;
        if applied.refused > 0 {
            return Err(DirectoryError::Unavailable(format!(
                "the directory has more entries with numbers than index.max_entries ({}): {} \
                 were left out; narrow directory.filter or raise index.max_entries",
                self.config.max_entries, applied.refused
            )));
        }
        let watermark = match &fetched.dc {
            Some(dc) => {
                self.note_dc(&fetched, dc);
                Some(dc.highest_usn.to_string())
            }
            None => lock(&self.progress)
                .watermark
                .clone()
                .or_else(|| fetched.watermark.clone()),
        };
        let counts = (fetched.count, applied.changed, removed);
        let report = self.report(SyncKind::Full, counts, started);
        self.advance(watermark, true, &fetched, report.took);
        self.persist(applied.changes, true).await;
        Ok(report)
    }

    /// The held entries whose slots are not marked.
    pub(super) fn unmarked(&self, marks: &[bool]) -> Vec<Entry> {
        read(&self.index)
            .all()
            .filter(|(slot, _)| !marks.get(*slot as usize).copied().unwrap_or(false))
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Reads the name of every eligible entry and removes the held entries it did not
    /// return: those deleted, or moved out of the base, since they were read. Cheaper than a
    /// full resync (no attributes, nothing compared) and, unlike a poll, it sees what no
    /// longer exists. It runs on the sync thread between polls, so nothing else changes the
    /// index meanwhile. When another server (or DC) answers than the one the index was last
    /// synced from, which may lag behind it, it becomes a full resync instead.
    pub async fn presence_check(&self) -> Result<SyncReport, DirectoryError> {
        let started = Instant::now();
        let bound = lock(&self.progress).dc.clone();
        let paging = self.paging_all(Read::Names);
        let mut applied = Applied {
            changes: self.state.is_some().then(Vec::new),
            ..Applied::default()
        };
        let fetched = self
            .fetch_with(&self.eligible, paging, |batch| {
                let index = read(&self.index);
                for entry in &batch {
                    if let Some((slot, _)) = index.held(entry.dn()) {
                        applied.mark(slot);
                    }
                }
            })
            .await?;
        let last = self.server.load_full();
        if self.other_dc(&fetched, bound.as_ref())
            || last.as_deref().is_some_and(|s| *s != fetched.server)
        {
            return self.full_sync().await;
        }
        let unread = self.unmarked(&applied.marks);
        let removed = self.remove(unread, &mut applied).await?;
        lock(&self.progress).last_presence = Some(Instant::now());
        if removed > 0 {
            self.persist(applied.changes, false).await;
        }
        Ok(self.report(SyncKind::Presence, (fetched.count, 0, removed), started))
    }

    pub(super) fn note_dc(&self, fetched: &Fetched, dc: &DcState) {
        let known = lock(&self.progress).dc.clone();
        if known.as_ref() != Some(&dc.identity) {
            tracing::info!(
                server = %fetched.server, dc = %dc.identity.service,
                invocation_id = %dc.identity.invocation_id, usn = dc.highest_usn,
                "index bound to this domain controller's uSNChanged"
            );
        }
    }
}

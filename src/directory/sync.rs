//! Index mode: the directory's phone entries read with paged searches into a [`PhoneIndex`],
//! kept fresh by polling the change attribute and full resyncs, changed in place (a sync costs
//! what changed), kept through outages and persisted to a state file so that a restart during
//! an outage still answers.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::index::{KeyedEntry, Keyer};
use super::ldap::{DcIdentity, Fetched, LdapDirectory, Paging, Read};
use super::state::{Change, Header, StateFile};
use super::{DirectoryError, Entry, Match, PhoneIndex};
use crate::config::{IndexConfig, LdapConfig};
use crate::locks::{lock, read, write};
use crate::phone::{PhoneKey, PhoneNormalizer};

/// A state file may say it was written this far in the future (clocks of restored VMs).
const CLOCK_SKEW: Duration = Duration::from_secs(300);
/// No state file was written before this (2026-01-01); an older time is a broken file.
const OLDEST_SNAPSHOT: u64 = 1_767_225_600;
/// First retry after a failed sync; doubles up to the poll interval.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// A sync that changes more entries than this writes a new snapshot instead of a journal.
const MAX_JOURNALED: usize = 65_536;
/// Entries removed per write lock (each costs normalising its numbers first, outside it).
const REMOVE_BATCH: usize = 1024;

/// What the last syncs achieved: for logs, `lookup`, and readiness.
#[derive(Clone, Debug, Default)]
pub struct SyncStatus {
    /// When the index last matched the directory (a sync succeeded, or the snapshot's time).
    pub synced_at: Option<SystemTime>,
    /// The server of the last successful sync (or of the snapshot).
    pub server: Option<String>,
    /// Set while the index was loaded from the state file and no sync has succeeded since.
    pub from_snapshot: bool,
    /// The error of the last failed sync, cleared by a success.
    pub last_error: Option<String>,
    /// How long the last successful sync took.
    pub last_duration: Option<Duration>,
    /// Successful syncs since start.
    pub succeeded: u64,
    /// Failed syncs since start.
    pub failed: u64,
}

/// What one sync did.
#[derive(Clone, Debug)]
pub struct SyncReport {
    /// `full` or `delta`.
    pub kind: &'static str,
    /// Entries the directory returned (a delta's two searches together).
    pub searched: usize,
    /// Entries read that changed the index (added or replaced).
    pub read: usize,
    /// Entries removed from the index.
    pub removed: usize,
    /// Entries in the index afterwards.
    pub entries: usize,
    /// Distinct numbers in the index afterwards.
    pub numbers: usize,
    /// How long it took.
    pub took: Duration,
}

/// An index that follows an LDAP directory.
pub struct SyncedIndex {
    index: Arc<RwLock<PhoneIndex>>,
    /// Counts the changes made to the index.
    version: Arc<AtomicU64>,
    status: Mutex<SyncStatus>,
    progress: Mutex<Progress>,
    ldap: LdapDirectory,
    config: IndexConfig,
    eligible: String,
    keyer: Keyer,
    /// Set for `uSNChanged`: every sync is bound to the domain controller it read.
    per_dc: bool,
    /// Set for `entryCSN`: every change has its own value, so the watermark's own need not be
    /// read again.
    exact: bool,
    server: arc_swap::ArcSwapOption<String>,
    state: Option<Arc<Mutex<StateFile>>>,
    /// Set once calls are answered: full resyncs are then paced.
    serving: std::sync::atomic::AtomicBool,
    /// Tells the sync thread to start polling; dropped with the index, which ends the thread.
    follow: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

#[derive(Default)]
struct Progress {
    watermark: Option<String>,
    last_full: Option<Instant>,
    /// When the last presence check (or full resync) ended.
    last_presence: Option<Instant>,
    /// When the read of the last successful sync began.
    last_read: Option<SystemTime>,
    /// The DC the watermark belongs to (`uSNChanged` only).
    dc: Option<DcIdentity>,
}

impl SyncedIndex {
    /// Reads the whole directory once; when that fails, loads the state file instead. Fails
    /// with both causes when neither works.
    pub async fn start(
        ldap: LdapDirectory,
        config: &LdapConfig,
        index: &IndexConfig,
        phone: &PhoneNormalizer,
        phone_attributes: &[String],
        wanted_attributes: &[String],
    ) -> Result<Arc<Self>, DirectoryError> {
        let fingerprint = format!(
            "base={};scope={:?};filter={};phones={};attributes={}",
            config.base_dn,
            config.scope,
            config.filter,
            phone_attributes.join(","),
            wanted_attributes.join(",")
        );
        let keyer = Keyer::new(phone_attributes, phone);
        let synced = Arc::new(SyncedIndex {
            index: Arc::new(RwLock::new(PhoneIndex::new(keyer.clone()))),
            version: Arc::new(AtomicU64::new(0)),
            status: Mutex::new(SyncStatus::default()),
            progress: Mutex::new(Progress::default()),
            ldap,
            eligible: config.eligible_filter(phone_attributes),
            per_dc: index.change_attribute.eq_ignore_ascii_case("uSNChanged"),
            exact: index.change_attribute.eq_ignore_ascii_case("entryCSN"),
            config: index.clone(),
            keyer,
            server: arc_swap::ArcSwapOption::empty(),
            serving: std::sync::atomic::AtomicBool::new(false),
            follow: Mutex::new(None),
            state: index.state_file.clone().map(|path| {
                Arc::new(Mutex::new(StateFile::new(
                    path,
                    fingerprint,
                    index.state_file_limit(),
                )))
            }),
        });
        let (opened, result) = tokio::sync::oneshot::channel();
        let (follow, start_following) = tokio::sync::oneshot::channel();
        *lock(&synced.follow) = Some(follow);
        let first = synced.clone();
        std::thread::Builder::new()
            .name("popup-ldap-syncs".into())
            .spawn(move || sync_thread(first, opened, start_following))
            .map_err(|e| DirectoryError::Startup(format!("cannot start the sync thread: {e}")))?;
        result
            .await
            .map_err(|_| DirectoryError::Startup("the sync thread failed".to_owned()))??;
        Ok(synced)
    }

    /// The first sync (or, when the directory cannot be read, the state file).
    async fn open(&self) -> Result<(), DirectoryError> {
        let sync_error = match self.full_sync().await {
            Ok(report) => {
                tracing::info!(
                    entries = report.entries,
                    numbers = report.numbers,
                    ms = report.took.as_millis() as u64,
                    "index built from the directory"
                );
                return Ok(());
            }
            Err(e) => e,
        };
        let Some(path) = &self.config.state_file else {
            return Err(DirectoryError::Startup(format!(
                "the first sync failed ({sync_error}) and no index.state_file is configured to \
                 start from"
            )));
        };
        match self.load_state().await {
            Ok(age) => {
                tracing::warn!(
                    error = %sync_error,
                    state_file = %path.display(),
                    age_s = age.as_secs(),
                    "directory unreachable: answering from the saved index until a sync succeeds"
                );
                Ok(())
            }
            Err(state_error) => Err(DirectoryError::Startup(format!(
                "the first sync failed ({sync_error}) and the saved index cannot be used \
                 ({state_error})"
            ))),
        }
    }

    /// Keeps the index fresh until the last reference to it is dropped.
    pub fn spawn(self: &Arc<Self>) {
        self.serving.store(true, Ordering::Relaxed);
        let follow = lock(&self.follow).take();
        if let Some(follow) = follow {
            let _ = follow.send(());
        }
    }

    /// The directory the index follows.
    pub fn ldap(&self) -> &LdapDirectory {
        &self.ldap
    }

    /// The entries holding `key`.
    pub fn find(&self, key: &PhoneKey) -> Vec<Match> {
        read(&self.index).find(key)
    }

    /// The server the index was last synced from (or saved from).
    pub fn server(&self) -> Option<Arc<String>> {
        self.server.load_full()
    }

    /// Entries and distinct numbers in the index.
    pub fn counts(&self) -> (usize, usize) {
        let index = read(&self.index);
        (index.entries(), index.numbers())
    }

    /// How many times the index was changed since start: a poll that found nothing to do
    /// leaves it as it was.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// Whether the index is young enough to answer from (`index.ready_max_age_s`).
    pub fn fresh(&self) -> Result<(), String> {
        let status = self.status();
        let age = status
            .synced_at
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or(Duration::MAX);
        if age <= self.config.ready_max_age {
            return Ok(());
        }
        Err(format!(
            "the index is {} s old (index.ready_max_age_s is {}){}",
            age.as_secs(),
            self.config.ready_max_age.as_secs(),
            status
                .last_error
                .map(|e| format!("; last sync failed: {e}"))
                .unwrap_or_default()
        ))
    }

    /// What the syncs achieved.
    pub fn status(&self) -> SyncStatus {
        lock(&self.status).clone()
    }

    /// Reads everything again and brings the index in line, in place: entries held exactly
    /// as read are kept (not normalised again), changed ones replaced, and those not read
    /// removed at the end. Calls are answered throughout, from one index; once they are, the
    /// read is paced (half speed) to leave them the machine.
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
        let paging = Paging {
            paced: self.serving.load(Ordering::Relaxed),
            ..self.paging()
        };
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
        let report = self.report("full", counts, started);
        self.advance(watermark, true, &fetched, report.took);
        self.persist(applied.changes, true).await;
        Ok(report)
    }

    /// The held entries whose slots are not marked.
    fn unmarked(&self, marks: &[bool]) -> Vec<Arc<Entry>> {
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
        let paging = Paging {
            read: Read::Names,
            paced: self.serving.load(Ordering::Relaxed),
            ..self.paging()
        };
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
        Ok(self.report("presence", (fetched.count, 0, removed), started))
    }

    /// Makes the last sync's read look `later` than it was (tests of [`second_settled`]).
    #[doc(hidden)]
    pub fn pretend_read_later(&self, later: Duration) {
        let mut progress = lock(&self.progress);
        progress.last_read = progress.last_read.map(|t| t + later);
    }

    fn note_dc(&self, fetched: &Fetched, dc: &super::ldap::DcState) {
        let known = lock(&self.progress).dc.clone();
        if known.as_ref() != Some(&dc.identity) {
            tracing::info!(
                server = %fetched.server, dc = %dc.identity.service,
                invocation_id = %dc.identity.invocation_id, usn = dc.highest_usn,
                "index bound to this domain controller's uSNChanged"
            );
        }
    }

    /// Applies what changed since the watermark: eligible entries with numbers are added or
    /// replaced, other changed entries are removed.
    ///
    /// The first search reads every entry changed since the watermark; when there is none,
    /// the poll ends there. With `modifyTimestamp` or `whenChanged` the filter is `>=` the
    /// watermark until its second has settled (see [`second_settled`]), so that second is read
    /// again (the attributes have one-second resolution, and a strict `>` would miss a change
    /// made later in that second): such polls search twice, but apply nothing that is held as
    /// read. Once settled, with `entryCSN` (a value per change) and with `uSNChanged` (read on
    /// the DC it belongs to; another DC, or the same one restored, means reading everything
    /// again) the filter is a strict `>`.
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
            return Ok(self.report("delta", (all_changed.count, 0, 0), started));
        }
        between.await;
        let first = (touched, all_changed.count, watermark);
        self.apply_changed(&changed, first, bound.as_ref(), started)
            .await
    }

    /// Adds to `touched` the DNs (lower-cased) that a search of `filter` reads as `read`.
    async fn names(
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
    async fn apply_changed(
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
        let gone: Vec<Arc<Entry>> = {
            let index = read(&self.index);
            touched
                .iter()
                .filter(|dn| !applied.read.contains(*dn))
                .filter_map(|dn| index.held(dn).map(|(_, e)| e.clone()))
                .collect()
        };
        let removed = self.remove(gone, &mut applied).await?;
        let counts = (searched + upserts.count, applied.changed, removed);
        let report = self.report("delta", counts, started);
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
    /// `last_read`: when the last sync's read began (see [`second_settled`]).
    fn changed_filter(&self, watermark: &str, last_read: Option<SystemTime>) -> Option<String> {
        let attr = &self.config.change_attribute;
        if self.per_dc {
            let usn = watermark.parse::<u64>().ok()?;
            return Some(format!("({attr}>={})", usn.saturating_add(1)));
        }
        let at = ldap3::ldap_escape(watermark);
        let settled = last_read.is_some_and(|read| second_settled(watermark, read));
        Some(if self.exact || settled {
            format!("(&({attr}>={at})(!({attr}={at})))")
        } else {
            format!("({attr}>={at})")
        })
    }

    /// Whether `fetched` was read on another DC than the watermark's (or a restored one).
    fn other_dc(&self, fetched: &Fetched, bound: Option<&DcIdentity>) -> bool {
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

    fn applier(&self, full: bool) -> Applier {
        Applier::start(
            self.index.clone(),
            self.version.clone(),
            self.keyer.clone(),
            full,
            self.config.max_entries,
            self.state.is_some(),
        )
    }

    /// Removes `entries` from the index, a batch per write lock, normalising each batch
    /// first (outside the lock) to find its numbers.
    async fn remove(
        &self,
        entries: Vec<Arc<Entry>>,
        applied: &mut Applied,
    ) -> Result<usize, DirectoryError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let (index, version, keyer) =
            (self.index.clone(), self.version.clone(), self.keyer.clone());
        let count = entries.len();
        let dropped = tokio::task::spawn_blocking(move || {
            let mut dropped = Vec::with_capacity(count);
            for batch in entries.chunks(REMOVE_BATCH) {
                let keyed: Vec<KeyedEntry> = batch.iter().map(|e| keyer.key(e.clone())).collect();
                let mut index = write(&index);
                for old in &keyed {
                    index.replace(Some(old), None);
                    dropped.push(Change::Drop(old.entry().dn().to_owned()));
                }
                version.fetch_add(1, Ordering::Relaxed);
            }
            dropped
        })
        .await
        .map_err(|e| DirectoryError::Unavailable(format!("the sync thread failed: {e}")))?;
        applied.journal(dropped);
        Ok(count)
    }

    /// Paged reads as configured, at full speed, with every attribute.
    fn paging(&self) -> Paging {
        Paging {
            page_size: i32::try_from(self.config.page_size).unwrap_or(500),
            paced: false,
            read: Read::Entries,
        }
    }

    async fn fetch_with(
        &self,
        filter: &str,
        paging: Paging,
        batch: impl FnMut(Vec<Entry>),
    ) -> Result<Fetched, DirectoryError> {
        let fetch = self.ldap.fetch_all(
            filter,
            paging,
            &self.config.change_attribute,
            self.per_dc,
            batch,
        );
        match tokio::time::timeout(self.config.sync_timeout, fetch).await {
            Ok(result) => result,
            Err(_) => Err(DirectoryError::Unavailable(format!(
                "a sync took longer than index.sync_timeout_s ({} s)",
                self.config.sync_timeout.as_secs()
            ))),
        }
    }

    /// `counts`: entries searched, read into the index, removed from it.
    fn report(
        &self,
        kind: &'static str,
        (searched, read, removed): (usize, usize, usize),
        started: Instant,
    ) -> SyncReport {
        let (entries, numbers) = self.counts();
        SyncReport {
            kind,
            searched,
            read,
            removed,
            entries,
            numbers,
            took: started.elapsed(),
        }
    }

    fn advance(&self, watermark: Option<String>, full: bool, fetched: &Fetched, took: Duration) {
        {
            let mut p = lock(&self.progress);
            if watermark.is_some() {
                p.watermark = watermark;
            }
            p.last_read = SystemTime::now().checked_sub(took);
            if full {
                p.last_full = Some(Instant::now());
                p.last_presence = p.last_full;
            }
            if let Some(dc) = &fetched.dc {
                p.dc = Some(dc.identity.clone());
            }
        }
        self.server.store(Some(Arc::new(fetched.server.clone())));
        {
            let mut s = lock(&self.status);
            s.synced_at = Some(SystemTime::now());
            s.server = Some(fetched.server.clone());
            s.from_snapshot = false;
            s.last_error = None;
            s.last_duration = Some(took);
            s.succeeded += 1;
        }
    }

    /// One turn of the poll loop: a full resync when one is due, else a poll followed, when
    /// one is due, by a presence check.
    async fn next_sync(&self) -> Result<(), DirectoryError> {
        if self.full_resync_due() {
            log_synced(&self.full_sync().await?);
            return Ok(());
        }
        let report = self.delta_sync().await?;
        log_synced(&report);
        if report.kind == "delta" && self.presence_check_due() {
            log_synced(&self.presence_check().await?);
        }
        Ok(())
    }

    fn presence_check_due(&self) -> bool {
        lock(&self.progress)
            .last_presence
            .is_none_or(|t| t.elapsed() >= self.config.presence_check_interval)
    }

    fn full_resync_due(&self) -> bool {
        let p = lock(&self.progress);
        p.watermark.is_none()
            || p.last_full
                .is_none_or(|t| t.elapsed() >= self.config.full_resync_interval)
    }

    /// Records a failed sync. The next successful one is a full resync: whatever happened
    /// during an outage of unknown length (deletions included) is then caught.
    fn failed(&self, error: &DirectoryError) {
        {
            let mut s = lock(&self.status);
            s.last_error = Some(error.to_string());
            s.failed += 1;
        }
        {
            let mut p = lock(&self.progress);
            p.last_full = None;
        }
        // It may have changed part of the index: the next save is a whole snapshot.
        if let Some(state) = &self.state {
            lock(state).start_over();
        }
    }

    /// Saves what a sync changed: appended to the journal when it can be (a full resync that
    /// changed nothing appends only its time), else as a new snapshot.
    async fn persist(&self, changes: Option<Vec<Change>>, full: bool) {
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
                    let entries: Vec<Arc<Entry>> =
                        read(&index).all().map(|(_, e)| e.clone()).collect();
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
    async fn load_state(&self) -> Result<Duration, String> {
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
        self.server.store(Some(Arc::new(server.clone())));
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

/// What an [`Applier`] did.
#[derive(Default)]
struct Applied {
    /// DNs read (lower-cased; deltas only).
    read: HashSet<String>,
    /// Slots holding an entry as read (full syncs remove the others).
    marks: Vec<bool>,
    /// Entries added, replaced or removed.
    changed: usize,
    /// New entries left out because the index held `index.max_entries`.
    refused: usize,
    /// The changes, for the state file's journal; `None` once too many for one.
    changes: Option<Vec<Change>>,
}

impl Applied {
    fn mark(&mut self, slot: u32) {
        let slot = slot as usize;
        if self.marks.len() <= slot {
            self.marks.resize(slot + 1, false);
        }
        if let Some(m) = self.marks.get_mut(slot) {
            *m = true;
        }
    }

    fn journal(&mut self, more: Vec<Change>) {
        if let Some(changes) = &mut self.changes {
            if changes.len() + more.len() > MAX_JOURNALED {
                self.changes = None;
            } else {
                changes.extend(more);
            }
        }
    }
}

/// Applies the pages of a search to the index on a thread of its own while the next pages
/// arrive. Entries held exactly as read are only marked; the others are normalised outside
/// the lock, then swapped in under one short write lock per page. (One thread, not the
/// blocking pool: the phone parser's regexes are shared, and threads contending for them cost
/// more than they add on small machines.)
struct Applier {
    batches: std::sync::mpsc::Sender<Vec<Entry>>,
    done: tokio::sync::oneshot::Receiver<Applied>,
}

impl Applier {
    fn start(
        index: Arc<RwLock<PhoneIndex>>,
        version: Arc<AtomicU64>,
        keyer: Keyer,
        full: bool,
        max: usize,
        journal: bool,
    ) -> Self {
        let (batches, incoming) = std::sync::mpsc::channel::<Vec<Entry>>();
        let (finished, done) = tokio::sync::oneshot::channel();
        let work = move || {
            let mut applied = Applied {
                changes: journal.then(Vec::new),
                ..Applied::default()
            };
            for batch in incoming.iter() {
                apply_page(&index, &version, &keyer, batch, (full, max), &mut applied);
            }
            let _ = finished.send(applied);
        };
        // When no thread can be started, the receiver is dropped and `finish` says so.
        let _ = std::thread::Builder::new()
            .name("popup-ldap-sync".into())
            .spawn(work);
        Applier { batches, done }
    }

    fn send(&self, batch: Vec<Entry>) {
        // The thread only ends when this sender is dropped.
        let _ = self.batches.send(batch);
    }

    async fn finish(self) -> Result<Applied, DirectoryError> {
        drop(self.batches);
        self.done
            .await
            .map_err(|_| DirectoryError::Unavailable("the sync thread failed".to_owned()))
    }
}

/// One page: compared under a read lock, normalised without one, applied under a write lock.
fn apply_page(
    index: &RwLock<PhoneIndex>,
    version: &AtomicU64,
    keyer: &Keyer,
    page: Vec<Entry>,
    (full, max): (bool, usize),
    applied: &mut Applied,
) {
    let mut differ = Vec::new();
    {
        let index = read(index);
        for entry in page {
            if !full {
                applied.read.insert(entry.dn().to_lowercase());
            }
            match index.held(entry.dn()) {
                Some((slot, held)) if held.same_as(&entry) => applied.mark(slot),
                held => differ.push((held.map(|(_, e)| e.clone()), entry)),
            }
        }
    }
    let keyed: Vec<(Option<KeyedEntry>, KeyedEntry)> = differ
        .into_iter()
        .map(|(old, new)| (old.map(|o| keyer.key(o)), keyer.key(Arc::new(new))))
        .filter(|(old, new)| old.is_some() || new.has_numbers())
        .collect();
    if keyed.is_empty() {
        return;
    }
    let mut changes = Vec::with_capacity(keyed.len());
    let mut index = write(index);
    for (old, new) in keyed {
        if old.is_none() && index.entries() >= max {
            applied.refused += 1;
            continue;
        }
        let entry = new.entry().clone();
        match index.replace(old.as_ref(), Some(new)) {
            Some(slot) => {
                applied.mark(slot);
                changes.push(Change::Put(entry));
            }
            None => changes.push(Change::Drop(entry.dn().to_owned())),
        }
        applied.changed += 1;
    }
    drop(index);
    version.fetch_add(1, Ordering::Relaxed);
    applied.journal(changes);
}

/// Index mode's own thread: a runtime of its own at a lower CPU priority (nice 10), so that
/// reading and decoding the directory never holds up a call's thread, and what it starts (the
/// applier thread, the blocking pool) inherits the priority. It makes the first sync, then
/// waits to be told to follow the directory, and ends with the index.
fn sync_thread(
    synced: Arc<SyncedIndex>,
    opened: tokio::sync::oneshot::Sender<Result<(), DirectoryError>>,
    start_following: tokio::sync::oneshot::Receiver<()>,
) {
    lower_priority();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let why = format!("cannot start the sync runtime: {e}");
            let _ = opened.send(Err(DirectoryError::Startup(why)));
            return;
        }
    };
    runtime.block_on(async move {
        let result = synced.open().await;
        let (ok, poll) = (result.is_ok(), synced.config.poll_interval);
        let weak = Arc::downgrade(&synced);
        drop(synced);
        if opened.send(result).is_err() || !ok {
            return;
        }
        // The connections this runtime opened are driven while it waits.
        if start_following.await.is_ok() {
            follow(weak, poll).await;
        }
    });
}

/// Lowers the calling thread's CPU priority to nice 10 (Linux keeps it per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10) {
        tracing::debug!(error = %e, "the sync thread keeps its CPU priority");
    }
}

/// Logs a sync that read or removed something (and every full one).
fn log_synced(report: &SyncReport) {
    if report.kind == "full" || report.read > 0 || report.removed > 0 {
        tracing::info!(
            kind = report.kind,
            searched = report.searched,
            read = report.read,
            removed = report.removed,
            entries = report.entries,
            numbers = report.numbers,
            ms = report.took.as_millis() as u64,
            "index synced"
        );
    }
}

/// The poll loop: delta syncs every poll interval, presence checks and full resyncs when due;
/// after a failure, retries sooner with backoff, keeping the last good index.
async fn follow(weak: Weak<SyncedIndex>, poll: Duration) {
    let mut delay = poll;
    let mut retry = FIRST_RETRY;
    loop {
        tokio::time::sleep(delay).await;
        let Some(synced) = weak.upgrade() else { return };
        match synced.next_sync().await {
            Ok(()) => {
                delay = poll;
                retry = FIRST_RETRY;
            }
            Err(e) => {
                synced.failed(&e);
                let age = synced
                    .status()
                    .synced_at
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .unwrap_or_default();
                tracing::error!(
                    error = %e, stale_s = age.as_secs(), retry_s = retry.as_secs(),
                    "sync failed; answering from the last good index"
                );
                delay = retry;
                retry = (retry * 2).min(poll);
            }
        }
    }
}

/// How far the directory's clock may lag behind this host's without a change being missed:
/// see [`second_settled`].
const CLOCK_SKEW_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Whether the second of `watermark` (a generalized time: `modifyTimestamp`, `whenChanged`)
/// had ended on the directory's clock when a read began at `read` on this host's, with
/// [`CLOCK_SKEW_MARGIN`] to spare. A read made then saw every entry stamped in that second as
/// it stays (a later change gets a later stamp), so the next polls may ask for later stamps
/// only, and an idle poll reads nothing. Until then each poll reads that second's entries
/// again. A value that does not parse is never settled.
fn second_settled(watermark: &str, read: SystemTime) -> bool {
    let format = time::macros::format_description!("[year][month][day][hour][minute][second]");
    let Some(stamp) = watermark.get(..14) else {
        return false;
    };
    let Ok(second) = time::PrimitiveDateTime::parse(stamp, format) else {
        return false;
    };
    let ends = second.assume_utc().unix_timestamp().saturating_add(1);
    let Ok(ends) = u64::try_from(ends) else {
        return false;
    };
    // UTC only ("Z", with or without a fraction): others are not worth the risk.
    let offset = &watermark[14..];
    let utc = offset == "Z"
        || offset.strip_prefix('.').is_some_and(|f| {
            f.strip_suffix('Z')
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        });
    utc && unix_seconds(read) >= ends.saturating_add(CLOCK_SKEW_MARGIN.as_secs())
}

fn unix_seconds(t: SystemTime) -> u64 {
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
    fn a_timestamps_second_is_settled_once_read_well_after_it() {
        let second = UNIX_EPOCH + Duration::from_secs(1_794_987_200);
        let stamp = "20261118073320Z"; // that second
        let margin = CLOCK_SKEW_MARGIN + Duration::from_secs(1);
        assert!(!second_settled(stamp, second));
        assert!(!second_settled(
            stamp,
            second + margin - Duration::from_secs(1)
        ));
        assert!(second_settled(stamp, second + margin));
        assert!(second_settled("20261118073320.0Z", second + margin));
        // Other forms, and values that are no time, are never settled.
        for other in [
            "20261118073320+0200",
            "20261118073320",
            "20261118073320.Z",
            "42",
            "",
        ] {
            assert!(!second_settled(other, second + margin * 100), "{other}");
        }
    }

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

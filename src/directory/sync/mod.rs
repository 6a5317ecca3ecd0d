//! Index mode: the directory's phone entries read with paged searches into a [`PhoneIndex`],
//! kept fresh by polling the change attribute and full resyncs, changed in place (a sync costs
//! what changed), kept through outages and persisted to a state file so that a restart during
//! an outage still answers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use super::index::Keyer;
use super::ldap::{Changes, DcIdentity, Fetched, LdapDirectory, Paging, Pauses, Read};
use super::state::StateFile;
use super::{DirectoryError, Entry, Match, PhoneIndex};
use super::{IndexSettings, LdapSettings};
use crate::locks::{lock, read};
use crate::phone::{PhoneKey, PhoneNormalizer};

mod apply;
mod deadline;
mod delta;
mod full;
mod saved;

/// First retry after a failed sync; doubles up to the poll interval.
const FIRST_RETRY: Duration = Duration::from_secs(1);
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
    /// Whether the last successful sync read everything (`true`) or only the changes.
    pub last_full: Option<bool>,
    /// Successful syncs since start.
    pub succeeded: u64,
    /// Failed syncs since start.
    pub failed: u64,
}

impl SyncStatus {
    /// How long ago the index last matched the directory; `None` before any sync.
    pub fn age(&self) -> Option<Duration> {
        self.synced_at
            .and_then(|t| SystemTime::now().duration_since(t).ok())
    }

    /// Two scopes' statuses as one: the older sync (a scope never synced is oldest), the
    /// counts added up, the first error.
    pub fn older(self, other: SyncStatus) -> SyncStatus {
        let (succeeded, failed) = (self.succeeded + other.succeeded, self.failed + other.failed);
        let last_error = self.last_error.clone().or_else(|| other.last_error.clone());
        let self_older = match (self.synced_at, other.synced_at) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => a <= b,
        };
        let older = if self_older { self } else { other };
        SyncStatus {
            succeeded,
            failed,
            last_error,
            ..older
        }
    }
}

/// What one sync did.
#[derive(Clone, Debug)]
pub struct SyncReport {
    /// Which kind of sync.
    pub kind: SyncKind,
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

/// The kinds of sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncKind {
    /// Everything read again, compared, the unread removed.
    Full,
    /// What changed since the watermark.
    Delta,
    /// The names of all eligible entries, the missing removed.
    Presence,
}

impl SyncKind {
    /// Its name in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncKind::Full => "full",
            SyncKind::Delta => "delta",
            SyncKind::Presence => "presence",
        }
    }
}

/// An index that follows an LDAP directory.
pub struct SyncedIndex {
    index: Arc<RwLock<PhoneIndex>>,
    /// Counts the changes made to the index.
    version: Arc<AtomicU64>,
    status: Mutex<SyncStatus>,
    progress: Mutex<Progress>,
    ldap: LdapDirectory,
    config: IndexSettings,
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
        config: &LdapSettings,
        index: &IndexSettings,
        phone: &PhoneNormalizer,
        wanted_attributes: &[String],
        scope: Option<&str>,
    ) -> Result<Arc<Self>, DirectoryError> {
        let fingerprint = format!(
            "base={};scope={:?};filter={};phones={};attributes={}",
            config.base_dn,
            config.scope,
            config.filter,
            config.phone_attributes.join(","),
            wanted_attributes.join(",")
        );
        let keyer = Keyer::new(&config.phone_attributes, phone);
        let synced = Arc::new(SyncedIndex {
            index: Arc::new(RwLock::new(PhoneIndex::new(keyer.clone()))),
            version: Arc::new(AtomicU64::new(0)),
            status: Mutex::new(SyncStatus::default()),
            progress: Mutex::new(Progress::default()),
            ldap,
            eligible: config.eligible_filter(),
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
        // With several scopes, every line the thread logs names its scope.
        let span = scope.map(|name| tracing::info_span!("scope", name = %name));
        std::thread::Builder::new()
            .name("popup-ldap-syncs".into())
            .spawn(move || {
                let _entered = span.as_ref().map(tracing::Span::enter);
                sync_thread(first, opened, start_following)
            })
            .map_err(|e| DirectoryError::Startup(format!("cannot start the sync thread: {e}")))?;
        result
            .await
            .map_err(|_| DirectoryError::Startup("the sync thread failed".to_owned()))??;
        Ok(synced)
    }

    /// The first sync (or, when the directory cannot be read, the state file).
    async fn open(&self) -> Result<(), DirectoryError> {
        // A saved index young enough answers at once (a restarted replica serves before its
        // first sync ends, which the sync thread starts straight away); an older one only
        // when the directory cannot be read.
        let saved = match self.state {
            Some(_) => Some(self.load_state().await),
            None => None,
        };
        if let Some(Ok(age)) = &saved {
            if *age <= self.config.ready_max_age {
                tracing::info!(
                    age_s = age.as_secs(),
                    "answering from the saved index while the first sync runs"
                );
                return Ok(());
            }
        }
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
        let (Some(path), Some(saved)) = (&self.config.state_file, saved) else {
            return Err(DirectoryError::Startup(format!(
                "the first sync failed ({sync_error}) and no index.state_file is configured to \
                 start from"
            )));
        };
        match saved {
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

    /// Moves whenever an answer from the index could change: with every change to the index
    /// (after it, under the same write lock) and every sync from another server than the
    /// last; a poll that found nothing to do leaves it as it was.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Records the server the index was last synced from (answers name it).
    fn synced_from(&self, server: &str) {
        let moved = self.server.load().as_deref().is_none_or(|s| s != server);
        self.server.store(Some(Arc::new(server.to_owned())));
        if moved {
            self.version.fetch_add(1, Ordering::Release);
        }
    }

    /// Whether the index is young enough to answer from (`index.ready_max_age_s`).
    pub fn fresh(&self) -> Result<(), String> {
        let status = self.status();
        let age = status.age().unwrap_or(Duration::MAX);
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

    /// Paged reads as configured, at full speed, with every attribute.
    fn paging(&self) -> Paging {
        paging(&self.config, false, Read::Entries)
    }

    /// A read of everything: paced once calls are answered.
    fn paging_all(&self, read: Read) -> Paging {
        paging(&self.config, self.serving.load(Ordering::Relaxed), read)
    }

    async fn fetch_with(
        &self,
        filter: &str,
        paging: Paging,
        batch: impl FnMut(Vec<Entry>),
    ) -> Result<Fetched, DirectoryError> {
        let changes = Changes {
            attribute: &self.config.change_attribute,
            per_dc: self.per_dc,
        };
        let pauses = Pauses::default();
        let fetch = self.ldap.fetch_all(filter, paging, changes, &pauses, batch);
        deadline::within(self.config.sync_timeout, &pauses, fetch)
            .await
            .unwrap_or_else(|| {
                Err(DirectoryError::Unavailable(format!(
                    "a sync took longer than index.sync_timeout_s ({} s, its pauses not counted)",
                    self.config.sync_timeout.as_secs()
                )))
            })
    }

    /// `counts`: entries searched, read into the index, removed from it.
    fn report(
        &self,
        kind: SyncKind,
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
        self.synced_from(&fetched.server);
        {
            let mut s = lock(&self.status);
            s.synced_at = Some(SystemTime::now());
            s.server = Some(fetched.server.clone());
            s.from_snapshot = false;
            s.last_error = None;
            s.last_duration = Some(took);
            s.last_full = Some(full);
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
        if report.kind == SyncKind::Delta && self.presence_check_due() {
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
}

/// How a paged read is made: a paced one (calls are answered meanwhile) in small pages, each
/// followed by a pause as long as it took.
fn paging(config: &IndexSettings, paced: bool, read: Read) -> Paging {
    let size = if paced {
        config.paced_page_size
    } else {
        config.page_size
    };
    Paging {
        page_size: i32::try_from(size).unwrap_or(500),
        paced,
        read,
        timeout: config.page_timeout,
    }
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
    crate::priority::lower("sync");
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

/// Logs a sync that read or removed something (and every full one).
fn log_synced(report: &SyncReport) {
    if report.kind == SyncKind::Full || report.read > 0 || report.removed > 0 {
        tracing::info!(
            kind = report.kind.as_str(),
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
    // Started from the saved index: the first (full) sync runs at once.
    let from_saved = weak.upgrade().is_some_and(|s| s.status().from_snapshot);
    let mut delay = if from_saved { Duration::ZERO } else { poll };
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
                let age = synced.status().age().unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_made_while_calls_are_answered_take_small_pages() {
        let config = IndexSettings {
            poll_interval: Duration::from_secs(60),
            full_resync_interval: Duration::from_secs(1800),
            presence_check_interval: Duration::from_secs(300),
            page_size: 500,
            paced_page_size: 50,
            change_attribute: "entryCSN".to_owned(),
            state_file: None,
            sync_timeout: Duration::from_secs(300),
            page_timeout: Duration::from_secs(30),
            ready_max_age: Duration::from_secs(3600),
            max_entries: 10,
        };
        let paced = paging(&config, true, Read::Names);
        assert_eq!(
            (paced.page_size, paced.paced, paced.read),
            (50, true, Read::Names)
        );
        let full_speed = paging(&config, false, Read::Entries);
        assert_eq!((full_speed.page_size, full_speed.paced), (500, false));
    }
}

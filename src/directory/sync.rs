//! Index mode: the directory's phone entries read with paged searches into a [`PhoneIndex`],
//! kept fresh by polling the change attribute and full resyncs, swapped in atomically, kept
//! through outages and persisted to a state file so that a restart during an outage still
//! answers.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use super::index::KeyedEntry;
use super::ldap::{DcIdentity, Fetched, LdapDirectory};
use super::{AttributeNames, DirectoryError, Entry, Match, PhoneIndex, StoredEntry};
use crate::config::{IndexConfig, LdapConfig};
use crate::phone::{PhoneKey, PhoneNormalizer};

/// The state file's format version.
const SNAPSHOT_VERSION: u32 = 1;
/// A state file may say it was written this far in the future (clocks of restored VMs).
const CLOCK_SKEW: Duration = Duration::from_secs(300);
/// No state file was written before this (2026-01-01); an older time is a broken file.
const OLDEST_SNAPSHOT: u64 = 1_767_225_600;
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
    /// Entries read from the directory that changed the index (all of them in a full sync).
    pub read: usize,
    /// Entries removed from the index (delta).
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
    index: ArcSwap<PhoneIndex>,
    status: Mutex<SyncStatus>,
    progress: Mutex<Progress>,
    ldap: LdapDirectory,
    config: IndexConfig,
    eligible: String,
    phone: PhoneNormalizer,
    phone_attributes: Vec<String>,
    fingerprint: String,
    /// Set for `uSNChanged`: every sync is bound to the domain controller it read.
    per_dc: bool,
    server: arc_swap::ArcSwapOption<String>,
}

#[derive(Default)]
struct Progress {
    watermark: Option<String>,
    last_full: Option<Instant>,
    /// The DC the watermark belongs to (`uSNChanged` only).
    dc: Option<DcIdentity>,
}

#[derive(Serialize)]
struct SnapshotOut<'a> {
    version: u32,
    fingerprint: &'a str,
    written_at: u64,
    server: &'a str,
    watermark: Option<&'a str>,
    entries: Vec<&'a Entry>,
}

#[derive(Debug, Deserialize)]
struct SnapshotIn {
    version: u32,
    fingerprint: String,
    written_at: u64,
    server: String,
    watermark: Option<String>,
    entries: Vec<StoredEntry>,
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
        let synced = Arc::new(SyncedIndex {
            index: ArcSwap::from_pointee(PhoneIndex::default()),
            status: Mutex::new(SyncStatus::default()),
            progress: Mutex::new(Progress::default()),
            ldap,
            eligible: config.eligible_filter(phone_attributes),
            fingerprint: format!(
                "base={};scope={:?};filter={};phones={};attributes={}",
                config.base_dn,
                config.scope,
                config.filter,
                phone_attributes.join(","),
                wanted_attributes.join(",")
            ),
            per_dc: index.change_attribute.eq_ignore_ascii_case("uSNChanged"),
            config: index.clone(),
            phone: phone.clone(),
            phone_attributes: phone_attributes.to_vec(),
            server: arc_swap::ArcSwapOption::empty(),
        });
        let sync_error = match synced.full_sync().await {
            Ok(report) => {
                tracing::info!(
                    entries = report.entries,
                    numbers = report.numbers,
                    ms = report.took.as_millis() as u64,
                    "index built from the directory"
                );
                return Ok(synced);
            }
            Err(e) => e,
        };
        let Some(path) = &synced.config.state_file else {
            return Err(DirectoryError::Startup(format!(
                "the first sync failed ({sync_error}) and no index.state_file is configured to \
                 start from"
            )));
        };
        match synced.load_snapshot(path).await {
            Ok(age) => {
                tracing::warn!(
                    error = %sync_error,
                    state_file = %path.display(),
                    age_s = age.as_secs(),
                    "directory unreachable: answering from the saved index until a sync succeeds"
                );
                Ok(synced)
            }
            Err(snapshot_error) => Err(DirectoryError::Startup(format!(
                "the first sync failed ({sync_error}) and the saved index cannot be used \
                 ({snapshot_error})"
            ))),
        }
    }

    /// Keeps the index fresh until the last reference to it is dropped.
    pub fn spawn(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let poll = self.config.poll_interval;
        tokio::spawn(async move { follow(weak, poll).await });
    }

    /// The directory the index follows.
    pub fn ldap(&self) -> &LdapDirectory {
        &self.ldap
    }

    /// The entries holding `key`.
    pub fn find(&self, key: &PhoneKey) -> Vec<Match> {
        self.index.load().find(key)
    }

    /// The server the index was last synced from (or saved from).
    pub fn server(&self) -> Option<Arc<String>> {
        self.server.load_full()
    }

    /// The current index.
    pub fn current(&self) -> Arc<PhoneIndex> {
        self.index.load_full()
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
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Reads everything again and swaps in a new index.
    pub async fn full_sync(&self) -> Result<SyncReport, DirectoryError> {
        let started = Instant::now();
        let (normaliser, fetched) = self.fetch(&self.eligible).await?;
        let keyed = normaliser.finish().await?;
        if keyed.len() > self.config.max_entries {
            return Err(DirectoryError::Unavailable(format!(
                "the directory has {} entries with numbers, more than index.max_entries ({}); \
                 narrow directory.filter or raise index.max_entries",
                keyed.len(),
                self.config.max_entries
            )));
        }
        let index = PhoneIndex::from_keyed(keyed);
        let report = self.install(index, "full", fetched.count, 0, started);
        let watermark = match &fetched.dc {
            Some(dc) => {
                if self
                    .progress
                    .lock()
                    .ok()
                    .and_then(|p| p.dc.clone())
                    .as_ref()
                    != Some(&dc.identity)
                {
                    tracing::info!(
                        server = %fetched.server, dc = %dc.identity.service,
                        invocation_id = %dc.identity.invocation_id, usn = dc.highest_usn,
                        "index bound to this domain controller's uSNChanged"
                    );
                }
                Some(dc.highest_usn.to_string())
            }
            None => fetched.watermark.clone(),
        };
        self.advance(watermark, true, &fetched, report.took);
        self.save_snapshot().await;
        Ok(report)
    }

    /// Applies what changed since the watermark: eligible entries with numbers are added or
    /// replaced, other changed entries are removed.
    ///
    /// With a timestamp the filter is `>=` the watermark, so the entries stamped in the
    /// watermark's own second are read again: change attributes have one-second resolution,
    /// and a strict `>` would miss a change made later in that second. With `uSNChanged` it is
    /// `>` the DC's highest committed USN at the last sync, read on the same DC; when another
    /// DC answers, or the same one after a restore (new invocation id), the numbers mean
    /// nothing and everything is read again.
    ///
    /// The two searches run in this order: first every changed entry (the candidates for
    /// removal), then the changed entries that are eligible. An entry is removed only when the
    /// later read no longer returns it as eligible, so a change made between the two reads
    /// never drops a person who still qualifies.
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
        let (Some(watermark), bound) = self
            .progress
            .lock()
            .map(|p| (p.watermark.clone(), p.dc.clone()))
            .unwrap_or_default()
        else {
            return self.full_sync().await;
        };
        let started = Instant::now();
        let attr = &self.config.change_attribute;
        let changed = match (self.per_dc, watermark.parse::<u64>()) {
            (true, Ok(usn)) => format!("({attr}>={})", usn.saturating_add(1)),
            (true, Err(_)) => return self.full_sync().await,
            (false, _) => format!("({attr}>={})", ldap3::ldap_escape(&watermark)),
        };
        let mut touched: HashSet<String> = HashSet::new();
        let all_changed = self
            .fetch_with(&changed, |batch| {
                touched.extend(batch.iter().map(|e| e.dn().to_lowercase()))
            })
            .await?;
        between.await;
        let (normaliser, upserts) = self
            .fetch(&format!("(&{}{changed})", self.eligible))
            .await?;
        let keyed = normaliser.finish().await?;
        if self.per_dc {
            let answered = [&upserts, &all_changed]
                .into_iter()
                .find(|f| f.dc.as_ref().map(|d| &d.identity) != bound.as_ref());
            if let Some(other) = answered {
                tracing::info!(
                    server = %other.server,
                    dc = %other.dc.as_ref().map_or("-", |d| d.identity.service.as_str()),
                    was = %bound.as_ref().map_or("-", |d| d.service.as_str()),
                    "another domain controller (or a restored one) answered: reading everything again"
                );
                return self.full_sync().await;
            }
        }
        for k in &keyed {
            touched.remove(&k.dn_lowercase());
        }
        let watermark = match &upserts.dc {
            Some(dc) => Some(dc.highest_usn.to_string()),
            None => [&upserts.watermark, &all_changed.watermark]
                .into_iter()
                .flatten()
                .max_by(|a, b| super::ldap::change_order(a, b))
                .cloned(),
        };
        let current = self.current();
        // What the index already holds as read (the boundary second's entries, mostly) is
        // neither applied again nor saved again.
        let (keyed, touched) = current.changes(keyed, touched);
        if keyed.is_empty() && touched.is_empty() {
            self.advance(watermark, false, &upserts, started.elapsed());
            return Ok(SyncReport {
                kind: "delta",
                read: 0,
                removed: 0,
                entries: current.entries(),
                numbers: current.numbers(),
                took: started.elapsed(),
            });
        }
        let (read, removed) = (keyed.len(), touched.len());
        let next = current.apply(keyed, &touched);
        let report = self.install(next, "delta", read, removed, started);
        self.advance(watermark, false, &upserts, report.took);
        self.save_snapshot().await;
        Ok(report)
    }

    /// Runs a paged search; the batches are normalised on one thread of their own while the
    /// next pages arrive. (One thread, not the blocking pool: the phone parser's regexes are
    /// shared, and threads contending for them cost more than they add on small machines.)
    async fn fetch(&self, filter: &str) -> Result<(Normaliser, Fetched), DirectoryError> {
        let normaliser = Normaliser::start(self.phone.clone(), self.phone_attributes.clone())?;
        let fetched = self
            .fetch_with(filter, |batch| normaliser.send(batch))
            .await?;
        Ok((normaliser, fetched))
    }

    async fn fetch_with(
        &self,
        filter: &str,
        batch: impl FnMut(Vec<Entry>),
    ) -> Result<Fetched, DirectoryError> {
        let page_size = i32::try_from(self.config.page_size).unwrap_or(500);
        let fetch = self.ldap.fetch_all(
            filter,
            page_size,
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

    fn install(
        &self,
        index: PhoneIndex,
        kind: &'static str,
        read: usize,
        removed: usize,
        started: Instant,
    ) -> SyncReport {
        let report = SyncReport {
            kind,
            read,
            removed,
            entries: index.entries(),
            numbers: index.numbers(),
            took: started.elapsed(),
        };
        self.index.store(Arc::new(index));
        report
    }

    fn watermark(&self) -> Option<String> {
        self.progress.lock().ok().and_then(|p| p.watermark.clone())
    }

    fn advance(&self, watermark: Option<String>, full: bool, fetched: &Fetched, took: Duration) {
        if let Ok(mut p) = self.progress.lock() {
            if watermark.is_some() {
                p.watermark = watermark;
            }
            if full {
                p.last_full = Some(Instant::now());
            }
            if let Some(dc) = &fetched.dc {
                p.dc = Some(dc.identity.clone());
            }
        }
        self.server.store(Some(Arc::new(fetched.server.clone())));
        if let Ok(mut s) = self.status.lock() {
            s.synced_at = Some(SystemTime::now());
            s.server = Some(fetched.server.clone());
            s.from_snapshot = false;
            s.last_error = None;
            s.last_duration = Some(took);
            s.succeeded += 1;
        }
    }

    fn full_resync_due(&self) -> bool {
        self.progress.lock().map_or(true, |p| {
            p.watermark.is_none()
                || p.last_full
                    .is_none_or(|t| t.elapsed() >= self.config.full_resync_interval)
        })
    }

    /// Records a failed sync. The next successful one is a full resync: whatever happened
    /// during an outage of unknown length (deletions included) is then caught.
    fn failed(&self, error: &DirectoryError) {
        if let Ok(mut s) = self.status.lock() {
            s.last_error = Some(error.to_string());
            s.failed += 1;
        }
        if let Ok(mut p) = self.progress.lock() {
            p.last_full = None;
        }
    }

    async fn save_snapshot(&self) {
        let Some(path) = self.config.state_file.clone() else {
            return;
        };
        let index = self.current();
        let status = self.status();
        let watermark = self.watermark();
        let fingerprint = self.fingerprint.clone();
        let written = tokio::task::spawn_blocking(move || {
            let snapshot = SnapshotOut {
                version: SNAPSHOT_VERSION,
                fingerprint: &fingerprint,
                written_at: unix_seconds(SystemTime::now()),
                server: status.server.as_deref().unwrap_or(""),
                watermark: watermark.as_deref(),
                entries: index.all().iter().map(|e| &**e).collect(),
            };
            write_atomically(&path, &snapshot).map_err(|e| (path, e))
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err((path, e))) => tracing::warn!(
                state_file = %path.display(), error = %e,
                "cannot save the index; a restart during an outage would have nothing to answer from"
            ),
            Err(e) => tracing::warn!(error = %e, "saving the index failed"),
        }
    }

    /// Loads the state file; returns its age.
    async fn load_snapshot(&self, path: &Path) -> Result<Duration, String> {
        let path = path.to_owned();
        let phone = self.phone.clone();
        let attrs = self.phone_attributes.clone();
        let fingerprint = self.fingerprint.clone();
        let limit = self.config.state_file_limit();
        let loaded = tokio::task::spawn_blocking(move || read_snapshot(&path, &fingerprint, limit))
            .await
            .map_err(|e| e.to_string())??;
        if loaded.entries.len() > self.config.max_entries {
            return Err(format!(
                "it holds {} entries, more than index.max_entries ({})",
                loaded.entries.len(),
                self.config.max_entries
            ));
        }
        let written = written_at(loaded.written_at, SystemTime::now())?;
        let mut names = AttributeNames::default();
        let keyed = loaded
            .entries
            .into_iter()
            .map(|e| KeyedEntry::new(e.into_entry(&mut names), &attrs, &phone))
            .collect();
        self.index.store(Arc::new(PhoneIndex::from_keyed(keyed)));
        if let Ok(mut p) = self.progress.lock() {
            // Resync fully as soon as the directory is back: the snapshot may be old.
            p.watermark = loaded.watermark;
            p.last_full = None;
        }
        self.server.store(Some(Arc::new(loaded.server.clone())));
        if let Ok(mut s) = self.status.lock() {
            s.synced_at = Some(written);
            s.server = Some(loaded.server);
            s.from_snapshot = true;
        }
        Ok(SystemTime::now()
            .duration_since(written)
            .unwrap_or_default())
    }
}

/// Normalises batches of entries on a thread of its own.
struct Normaliser {
    batches: std::sync::mpsc::Sender<Vec<Entry>>,
    done: tokio::sync::oneshot::Receiver<Vec<KeyedEntry>>,
}

impl Normaliser {
    fn start(phone: PhoneNormalizer, attrs: Vec<String>) -> Result<Self, DirectoryError> {
        let (batches, incoming) = std::sync::mpsc::channel::<Vec<Entry>>();
        let (finished, done) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("popup-ldap-sync".into())
            .spawn(move || {
                let keyed: Vec<KeyedEntry> = incoming
                    .iter()
                    .flatten()
                    .map(|e| KeyedEntry::new(e, &attrs, &phone))
                    .filter(KeyedEntry::has_numbers)
                    .collect();
                let _ = finished.send(keyed);
            })
            .map_err(|e| DirectoryError::Unavailable(format!("cannot start a sync thread: {e}")))?;
        Ok(Normaliser { batches, done })
    }

    fn send(&self, batch: Vec<Entry>) {
        // The thread only ends when this sender is dropped.
        let _ = self.batches.send(batch);
    }

    async fn finish(self) -> Result<Vec<KeyedEntry>, DirectoryError> {
        drop(self.batches);
        self.done
            .await
            .map_err(|_| DirectoryError::Unavailable("the sync thread failed".to_owned()))
    }
}

/// The poll loop: delta syncs every poll interval, full ones when due; after a failure,
/// retries sooner with backoff, keeping the last good index.
async fn follow(weak: Weak<SyncedIndex>, poll: Duration) {
    let mut delay = poll;
    let mut retry = FIRST_RETRY;
    loop {
        tokio::time::sleep(delay).await;
        let Some(synced) = weak.upgrade() else { return };
        let result = if synced.full_resync_due() {
            synced.full_sync().await
        } else {
            synced.delta_sync().await
        };
        match result {
            Ok(report) => {
                if report.kind == "full" || report.read > 0 || report.removed > 0 {
                    tracing::info!(
                        kind = report.kind,
                        read = report.read,
                        removed = report.removed,
                        entries = report.entries,
                        numbers = report.numbers,
                        ms = report.took.as_millis() as u64,
                        "index synced"
                    );
                }
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

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes `value` as JSON to a temporary file beside `path` (mode 0600), syncs it and renames
/// it over `path`, so a crash never leaves half a file.
fn write_atomically(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(&tmp)?;
    let mut writer = std::io::BufWriter::new(file);
    serde_json::to_writer(&mut writer, value)?;
    writer.flush()?;
    writer
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Reads a state file of at most `limit` bytes (checked before reading, and enforced while
/// reading in case it grows), streaming it rather than holding the text and the entries.
fn read_snapshot(path: &Path, fingerprint: &str, limit: u64) -> Result<SnapshotIn, String> {
    let cannot = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(cannot)?;
    let size = file.metadata().map_err(cannot)?.len();
    if size > limit {
        return Err(format!(
            "{} is {size} bytes, more than the {limit} allowed for index.max_entries entries \
             (2 KiB each); raise index.max_entries if the directory really is that large",
            path.display()
        ));
    }
    let reader = std::io::BufReader::new(std::io::Read::take(file, limit));
    let snapshot: SnapshotIn = serde_json::from_reader(reader)
        .map_err(|e| format!("{} is not a saved index: {e}", path.display()))?;
    if snapshot.version != SNAPSHOT_VERSION {
        return Err(format!(
            "{} has format version {}, this build reads {SNAPSHOT_VERSION}",
            path.display(),
            snapshot.version
        ));
    }
    if snapshot.fingerprint != fingerprint {
        return Err(format!(
            "{} was saved for another directory configuration (base, filter or attributes \
             changed)",
            path.display()
        ));
    }
    written_at(snapshot.written_at, SystemTime::now())
        .map_err(|why| format!("{} cannot be used: {why}", path.display()))?;
    Ok(snapshot)
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
    fn snapshots_are_written_atomically_and_privately() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.json");
        write_atomically(&path, &serde_json::json!({"a": 1})).expect("write");
        write_atomically(&path, &serde_json::json!({"a": 2})).expect("rewrite");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), r#"{"a":2}"#);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }

    #[test]
    fn foreign_or_broken_snapshots_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.json");
        let read = |f| read_snapshot(&path, f, 1 << 20);
        assert!(read("f").expect_err("missing").contains("cannot read"));
        std::fs::write(&path, "{not json").expect("write");
        assert!(read("f").expect_err("broken").contains("not a saved index"));
        let other = r#"{"version":1,"fingerprint":"g","written_at":1790000000,"server":"s","watermark":null,"entries":[]}"#;
        std::fs::write(&path, other).expect("write");
        assert!(read("f")
            .expect_err("foreign")
            .contains("another directory"));
        assert!(read("g").is_ok());
        let newer = other.replace("\"version\":1", "\"version\":9");
        std::fs::write(&path, newer).expect("write");
        assert!(read("g").expect_err("newer").contains("version 9"));
        for (written_at, why) in [
            ("18446744073709551615", "in the future"),
            ("99999999999", "in the future"),
            ("0", "older than this software"),
        ] {
            let odd = other.replace("1790000000", written_at);
            std::fs::write(&path, odd).expect("write");
            let e = read("g").expect_err(written_at);
            assert!(e.contains(why), "{written_at}: {e}");
        }
    }

    #[test]
    fn oversized_state_files_are_refused_before_reading() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.json");
        let file = std::fs::File::create(&path).expect("create");
        file.set_len(3 << 30).expect("sparse 3 GiB");
        let started = Instant::now();
        let e = read_snapshot(&path, "g", 2048 * 1000).expect_err("too large");
        assert!(e.contains("more than the 2048000 allowed"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

//! Applying what a search read to the index: compared under a read lock, normalised without
//! one, changed under short write locks; and removals.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::SyncedIndex;
use crate::directory::index::{KeyedEntry, Keyer};
use crate::directory::state::Change;
use crate::directory::{DirectoryError, Entry, PhoneIndex};
use crate::locks::{read, write};

/// Entries removed per write lock (each costs normalising its numbers first, outside it).
const REMOVE_BATCH: usize = 1024;
/// A sync that changes more entries than this writes a new snapshot instead of a journal.
const MAX_JOURNALED: usize = 65_536;

impl SyncedIndex {
    /// An [`Applier`] for this index (`full`: it also marks the slots of what it reads).
    pub(super) fn applier(&self, full: bool) -> Applier {
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
    pub(super) async fn remove(
        &self,
        entries: Vec<Entry>,
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
}

/// What an [`Applier`] did.
#[derive(Default)]
pub(super) struct Applied {
    /// DNs read (lower-cased; deltas only).
    pub(super) read: HashSet<String>,
    /// Slots holding an entry as read (full syncs remove the others).
    pub(super) marks: Vec<bool>,
    /// Entries added, replaced or removed.
    pub(super) changed: usize,
    /// New entries left out because the index held `index.max_entries`.
    pub(super) refused: usize,
    /// The changes, for the state file's journal; `None` once too many for one.
    pub(super) changes: Option<Vec<Change>>,
}

impl Applied {
    pub(super) fn mark(&mut self, slot: u32) {
        let slot = slot as usize;
        if self.marks.len() <= slot {
            self.marks.resize(slot + 1, false);
        }
        if let Some(m) = self.marks.get_mut(slot) {
            *m = true;
        }
    }

    pub(super) fn journal(&mut self, more: Vec<Change>) {
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
pub(super) struct Applier {
    batches: std::sync::mpsc::Sender<Vec<Entry>>,
    done: tokio::sync::oneshot::Receiver<Applied>,
}

impl Applier {
    pub(super) fn start(
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

    pub(super) fn send(&self, batch: Vec<Entry>) {
        // The thread only ends when this sender is dropped.
        let _ = self.batches.send(batch);
    }

    pub(super) async fn finish(self) -> Result<Applied, DirectoryError> {
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
        .map(|(old, new)| (old.map(|o| keyer.key(o)), keyer.key(new)))
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

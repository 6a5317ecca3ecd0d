//! Answers kept for the requests that repeat a caller. Voicenter sends one request for every
//! extension that rings (a ring group's all at once) and one for each phase of the call, all
//! about the same caller; the first is looked up, the others get its answer.
//!
//! Never a stale name: an answer is kept with the directory's generation
//! ([`crate::directory::Directory::generation`]), which moves with every change to any entry
//! and every sync from another server, and it is given again only while the generation has
//! not moved. It is kept only when the generation did not move while it was looked up either.
//! The key is the number exactly as sent and every request field a template reads.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustc_hash::FxBuildHasher;

use super::Answer;
use crate::call::CallDetails;
use crate::locks::lock;
use crate::mapping::CallFieldsRead;

/// Slots of the cache, in sets of [`WAYS`]: a key's hash picks its set, and a newcomer to a
/// full set replaces the answer kept there first (no list to keep in order, and a caller who
/// forces collisions only evicts answers).
const SLOTS: usize = 4096;
/// Slots a key may take. With one, about a fifth of 1,000 callers would share their slot with
/// another and evict each other's answers; with two, a key is evicted only when two others
/// come to its set after it.
const WAYS: usize = 2;
/// The longest key kept, in bytes (the number and the fields the templates read).
const MAX_KEY_BYTES: usize = 256;
/// Answers holding more entries than this (matched and rejected) are not kept: a kept answer
/// keeps its entries in memory, even after the directory drops them.
const MAX_ENTRIES: usize = 8;

/// A request's key: `phone`, then `did`, `extenUser` and `ivrid` where templates read them.
type Key<'a> = [Option<&'a str>; 4];

/// The kept answers; see the module documentation.
pub(super) struct AnswerCache {
    slots: Box<[Mutex<Option<Kept>>]>,
    reads: CallFieldsRead,
    /// Counts the answers kept, to tell which of a set's was kept first.
    kept: AtomicU64,
}

struct Kept {
    key: [Option<Box<str>>; 4],
    generation: u64,
    answer: Arc<Answer>,
    /// When it was kept, in [`AnswerCache::kept`]'s count.
    order: u64,
}

impl AnswerCache {
    /// An empty cache for answers whose templates read `reads`.
    pub(super) fn new(reads: CallFieldsRead) -> Self {
        AnswerCache {
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
            reads,
            kept: AtomicU64::new(0),
        }
    }

    /// The answer kept for `call` at `generation`.
    pub(super) fn get(&self, call: &CallDetails, generation: u64) -> Option<Arc<Answer>> {
        let key = self.key(call)?;
        self.set(&key).iter().find_map(|slot| {
            let slot = lock(slot);
            let kept = slot.as_ref().filter(|kept| same(&kept.key, &key))?;
            (kept.generation == generation).then(|| kept.answer.clone())
        })
    }

    /// Keeps `answer` for `call`, looked up at `generation`, if it is small enough.
    pub(super) fn keep(&self, call: &CallDetails, generation: u64, answer: &Arc<Answer>) {
        let entries = answer.trace.matches.len() + answer.trace.rejected.len();
        let Some(key) = self.key(call).filter(|_| entries <= MAX_ENTRIES) else {
            return;
        };
        let kept = Kept {
            key: key.map(|part| part.map(Box::from)),
            generation,
            answer: answer.clone(),
            order: self.kept.fetch_add(1, Ordering::Relaxed),
        };
        // The answer replaced is dropped after the slot is unlocked.
        let _replaced = lock(self.place(&key)).replace(kept);
    }

    /// Where `key`'s answer goes: the slot of its set that holds the key already, else an
    /// empty one, else the one kept first.
    fn place(&self, key: &Key<'_>) -> &Mutex<Option<Kept>> {
        let set = self.set(key);
        let rank = |slot: &Mutex<Option<Kept>>| match &*lock(slot) {
            Some(kept) if same(&kept.key, key) => (0, 0),
            None => (1, 0),
            Some(kept) => (2, kept.order),
        };
        set.iter().min_by_key(|slot| rank(slot)).unwrap_or(&set[0])
    }

    /// `None` when the key is too long to keep.
    fn key<'a>(&self, call: &'a CallDetails) -> Option<Key<'a>> {
        let read = |on: bool, field: &'a Option<String>| field.as_deref().filter(|_| on);
        let key = [
            call.phone.as_deref(),
            read(self.reads.did, &call.did),
            read(self.reads.exten_user, &call.exten_user),
            read(self.reads.ivrid, &call.ivrid),
        ];
        let bytes: usize = key.iter().flatten().map(|part| part.len()).sum();
        (bytes <= MAX_KEY_BYTES).then_some(key)
    }

    fn set(&self, key: &Key<'_>) -> &[Mutex<Option<Kept>>] {
        let first = FxBuildHasher.hash_one(key) as usize % (SLOTS / WAYS) * WAYS;
        &self.slots[first..first + WAYS]
    }
}

fn same(kept: &[Option<Box<str>>; 4], key: &Key<'_>) -> bool {
    kept.iter().zip(key).all(|(k, part)| k.as_deref() == *part)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::{PopupAnswer, Trace};

    fn call(phone: &str, did: &str, ivrid: &str) -> CallDetails {
        CallDetails {
            phone: Some(phone.into()),
            did: Some(did.into()),
            ivrid: Some(ivrid.into()),
            ..CallDetails::default()
        }
    }

    fn answer(name: &str) -> Arc<Answer> {
        Arc::new(Answer {
            popup: PopupAnswer {
                client_name: Some(name.into()),
                total: 1,
                ..PopupAnswer::default()
            },
            trace: Trace::default(),
        })
    }

    /// A cache whose templates read `call.did` and `call.ivrid` as told.
    fn reading(did: bool, ivrid: bool) -> AnswerCache {
        AnswerCache::new(CallFieldsRead {
            did,
            exten_user: false,
            ivrid,
        })
    }

    #[test]
    fn an_answer_is_given_again_only_for_the_same_key_and_generation() {
        let cache = reading(true, false);
        let dana = answer("Dana");
        cache.keep(&call("0722776772", "100", "call-1"), 7, &dana);
        let again = cache.get(&call("0722776772", "100", "call-2"), 7);
        assert!(
            again.is_some_and(|a| Arc::ptr_eq(&a, &dana)),
            "ivrid is not read"
        );
        assert!(cache.get(&call("0722776772", "100", "call-1"), 8).is_none());
        assert!(cache.get(&call("0722776772", "200", "call-1"), 7).is_none());
        assert!(cache
            .get(&call("072-2776772", "100", "call-1"), 7)
            .is_none());
        assert!(cache.get(&CallDetails::default(), 7).is_none());
    }

    #[test]
    fn a_missing_field_is_not_an_empty_one() {
        let cache = reading(false, true);
        let without = CallDetails {
            phone: Some("0722776772".into()),
            ..CallDetails::default()
        };
        cache.keep(&without, 1, &answer("Dana"));
        assert!(cache.get(&call("0722776772", "", ""), 1).is_none());
        assert!(cache.get(&without, 1).is_some());
    }

    #[test]
    fn long_keys_and_answers_holding_many_entries_are_not_kept() {
        let cache = reading(false, true);
        let long = call("0722776772", "", &"x".repeat(MAX_KEY_BYTES));
        cache.keep(&long, 1, &answer("Dana"));
        assert!(cache.get(&long, 1).is_none());

        let entry =
            crate::directory::Entry::new("uid=x", std::iter::empty::<(String, Vec<String>)>());
        let mut many = Answer::clone(&answer("Switchboard"));
        many.trace.rejected = vec![(0, entry); MAX_ENTRIES + 1];
        let short = call("0722776772", "", "call-1");
        cache.keep(&short, 1, &Arc::new(many));
        assert!(cache.get(&short, 1).is_none());
    }

    fn name(cache: &AnswerCache, c: &CallDetails) -> Option<String> {
        cache.get(c, 1).and_then(|a| a.popup.client_name.clone())
    }

    #[test]
    fn a_newcomer_to_a_full_set_replaces_the_answer_kept_first() {
        let cache = reading(false, false);
        let first = call("0722776772", "", "");
        let set_of = |c: &CallDetails| cache.set(&cache.key(c).unwrap()).as_ptr();
        let mut rivals = (0..100 * SLOTS)
            .map(|i| call(&format!("05{i:08}"), "", ""))
            .filter(|c| set_of(c) == set_of(&first));
        let (second, third) = (rivals.next().unwrap(), rivals.next().unwrap());
        cache.keep(&first, 1, &answer("Dana"));
        cache.keep(&second, 1, &answer("Avi"));
        assert_eq!(name(&cache, &first).as_deref(), Some("Dana"));
        // The same key again takes its own slot, not the other.
        cache.keep(&second, 1, &answer("Avi Cohen"));
        assert_eq!(name(&cache, &first).as_deref(), Some("Dana"));
        cache.keep(&third, 1, &answer("Noa"));
        assert!(cache.get(&first, 1).is_none());
        assert_eq!(name(&cache, &second).as_deref(), Some("Avi Cohen"));
        assert_eq!(name(&cache, &third).as_deref(), Some("Noa"));
    }
}

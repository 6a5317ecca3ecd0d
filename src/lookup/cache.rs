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
use std::sync::{Arc, Mutex};

use rustc_hash::FxBuildHasher;
use thread_local::ThreadLocal;

use super::Answer;
use crate::call::CallDetails;
use crate::locks::lock;
use crate::mapping::CallFieldsRead;

/// Sets of the cache: a key's hash picks one set of [`WAYS`] slots (no list to keep in order,
/// and a caller who forces collisions only evicts answers).
const SETS: usize = 1024;
/// Slots a set: a newcomer takes a free one, else its set's oldest answer's. With one slot a
/// hash, two callers of the same hash evicted each other on every call: a fifth of 1,000
/// callers asking in turn (about 1 - e^(-1000/4096) of them) were looked up every time.
const WAYS: usize = 4;
/// The longest key kept, in bytes (the number and the fields the templates read).
const MAX_KEY_BYTES: usize = 256;
/// Answers holding more entries than this (matched and rejected) are not kept: a kept answer
/// keeps its entries in memory, even after the directory drops them.
const MAX_ENTRIES: usize = 8;

/// A request's key: `phone`, then `did`, `extenUser` and `ivrid` where templates read them.
type Key<'a> = [Option<&'a str>; 4];

/// The kept answers; see the module documentation.
///
/// Every thread that answers keeps its own copies besides the answers all share: two cores
/// reading one kept answer pass its cache lines back and forth (the lock, the reference
/// counts, the answer's fields) on every request. A thread takes an answer from the shared
/// ones only when it has none of its own, as its own copy.
pub(super) struct AnswerCache {
    shared: Shelf,
    own: ThreadLocal<Shelf>,
    reads: CallFieldsRead,
}

/// Kept answers in [`SETS`] sets of [`WAYS`].
struct Shelf(Box<[Mutex<Set>]>);

/// One set's slots, and the slot its next newcomer takes when none is free.
#[derive(Default)]
struct Set {
    slots: [Option<Kept>; WAYS],
    next: usize,
}

struct Kept {
    /// The key's hash, compared before the key.
    hash: u64,
    key: [Option<Box<str>>; 4],
    generation: u64,
    answer: Arc<Answer>,
}

impl Set {
    /// The slot that holds `key`, else a free one, else the oldest's (then the next is).
    fn slot_for(&mut self, hash: u64, key: &Key<'_>) -> usize {
        let holding = |s: &Option<Kept>| s.as_ref().is_some_and(|held| held.holds(hash, key));
        if let Some(own) = self.slots.iter().position(holding) {
            return own;
        }
        self.slots
            .iter()
            .position(Option::is_none)
            .unwrap_or_else(|| {
                let oldest = self.next;
                self.next = (oldest + 1) % WAYS;
                oldest
            })
    }
}

impl Kept {
    fn holds(&self, hash: u64, key: &Key<'_>) -> bool {
        self.hash == hash && same(&self.key, key)
    }
}

impl Shelf {
    fn new() -> Self {
        Shelf((0..SETS).map(|_| Mutex::default()).collect())
    }

    fn get(&self, hash: u64, key: &Key<'_>, generation: u64) -> Option<Arc<Answer>> {
        let set = lock(self.set(hash));
        let kept = set.slots.iter().flatten().find(|k| k.holds(hash, key))?;
        (kept.generation == generation).then(|| kept.answer.clone())
    }

    /// Keeps `answer` in the slot that held the same key, else a free one, else the one
    /// held longest.
    fn keep(&self, hash: u64, key: &Key<'_>, generation: u64, answer: &Arc<Answer>) {
        let kept = Kept {
            hash,
            key: key.map(|part| part.map(Box::from)),
            generation,
            answer: answer.clone(),
        };
        let mut set = lock(self.set(hash));
        let slot = set.slot_for(hash, key);
        let replaced = set.slots[slot].replace(kept);
        drop(set);
        // The answer replaced is dropped after the set is unlocked.
        drop(replaced);
    }

    fn set(&self, hash: u64) -> &Mutex<Set> {
        &self.0[hash as usize % SETS]
    }
}

impl AnswerCache {
    /// An empty cache for answers whose templates read `reads`.
    pub(super) fn new(reads: CallFieldsRead) -> Self {
        AnswerCache {
            shared: Shelf::new(),
            own: ThreadLocal::new(),
            reads,
        }
    }

    /// The answer kept for `call` at `generation`.
    pub(super) fn get(&self, call: &CallDetails, generation: u64) -> Option<Arc<Answer>> {
        let key = self.key(call)?;
        let hash = FxBuildHasher.hash_one(key);
        let own = self.own.get_or(Shelf::new);
        if let Some(kept) = own.get(hash, &key, generation) {
            return Some(kept);
        }
        let shared = self.shared.get(hash, &key, generation)?;
        let copy = Arc::new(Answer::clone(&shared));
        own.keep(hash, &key, generation, &copy);
        Some(copy)
    }

    /// Keeps `answer` for `call`, looked up at `generation`, if it is small enough.
    pub(super) fn keep(&self, call: &CallDetails, generation: u64, answer: &Arc<Answer>) {
        let entries = answer.trace.matches.len() + answer.trace.rejected.len();
        let Some(key) = self.key(call).filter(|_| entries <= MAX_ENTRIES) else {
            return;
        };
        let hash = FxBuildHasher.hash_one(key);
        self.shared.keep(hash, &key, generation, answer);
        self.own
            .get_or(Shelf::new)
            .keep(hash, &key, generation, answer);
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
        Arc::new(Answer::new(
            PopupAnswer {
                client_name: Some(name.into()),
                total: 1,
                ..PopupAnswer::default()
            },
            Trace::default(),
        ))
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
    fn another_thread_is_given_its_own_copy_under_the_same_rules() {
        let cache = reading(false, false);
        let dana = answer("Dana");
        let c = call("0722776772", "", "");
        cache.keep(&c, 7, &dana);
        std::thread::scope(|threads| {
            threads.spawn(|| {
                let copy = cache.get(&c, 7).expect("kept by another thread");
                assert!(!Arc::ptr_eq(&copy, &dana), "a copy of its own");
                assert_eq!(copy.popup, dana.popup);
                let again = cache.get(&c, 7).expect("its own copy");
                assert!(Arc::ptr_eq(&again, &copy), "taken from its own");
                assert!(cache.get(&c, 8).is_none(), "the directory moved on");
            });
        });
        // The thread that kept the answer is given the answer itself.
        assert!(cache.get(&c, 7).is_some_and(|a| Arc::ptr_eq(&a, &dana)));
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

    /// `n` calls whose keys fall in the same set.
    fn same_set(cache: &AnswerCache, n: usize) -> Vec<CallDetails> {
        let set_of = |c: &CallDetails| {
            let hash = FxBuildHasher.hash_one(cache.key(c).unwrap());
            cache.shared.set(hash) as *const _
        };
        let first = call("0722776772", "", "");
        let set = set_of(&first);
        let rivals = (0..100 * SETS)
            .map(|i| call(&format!("05{i:08}"), "", ""))
            .filter(|c| set_of(c) == set);
        std::iter::once(first).chain(rivals).take(n).collect()
    }

    fn name(cache: &AnswerCache, c: &CallDetails, generation: u64) -> Option<String> {
        cache
            .get(c, generation)
            .and_then(|a| a.popup.client_name.clone())
    }

    #[test]
    fn callers_of_one_set_are_kept_side_by_side_until_a_newcomer_replaces_the_oldest() {
        let cache = reading(false, false);
        let calls = same_set(&cache, WAYS + 1);
        assert_eq!(calls.len(), WAYS + 1, "numbers hashed to the same set");
        for (i, c) in calls[..WAYS].iter().enumerate() {
            cache.keep(c, 1, &answer(&format!("caller {i}")));
        }
        for (i, c) in calls[..WAYS].iter().enumerate() {
            assert_eq!(name(&cache, c, 1), Some(format!("caller {i}")));
        }
        cache.keep(&calls[WAYS], 1, &answer("newcomer"));
        assert_eq!(name(&cache, &calls[0], 1), None, "the oldest made room");
        assert_eq!(name(&cache, &calls[WAYS], 1).as_deref(), Some("newcomer"));
        for (i, c) in calls[1..WAYS].iter().enumerate() {
            assert_eq!(name(&cache, c, 1), Some(format!("caller {}", i + 1)));
        }
    }

    #[test]
    fn a_caller_kept_again_takes_its_own_slot() {
        let cache = reading(false, false);
        let calls = same_set(&cache, WAYS);
        for (i, c) in calls[..WAYS - 1].iter().enumerate() {
            cache.keep(c, 1, &answer(&format!("caller {i}")));
        }
        // The directory changed: the first caller is looked up and kept again, in its own
        // slot and not in the free one (where its old answer would shadow the new).
        cache.keep(&calls[0], 2, &answer("caller 0, renamed"));
        assert_eq!(
            name(&cache, &calls[0], 2).as_deref(),
            Some("caller 0, renamed")
        );
        // So the free slot is still free for a newcomer, and nobody is evicted.
        cache.keep(
            &calls[WAYS - 1],
            1,
            &answer(&format!("caller {}", WAYS - 1)),
        );
        assert!(name(&cache, &calls[0], 2).is_some());
        for (i, c) in calls.iter().enumerate().skip(1) {
            assert_eq!(name(&cache, c, 1), Some(format!("caller {i}")));
        }
    }
}

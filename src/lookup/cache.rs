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

use super::Answer;
use crate::call::CallDetails;
use crate::locks::lock;
use crate::mapping::CallFieldsRead;

/// Slots of the cache: a key's hash picks its one slot, and a newcomer replaces whoever held
/// it (no list to keep in order, and a caller who forces collisions only evicts answers).
const SLOTS: usize = 4096;
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
}

struct Kept {
    key: [Option<Box<str>>; 4],
    generation: u64,
    answer: Arc<Answer>,
}

impl AnswerCache {
    /// An empty cache for answers whose templates read `reads`.
    pub(super) fn new(reads: CallFieldsRead) -> Self {
        AnswerCache {
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
            reads,
        }
    }

    /// The answer kept for `call` at `generation`.
    pub(super) fn get(&self, call: &CallDetails, generation: u64) -> Option<Arc<Answer>> {
        let key = self.key(call)?;
        let slot = lock(self.slot(&key));
        let kept = slot.as_ref()?;
        (kept.generation == generation && same(&kept.key, &key)).then(|| kept.answer.clone())
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
        };
        // The answer replaced is dropped after the slot is unlocked.
        let _replaced = lock(self.slot(&key)).replace(kept);
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

    fn slot(&self, key: &Key<'_>) -> &Mutex<Option<Kept>> {
        &self.slots[FxBuildHasher.hash_one(key) as usize % SLOTS]
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

    #[test]
    fn a_newcomer_replaces_the_slot_holder() {
        let cache = reading(false, false);
        let first = call("0722776772", "", "");
        let slot_of = |c: &CallDetails| cache.slot(&cache.key(c).unwrap()) as *const _;
        let rival = (0..100 * SLOTS)
            .map(|i| call(&format!("05{i:08}"), "", ""))
            .find(|c| slot_of(c) == slot_of(&first))
            .expect("another number hashed to the same slot");
        cache.keep(&first, 1, &answer("Dana"));
        cache.keep(&rival, 1, &answer("Avi"));
        assert!(cache.get(&first, 1).is_none());
        let avi = cache
            .get(&rival, 1)
            .and_then(|a| a.popup.client_name.clone());
        assert_eq!(avi.as_deref(), Some("Avi"));
    }
}

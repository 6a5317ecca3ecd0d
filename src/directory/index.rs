//! An immutable in-memory index from normalised number to the entries holding it, with the
//! attribute and value that hold it: looking a number up parses nothing stored.

use std::collections::HashSet;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use std::collections::hash_map::Entry as Slot;

use super::{Entry, Match};
use crate::phone::{PhoneKey, PhoneNormalizer};

/// Where a number stands in one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hit {
    entry: u32,
    /// Position of the attribute in `phone_attributes`.
    rank: u16,
    /// Position of the value among the entry's fields.
    field: u16,
}

/// The hits of one number: nearly always one, kept inline.
#[derive(Clone, Debug)]
enum Hits {
    One(Hit),
    Many(Vec<Hit>),
}

impl Hits {
    fn push(&mut self, hit: Hit) {
        match self {
            Hits::One(first) => *self = Hits::Many(vec![*first, hit]),
            Hits::Many(all) => all.push(hit),
        }
    }

    fn as_slice(&self) -> &[Hit] {
        match self {
            Hits::One(hit) => std::slice::from_ref(hit),
            Hits::Many(all) => all,
        }
    }

    fn from_vec(mut hits: Vec<Hit>) -> Option<Self> {
        match hits.len() {
            0 => None,
            1 => hits.pop().map(Hits::One),
            _ => Some(Hits::Many(hits)),
        }
    }
}

/// Entries by normalised number; built once, then only read (swap in a new one to change it).
/// Its keys come from the directory, not from callers, so a fast non-keyed hash is safe.
#[derive(Debug, Default)]
pub struct PhoneIndex {
    entries: Vec<Arc<Entry>>,
    by_number: FxHashMap<PhoneKey, Hits>,
}

impl PhoneIndex {
    /// Normalises every value of `phone_attributes` of every entry once and indexes it.
    pub fn build(
        entries: Vec<Entry>,
        phone_attributes: &[String],
        phone: &PhoneNormalizer,
    ) -> Self {
        let keyed = entries
            .into_iter()
            .map(|e| KeyedEntry::new(e, phone_attributes, phone))
            .collect();
        Self::from_keyed(keyed)
    }

    /// Indexes entries whose numbers are already normalised (see [`KeyedEntry`]).
    pub fn from_keyed(entries: Vec<KeyedEntry>) -> Self {
        let mut index = PhoneIndex {
            entries: Vec::with_capacity(entries.len()),
            by_number: FxHashMap::default(),
        };
        index.by_number.reserve(entries.len() * 3 / 2);
        index.extend(entries);
        index
    }

    fn extend(&mut self, entries: Vec<KeyedEntry>) {
        for keyed in entries {
            let Ok(id) = u32::try_from(self.entries.len()) else {
                break;
            };
            for (key, rank, field) in keyed.keys {
                let hit = Hit {
                    entry: id,
                    rank,
                    field,
                };
                match self.by_number.entry(key) {
                    Slot::Occupied(mut hits) => hits.get_mut().push(hit),
                    Slot::Vacant(slot) => {
                        slot.insert(Hits::One(hit));
                    }
                }
            }
            self.entries.push(keyed.entry);
        }
    }

    /// A new index: this one without the entries whose (lower-cased) DN is in `remove` or
    /// among `upsert`, plus `upsert`. Unchanged entries are not normalised again.
    pub fn apply(&self, upsert: Vec<KeyedEntry>, remove: &HashSet<String>) -> Self {
        let replaced: HashSet<String> = upsert
            .iter()
            .map(KeyedEntry::dn_lowercase)
            .chain(remove.iter().cloned())
            .collect();
        let mut renumber = vec![None; self.entries.len()];
        let mut entries = Vec::with_capacity(self.entries.len() + upsert.len());
        for (old, entry) in self.entries.iter().enumerate() {
            if !replaced.contains(&entry.dn().to_lowercase()) {
                renumber[old] = u32::try_from(entries.len()).ok();
                entries.push(entry.clone());
            }
        }
        let mut by_number = FxHashMap::default();
        by_number.reserve(self.by_number.len());
        for (key, hits) in &self.by_number {
            let kept: Vec<Hit> = hits
                .as_slice()
                .iter()
                .filter_map(|h| {
                    let entry = renumber.get(h.entry as usize).copied().flatten()?;
                    Some(Hit { entry, ..*h })
                })
                .collect();
            if let Some(kept) = Hits::from_vec(kept) {
                by_number.insert(key.clone(), kept);
            }
        }
        let mut index = PhoneIndex { entries, by_number };
        index.extend(upsert);
        index
    }

    /// What a delta really changes: of `upsert`, the entries not held exactly as read; of
    /// `touched` (lower-cased DNs of changed entries that are not eligible), those held, to
    /// be removed. One pass over the held entries' DNs.
    pub fn changes(
        &self,
        upsert: Vec<KeyedEntry>,
        touched: HashSet<String>,
    ) -> (Vec<KeyedEntry>, HashSet<String>) {
        if upsert.is_empty() && touched.is_empty() {
            return (upsert, touched);
        }
        let read: std::collections::HashMap<String, usize> = upsert
            .iter()
            .enumerate()
            .map(|(i, k)| (k.dn_lowercase(), i))
            .collect();
        let mut unchanged = vec![false; upsert.len()];
        let mut held = HashSet::new();
        for entry in &self.entries {
            let dn = entry.dn().to_lowercase();
            if let Some(&i) = read.get(&dn) {
                unchanged[i] = upsert[i].entry.same_as(entry);
            }
            if touched.contains(&dn) {
                held.insert(dn);
            }
        }
        let changed = upsert
            .into_iter()
            .zip(unchanged)
            .filter_map(|(k, same)| (!same).then_some(k))
            .collect();
        (changed, held)
    }

    /// The entries holding `key`, each with the attribute and value that hold it.
    pub fn find(&self, key: &PhoneKey) -> Vec<Match> {
        let Some(hits) = self.by_number.get(key) else {
            return Vec::new();
        };
        hits.as_slice()
            .iter()
            .filter_map(|h| {
                let entry = self.entries.get(h.entry as usize)?;
                let (attribute, value) = entry.field(usize::from(h.field))?;
                Some(Match {
                    attribute: attribute.clone(),
                    value: value.to_owned(),
                    rank: usize::from(h.rank),
                    entry: entry.clone(),
                })
            })
            .collect()
    }

    /// Every entry, in index order.
    pub fn all(&self) -> &[Arc<Entry>] {
        &self.entries
    }

    /// How many entries are indexed.
    pub fn entries(&self) -> usize {
        self.entries.len()
    }

    /// How many distinct numbers are indexed.
    pub fn numbers(&self) -> usize {
        self.by_number.len()
    }
}

/// An entry with the numbers its phone attributes hold, normalised once.
#[derive(Debug)]
pub struct KeyedEntry {
    entry: Arc<Entry>,
    keys: Vec<(PhoneKey, u16, u16)>,
}

impl KeyedEntry {
    /// Normalises the values of `phone_attributes`; a number held twice counts once, at its
    /// preferred attribute.
    pub fn new(entry: Entry, phone_attributes: &[String], phone: &PhoneNormalizer) -> Self {
        let mut keys: Vec<(PhoneKey, u16, u16)> = Vec::new();
        let region = phone.entry_country(|a| entry.values(a).next()).region;
        for (rank, attr) in phone_attributes.iter().enumerate() {
            for (field, value) in entry.positions(attr) {
                let (Ok(rank), Ok(field)) = (u16::try_from(rank), u16::try_from(field)) else {
                    continue;
                };
                for key in phone.stored_in(value, region) {
                    if !keys.iter().any(|(k, _, _)| *k == key) {
                        keys.push((key, rank, field));
                    }
                }
            }
        }
        KeyedEntry {
            entry: Arc::new(entry),
            keys,
        }
    }

    /// The entry's DN, lower-cased (DNs compare case-insensitively).
    pub fn dn_lowercase(&self) -> String {
        self.entry.dn().to_lowercase()
    }

    /// Whether any phone value holds a number.
    pub fn has_numbers(&self) -> bool {
        !self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> Vec<String> {
        vec!["telephonenumber".to_owned(), "mobile".to_owned()]
    }

    fn phone() -> PhoneNormalizer {
        PhoneNormalizer::new("IL", 6).expect("IL")
    }

    fn dns(index: &PhoneIndex, n: &str) -> Vec<String> {
        index
            .find(&PhoneKey::E164(n.to_owned()))
            .iter()
            .map(|m| format!("{} {} {}", m.entry.dn(), m.attribute, m.value))
            .collect()
    }

    fn people() -> Vec<Entry> {
        vec![
            Entry::new(
                "cn=a",
                [
                    ("telephoneNumber", vec!["03-5551234", "+972 3 555 1234"]),
                    ("mobile", vec!["054-1234567"]),
                    ("description", vec!["02-9999999"]),
                ],
            ),
            Entry::new("cn=b", [("mobile", vec!["(03) 555 1234"])]),
        ]
    }

    #[test]
    fn indexes_every_number_once_with_where_it_stands() {
        let index = PhoneIndex::build(people(), &attrs(), &phone());
        assert_eq!(
            dns(&index, "+97235551234"),
            [
                "cn=a telephonenumber 03-5551234",
                "cn=b mobile (03) 555 1234"
            ]
        );
        assert_eq!(dns(&index, "+972541234567"), ["cn=a mobile 054-1234567"]);
        assert!(dns(&index, "+97229999999").is_empty());
        assert_eq!((index.entries(), index.numbers()), (2, 2));
    }

    #[test]
    fn apply_adds_changes_and_removes() {
        let (attrs, phone) = (attrs(), phone());
        let index = PhoneIndex::build(people(), &attrs, &phone);
        let changed_b = Entry::new("CN=B", [("mobile", vec!["050-0000000"])]);
        let new_c = Entry::new("cn=c", [("telephoneNumber", vec!["03-5551234"])]);
        let upsert = vec![
            KeyedEntry::new(changed_b, &attrs, &phone),
            KeyedEntry::new(new_c, &attrs, &phone),
        ];
        let next = index.apply(upsert, &HashSet::from(["cn=a".to_owned()]));
        assert_eq!(
            dns(&next, "+97235551234"),
            ["cn=c telephonenumber 03-5551234"]
        );
        assert_eq!(dns(&next, "+972500000000"), ["CN=B mobile 050-0000000"]);
        assert!(dns(&next, "+972541234567").is_empty());
        assert_eq!(next.entries(), 2);
        // The old index is untouched.
        assert_eq!(dns(&index, "+97235551234").len(), 2);
    }
}

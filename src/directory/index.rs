//! The in-memory index from normalised number to the entries holding it, with the attribute
//! and value that hold it: looking a number up parses nothing stored.
//!
//! It is changed in place, one entry at a time, so a sync costs what changed rather than the
//! size of the directory. Memory per entry: the entry itself (one allocation: its text, 6
//! bytes per value and 24 more), a slot (16 bytes), a DN table bucket (9) and 16 bytes per
//! number (plus the tables' spare capacity).

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashMap, FxHasher};

use super::{Entry, Match};
use crate::phone::{PhoneKey, PhoneNormalizer};

/// Where a number stands in one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hit {
    slot: u32,
    /// Position of the attribute in `phone_attributes`.
    rank: u16,
    /// Position of the value among the entry's fields.
    field: u16,
}

/// One (number, entry) pair: numbers held by several entries have several rows.
#[derive(Clone, Copy, Debug)]
struct Row {
    key: u64,
    hit: Hit,
}

/// Entries by normalised number, and by DN for updates. Its keys come from the directory,
/// not from callers, so a fast non-keyed hash is safe.
pub struct PhoneIndex {
    keyer: Keyer,
    slots: Vec<Option<Entry>>,
    free: Vec<u32>,
    by_dn: HashTable<Named>,
    by_number: HashTable<Row>,
    /// Numbers too long to pack (none a numbering plan knows): kept apart.
    long: FxHashMap<PhoneKey, Vec<Hit>>,
    numbers: usize,
    held: usize,
}

impl std::fmt::Debug for PhoneIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhoneIndex")
            .field("entries", &self.held)
            .field("numbers", &self.numbers)
            .finish()
    }
}

impl PhoneIndex {
    /// An empty index whose entries `keyer` normalises.
    pub fn new(keyer: Keyer) -> Self {
        PhoneIndex {
            keyer,
            slots: Vec::new(),
            free: Vec::new(),
            by_dn: HashTable::new(),
            by_number: HashTable::new(),
            long: FxHashMap::default(),
            numbers: 0,
            held: 0,
        }
    }

    /// Normalises every value of `phone_attributes` of every entry once and indexes it; of
    /// entries with the same DN the last one counts.
    pub fn build(
        entries: Vec<Entry>,
        phone_attributes: &[String],
        phone: &PhoneNormalizer,
    ) -> Self {
        let mut index = PhoneIndex::new(Keyer::new(phone_attributes, phone));
        for entry in entries {
            let new = index.keyer.key(entry);
            let old = index.held(new.entry.dn()).map(|(_, e)| e.clone());
            let old = old.map(|e| index.keyer.key(e));
            index.replace(old.as_ref(), Some(new));
        }
        index
    }

    /// What normalises this index's entries.
    pub fn keyer(&self) -> &Keyer {
        &self.keyer
    }

    /// The entry held under `dn` (compared case-insensitively), with its slot.
    pub fn held(&self, dn: &str) -> Option<(u32, &Entry)> {
        let hash = dn_hash(dn);
        let found = self.by_dn.find(spread(hash), |n| {
            n.hash == hash && self.entry(n.slot).is_some_and(|e| dn_eq(e.dn(), dn))
        })?;
        Some((found.slot, self.entry(found.slot)?))
    }

    /// Takes out `old` (an entry held, keyed by [`Keyer::key`]: keying it costs parsing, best
    /// done before taking a write lock) and puts in `new` unless it holds no number. Returns
    /// the slot of `new`.
    pub fn replace(&mut self, old: Option<&KeyedEntry>, new: Option<KeyedEntry>) -> Option<u32> {
        if let Some(old) = old {
            if let Some((slot, held)) = self.held(old.entry.dn()) {
                if held.ptr_eq(&old.entry) {
                    self.remove_slot(slot, &old.keys);
                } else {
                    let rekeyed = self.keyer.key(held.clone());
                    self.remove_slot(slot, &rekeyed.keys);
                }
            }
        }
        new.filter(KeyedEntry::has_numbers)
            .and_then(|new| self.insert(new))
    }

    fn insert(&mut self, keyed: KeyedEntry) -> Option<u32> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.slots.len()).ok()?;
                self.slots.push(None);
                slot
            }
        };
        let hash = dn_hash(keyed.entry.dn());
        if let Some(place) = self.slots.get_mut(slot as usize) {
            *place = Some(keyed.entry);
        }
        self.by_dn
            .insert_unique(spread(hash), Named { slot, hash }, |n| spread(n.hash));
        for (key, rank, field) in keyed.keys {
            self.add_number(key, Hit { slot, rank, field });
        }
        self.held += 1;
        Some(slot)
    }

    fn remove_slot(&mut self, slot: u32, keys: &[(PhoneKey, u16, u16)]) {
        let Some(entry) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        for (key, _, _) in keys {
            self.remove_number(key, slot);
        }
        if let Ok(found) = self
            .by_dn
            .find_entry(spread(dn_hash(entry.dn())), |n| n.slot == slot)
        {
            found.remove();
        }
        self.free.push(slot);
        self.held -= 1;
    }

    fn add_number(&mut self, key: PhoneKey, hit: Hit) {
        let Some(packed) = pack(&key) else {
            let hits = self.long.entry(key).or_default();
            self.numbers += usize::from(hits.is_empty());
            hits.push(hit);
            return;
        };
        let hash = number_hash(packed);
        let new = !self.by_number.iter_hash(hash).any(|r| r.key == packed);
        self.numbers += usize::from(new);
        self.by_number
            .insert_unique(hash, Row { key: packed, hit }, |r| number_hash(r.key));
    }

    fn remove_number(&mut self, key: &PhoneKey, slot: u32) {
        let Some(packed) = pack(key) else {
            if let Some(hits) = self.long.get_mut(key) {
                hits.retain(|h| h.slot != slot);
                if hits.is_empty() {
                    self.long.remove(key);
                    self.numbers -= 1;
                }
            }
            return;
        };
        let hash = number_hash(packed);
        if let Ok(found) = self
            .by_number
            .find_entry(hash, |r| r.key == packed && r.hit.slot == slot)
        {
            found.remove();
            if !self.by_number.iter_hash(hash).any(|r| r.key == packed) {
                self.numbers -= 1;
            }
        }
    }

    /// The entries holding `key`, each with the attribute and value that hold it.
    pub fn find(&self, key: &PhoneKey) -> Vec<Match> {
        let hit = |h: &Hit| {
            let entry = self.entry(h.slot)?;
            let (attribute, _) = entry.field(usize::from(h.field))?;
            Some(Match {
                attribute,
                field: usize::from(h.field),
                rank: usize::from(h.rank),
                scope: 0,
                entry: entry.clone(),
            })
        };
        match pack(key) {
            Some(packed) => self
                .by_number
                .iter_hash(number_hash(packed))
                .filter(|r| r.key == packed)
                .filter_map(|r| hit(&r.hit))
                .collect(),
            None => self
                .long
                .get(key)
                .map(|hits| hits.iter().filter_map(hit).collect())
                .unwrap_or_default(),
        }
    }

    fn entry(&self, slot: u32) -> Option<&Entry> {
        self.slots.get(slot as usize)?.as_ref()
    }

    /// Every entry with its slot.
    pub fn all(&self) -> impl Iterator<Item = (u32, &Entry)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(slot, e)| Some((u32::try_from(slot).ok()?, e.as_ref()?)))
    }

    /// How many entries are indexed.
    pub fn entries(&self) -> usize {
        self.held
    }

    /// How many distinct numbers are indexed.
    pub fn numbers(&self) -> usize {
        self.numbers
    }
}

/// A slot in the DN table, with its DN's hash: the table grows, and finds, without reading
/// the entries.
#[derive(Clone, Copy)]
struct Named {
    slot: u32,
    hash: u32,
}

/// The table's hash of a DN's: its bits spread over the 64 the table reads.
fn spread(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// DNs compare case-insensitively: hashed lower-cased, as the bytes of their lower-cased
/// UTF-8 taken eight at a time, without allocating; ASCII (nearly every DN) is lower-cased
/// without Unicode's case tables.
fn dn_hash(dn: &str) -> u32 {
    let mut bytes = WordHasher::default();
    for c in dn.chars() {
        if c.is_ascii() {
            bytes.push(c.to_ascii_lowercase() as u8);
        } else {
            for lower in c.to_lowercase() {
                lower
                    .encode_utf8(&mut [0; 4])
                    .bytes()
                    .for_each(|b| bytes.push(b));
            }
        }
    }
    bytes.finish()
}

/// Hashes bytes eight at a time.
#[derive(Default)]
struct WordHasher {
    hasher: FxHasher,
    word: u64,
    filled: u32,
}

impl WordHasher {
    fn push(&mut self, byte: u8) {
        self.word |= u64::from(byte) << (8 * self.filled);
        self.filled += 1;
        if self.filled == 8 {
            self.hasher.write_u64(self.word);
            (self.word, self.filled) = (0, 0);
        }
    }

    fn finish(mut self) -> u32 {
        if self.filled > 0 {
            self.hasher.write_u64(self.word);
        }
        let hash = self.hasher.finish();
        (hash ^ hash >> 32) as u32
    }
}

fn dn_eq(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

fn number_hash(key: u64) -> u64 {
    let mut h = FxBuildHasher.build_hasher();
    h.write_u64(key);
    h.finish()
}

/// A full number or an extension as a u64: a tag in the top two bits, then the digits after
/// a leading 1 (so that leading zeros count). `None` for longer than 18 digits, and for
/// digits of no country, which no caller is looked up by.
fn pack(key: &PhoneKey) -> Option<u64> {
    let (tag, digits): (u64, &str) = match key {
        PhoneKey::E164(n) => (1, n.strip_prefix('+').unwrap_or(n)),
        PhoneKey::Extension(n) => (2, n),
        PhoneKey::Digits(_) => return None,
    };
    if digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value = digits
        .bytes()
        .fold(1u64, |v, b| v * 10 + u64::from(b - b'0'));
    Some(tag << 62 | value)
}

/// Normalises the numbers of entries, as the index it belongs to does.
#[derive(Clone)]
pub struct Keyer {
    attrs: Arc<[String]>,
    phone: PhoneNormalizer,
}

impl Keyer {
    /// Reads the values of `phone_attributes` with `phone`.
    pub fn new(phone_attributes: &[String], phone: &PhoneNormalizer) -> Self {
        Keyer {
            attrs: phone_attributes.into(),
            phone: phone.clone(),
        }
    }

    /// The numbers `entry` holds; a number held twice counts once, at its preferred
    /// attribute.
    pub fn key(&self, entry: Entry) -> KeyedEntry {
        let mut keys: Vec<(PhoneKey, u16, u16)> = Vec::new();
        let region = self.phone.entry_country(|a| entry.values(a).next()).region;
        for (rank, attr) in self.attrs.iter().enumerate() {
            for (field, value) in entry.positions(attr) {
                let (Ok(rank), Ok(field)) = (u16::try_from(rank), u16::try_from(field)) else {
                    continue;
                };
                for key in self.phone.stored_in(value, region) {
                    if !matches!(key, PhoneKey::Digits(_))
                        && !keys.iter().any(|(k, _, _)| *k == key)
                    {
                        keys.push((key, rank, field));
                    }
                }
            }
        }
        KeyedEntry { entry, keys }
    }
}

/// An entry with the numbers its phone attributes hold, normalised once.
#[derive(Debug)]
pub struct KeyedEntry {
    entry: Entry,
    keys: Vec<(PhoneKey, u16, u16)>,
}

impl KeyedEntry {
    /// The entry.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// Whether any phone value holds a number a caller can be looked up by.
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
            .map(|m| format!("{} {} {}", m.entry.dn(), m.attribute, m.value()))
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

    fn keyed(index: &PhoneIndex, e: Entry) -> KeyedEntry {
        index.keyer().key(e)
    }

    fn old(index: &PhoneIndex, dn: &str) -> Option<KeyedEntry> {
        let held = index.held(dn).map(|(_, e)| e.clone())?;
        Some(index.keyer().key(held))
    }

    #[test]
    fn replace_changes_adds_and_removes_in_place() {
        let mut index = PhoneIndex::build(people(), &attrs(), &phone());
        let changed_b = keyed(
            &index,
            Entry::new("CN=B", [("mobile", vec!["050-0000000"])]),
        );
        let b = old(&index, "cn=b");
        assert!(b.is_some(), "DNs compare case-insensitively");
        index.replace(b.as_ref(), Some(changed_b));
        let new_c = keyed(
            &index,
            Entry::new("cn=c", [("telephoneNumber", vec!["03-5551234"])]),
        );
        index.replace(None, Some(new_c));
        let a = old(&index, "CN=A");
        index.replace(a.as_ref(), None);
        assert_eq!(
            dns(&index, "+97235551234"),
            ["cn=c telephonenumber 03-5551234"]
        );
        assert_eq!(dns(&index, "+972500000000"), ["CN=B mobile 050-0000000"]);
        assert!(dns(&index, "+972541234567").is_empty());
        assert_eq!((index.entries(), index.numbers()), (2, 2));
        // Freed slots are used again.
        assert_eq!(index.slots.len(), 3);
        let new_d = keyed(
            &index,
            Entry::new("cn=d", [("mobile", vec!["050-2222222"])]),
        );
        assert_eq!(index.replace(None, Some(new_d)), Some(0));
        assert_eq!((index.slots.len(), index.entries()), (3, 3));
    }

    #[test]
    fn an_entry_left_without_numbers_leaves_the_index() {
        let mut index = PhoneIndex::build(people(), &attrs(), &phone());
        let b = old(&index, "cn=b");
        let bare = keyed(&index, Entry::new("cn=b", [("mobile", vec!["none"])]));
        assert_eq!(index.replace(b.as_ref(), Some(bare)), None);
        assert!(index.held("cn=b").is_none());
        assert_eq!(
            dns(&index, "+97235551234"),
            ["cn=a telephonenumber 03-5551234"]
        );
        assert_eq!(index.entries(), 1);
    }

    #[test]
    fn a_stale_old_copy_is_keyed_again() {
        let mut index = PhoneIndex::build(people(), &attrs(), &phone());
        // An old copy that is not the entry held: its keys must not be trusted.
        let stale = keyed(
            &index,
            Entry::new("cn=b", [("mobile", vec!["050-1111111"])]),
        );
        index.replace(Some(&stale), None);
        assert!(dns(&index, "+97235551234") == ["cn=a telephonenumber 03-5551234"]);
        assert_eq!(index.numbers(), 2);
    }

    #[test]
    fn dns_equal_but_for_case_hash_alike() {
        let alike = [
            (
                "cn=Dana Levi,ou=People,dc=example,dc=com",
                "CN=dana levi,OU=people,DC=EXAMPLE,DC=COM",
            ),
            ("cn=\u{c4}rger,o=M\u{fc}ller", "CN=\u{e4}RGER,O=m\u{dc}LLER"),
            // The Kelvin sign lower-cases to an ASCII k.
            ("cn=\u{212a}ay", "CN=kay"),
            ("cn=\u{130}", "cn=i\u{307}"),
        ];
        for (a, b) in alike {
            assert!(dn_eq(a, b), "{a} {b}");
            assert_eq!(dn_hash(a), dn_hash(b), "{a} {b}");
        }
        for (a, b) in [("cn=a", "cn=b"), ("cn=ab", "cn=a"), ("cn=\u{e4}", "cn=a")] {
            assert!(!dn_eq(a, b), "{a} {b}");
            assert_ne!(dn_hash(a), dn_hash(b), "{a} {b}");
        }
    }

    #[test]
    fn numbers_pack_without_collisions() {
        let e = |n: &str| PhoneKey::E164(n.to_owned());
        let x = |n: &str| PhoneKey::Extension(n.to_owned());
        let packed: Vec<Option<u64>> = [e("+12"), e("+012"), x("12"), x("012"), e("+972541234567")]
            .iter()
            .map(pack)
            .collect();
        let distinct: std::collections::HashSet<_> = packed.iter().flatten().collect();
        assert_eq!(distinct.len(), 5);
        assert_eq!(pack(&e("+1234567890123456789")), None);
        assert_eq!(pack(&PhoneKey::Digits("123".into())), None);
    }

    #[test]
    fn numbers_too_long_to_pack_are_still_found() {
        let mut index = PhoneIndex::new(Keyer::new(&attrs(), &phone()));
        let long = PhoneKey::E164("+1234567890123456789".to_owned());
        let entry = Entry::new("cn=x", [("mobile", vec!["x"])]);
        let keyed = KeyedEntry {
            entry,
            keys: vec![(long.clone(), 1, 0)],
        };
        index.replace(None, Some(keyed));
        assert_eq!(index.find(&long).len(), 1);
        assert_eq!(index.numbers(), 1);
        let old = KeyedEntry {
            entry: index.held("cn=x").map(|(_, e)| e.clone()).unwrap(),
            keys: vec![(long.clone(), 1, 0)],
        };
        index.replace(Some(&old), None);
        assert!(index.find(&long).is_empty());
        assert_eq!((index.numbers(), index.entries()), (0, 0));
    }
}

//! A directory entry held compactly: its DN and every value in one text buffer after a table
//! of (attribute, end) pairs of 6 bytes each, all in one allocation shared by its clones.
//! Attribute names are interned for the life of the process.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize, Serializer};

/// Distinct attribute names one process can hold. Only the configured attributes are read
/// from LDAP, so this bounds LDIF sources alone; further names are dropped with their values.
const MAX_NAMES: usize = 4096;

/// Names by id: written once each, read without a lock.
static NAMES: [OnceLock<&'static str>; MAX_NAMES] = [const { OnceLock::new() }; MAX_NAMES];
/// Ids by name, for interning.
static IDS: Mutex<Option<HashMap<&'static str, u16>>> = Mutex::new(None);

thread_local! {
    /// Names a thread last interned, as written (any case), at most [`RECENT_NAMES`].
    static RECENT: RefCell<Vec<(Box<str>, Name)>> = const { RefCell::new(Vec::new()) };
}

const RECENT_NAMES: usize = 32;

/// An attribute name, lower-cased and interned: two bytes in every field instead of a
/// pointer. (Not `ustr` or `lasso`: their handles take 8 and 4 bytes, and their tables grow
/// without the bound a directory source needs.)
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Name(u16);

impl Name {
    /// The interned, lower-cased `name`; `None` once [`MAX_NAMES`] names are taken.
    pub fn of(name: &str) -> Option<Name> {
        // A sync names the same few attributes in every entry: found here without the lock.
        RECENT.with_borrow_mut(|recent| {
            if let Some((_, id)) = recent.iter().find(|(known, _)| **known == *name) {
                return Some(*id);
            }
            let id = Name::interned(name)?;
            if recent.len() < RECENT_NAMES {
                recent.push((name.into(), id));
            }
            Some(id)
        })
    }

    fn interned(name: &str) -> Option<Name> {
        let mut ids = crate::locks::lock(&IDS);
        let ids = ids.get_or_insert_with(HashMap::new);
        if let Some(&id) = ids.get(name) {
            return Some(Name(id));
        }
        let lower = name.to_lowercase();
        if let Some(&id) = ids.get(lower.as_str()) {
            return Some(Name(id));
        }
        let id = u16::try_from(ids.len())
            .ok()
            .filter(|&id| usize::from(id) < MAX_NAMES)?;
        let leaked: &'static str = Box::leak(lower.into_boxed_str());
        NAMES.get(usize::from(id))?.set(leaked).ok()?;
        ids.insert(leaked, id);
        Some(Name(id))
    }

    /// The name, lower-cased.
    pub fn as_str(self) -> &'static str {
        NAMES
            .get(usize::from(self.0))
            .and_then(OnceLock::get)
            .copied()
            .unwrap_or_default()
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Digits (of 7 bits, most significant first) of the DN's length and of the value count,
/// which open an entry.
const LENGTH: usize = 5;

/// Digits of an attribute name's id in the field table (`MAX_NAMES` fits in 14 bits).
const NAME: usize = 2;

/// Digits a value takes in the field table: its attribute's name, then where it ends in the
/// text.
const FIELD: usize = NAME + LENGTH;

/// A directory entry: its DN and its textual attribute values, names lower-cased, in one
/// shared allocation (cloning an entry shares it): the DN's length and the value count, a
/// table of each value's attribute and end, then the text, DN first; each value starts where
/// the previous one ends. Numbers are written in digits of 7 bits, so the whole entry is one
/// `str` and slicing its text checks nothing (no `unsafe`, no UTF-8 pass on every read).
/// Finding a number's holder reads the index's slot and this allocation, nothing else.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry(Arc<str>);

thread_local! {
    /// Where entries are put together before they get their allocation: one a thread, reused.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The most an entry's scratch space keeps between entries.
const SCRATCH_KEPT: usize = 64 * 1024;

impl Entry {
    /// Builds an entry; values keep their order, those of one attribute grouped.
    pub fn new<K, V, I>(dn: &str, attrs: I) -> Self
    where
        K: AsRef<str>,
        V: AsRef<str>,
        I: IntoIterator<Item = (K, Vec<V>)>,
    {
        let mut grouped: Vec<(Name, Vec<V>)> = Vec::new();
        for (name, values) in attrs {
            let Some(name) = Name::of(name.as_ref()) else {
                continue;
            };
            match grouped.iter_mut().find(|(n, _)| *n == name) {
                Some((_, vs)) => vs.extend(values),
                None => grouped.push((name, values)),
            }
        }
        SCRATCH.with_borrow_mut(|buf| {
            buf.clear();
            let count = grouped.iter().map(|(_, vs)| vs.len()).sum();
            push_number(buf, dn.len(), LENGTH);
            push_number(buf, count, LENGTH);
            let mut end = dn.len();
            for (name, values) in &grouped {
                for value in values {
                    end += value.as_ref().len();
                    push_number(buf, usize::from(name.0), NAME);
                    push_number(buf, end, LENGTH);
                }
            }
            buf.push_str(dn);
            for value in grouped.iter().flat_map(|(_, vs)| vs) {
                buf.push_str(value.as_ref());
            }
            let entry = Entry(Arc::from(buf.as_str()));
            if buf.capacity() > SCRATCH_KEPT {
                *buf = String::new();
            }
            entry
        })
    }

    /// The entry's distinguished name.
    pub fn dn(&self) -> &str {
        self.text(0, self.dn_len())
    }

    /// The values of an attribute (by lower-cased name), in directory order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.positions(name).map(|(_, v)| v)
    }

    /// The values of an attribute with their field positions (see [`Entry::field`]).
    pub fn positions<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (usize, &'a str)> + 'a {
        self.spans()
            .enumerate()
            .filter(move |(_, (n, _))| n.as_str() == name)
            .map(|(i, (_, v))| (i, v))
    }

    /// The attribute name and value at a field position.
    pub fn field(&self, position: usize) -> Option<(&'static str, &str)> {
        let (name, end) = self.field_at(position)?;
        let start = match position.checked_sub(1) {
            Some(before) => self.field_at(before)?.1,
            None => self.dn_len(),
        };
        Some((name.as_str(), self.text(start, end)))
    }

    /// The first value of an attribute that is not blank.
    pub fn first(&self, name: Name) -> Option<&str> {
        self.spans()
            .find(|(n, v)| *n == name && !v.trim().is_empty())
            .map(|(_, v)| v)
    }

    /// Whether `other` has the same DN and values, whatever the order of its attributes (the
    /// LDAP client hands them over in no fixed order); values of one attribute keep theirs.
    pub fn same_as(&self, other: &Entry) -> bool {
        if self.0.len() != other.0.len()
            || self.parts().0.len() != other.parts().0.len()
            || self.dn() != other.dn()
        {
            return false;
        }
        sorted_pairs(self) == sorted_pairs(other)
    }

    /// Whether `other` is this very entry (a clone of it), not only an equal one.
    pub fn ptr_eq(&self, other: &Entry) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Every (attribute, value) pair, names lower-cased.
    pub fn attributes(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.spans().map(|(n, v)| (n.as_str(), v))
    }

    /// Every (name, value) pair, in field order.
    fn spans(&self) -> impl Iterator<Item = (Name, &str)> {
        let (table, text) = self.parts();
        let mut start = self.dn_len();
        table.chunks_exact(FIELD).map(move |field| {
            let (name, end) = read_field(field);
            let value = text.get(start..end).unwrap_or_default();
            start = end;
            (name, value)
        })
    }

    /// The name and text end of the value at `position`.
    fn field_at(&self, position: usize) -> Option<(Name, usize)> {
        let (table, _) = self.parts();
        table.chunks_exact(FIELD).nth(position).map(read_field)
    }

    /// Where the DN ends in the text.
    fn dn_len(&self) -> usize {
        self.0.as_bytes().get(..LENGTH).map_or(0, number)
    }

    /// The field table and the text.
    fn parts(&self) -> (&[u8], &str) {
        let count = self.0.as_bytes().get(LENGTH..2 * LENGTH).map_or(0, number);
        let table_end = (2 * LENGTH + FIELD * count).min(self.0.len());
        let table = self.0.as_bytes().get(2 * LENGTH..table_end);
        (
            table.unwrap_or_default(),
            self.0.get(table_end..).unwrap_or_default(),
        )
    }

    /// The text from `start` to `end` (offsets after the field table).
    fn text(&self, start: usize, end: usize) -> &str {
        self.parts().1.get(start..end).unwrap_or_default()
    }
}

/// A field table's row: the attribute's name and where its value ends.
fn read_field(field: &[u8]) -> (Name, usize) {
    let (name, end) = field.split_at(NAME.min(field.len()));
    let name = u16::try_from(number(name)).unwrap_or(u16::MAX);
    (Name(name), number(end))
}

/// A number written in digits of 7 bits.
fn number(digits: &[u8]) -> usize {
    digits.iter().fold(0, |n, &d| n << 7 | usize::from(d))
}

/// Writes `n` in `width` digits of 7 bits: ASCII characters whatever `n` (a larger `n` is
/// written as the largest the digits hold: no entry comes near 32 GiB).
fn push_number(buf: &mut String, n: usize, width: usize) {
    let n = n.min((1 << (7 * width)) - 1);
    for k in (0..width).rev() {
        buf.push(char::from(((n >> (7 * k)) & 0x7f) as u8));
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("dn", &self.dn())
            .field("attributes", &self.attributes().collect::<Vec<_>>())
            .finish()
    }
}

impl Serialize for Entry {
    /// `{"dn": "...", "attrs": [["cn", "value"], ...]}`, read back by [`StoredEntry`].
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Stored<'a> {
            dn: &'a str,
            attrs: Vec<(&'a str, &'a str)>,
        }
        Stored {
            dn: self.dn(),
            attrs: self.attributes().collect(),
        }
        .serialize(serializer)
    }
}

/// An entry as serialised, before its names are shared.
#[derive(Debug, Deserialize)]
pub struct StoredEntry {
    dn: String,
    attrs: Vec<(String, String)>,
}

impl StoredEntry {
    /// The entry.
    pub fn into_entry(self) -> Entry {
        Entry::new(&self.dn, self.attrs.into_iter().map(|(n, v)| (n, vec![v])))
    }
}

/// An entry's (attribute, value) pairs by attribute name; an attribute's values stay in their
/// order (the sort is stable).
fn sorted_pairs(e: &Entry) -> Vec<(&str, &str)> {
    let mut pairs: Vec<(&str, &str)> = e.attributes().collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_order_and_names_fold_case() {
        let e = Entry::new(
            "uid=a,dc=x",
            [("CN", vec!["a"]), ("mail", vec!["m"]), ("cn", vec!["b"])],
        );
        assert_eq!(e.dn(), "uid=a,dc=x");
        assert_eq!(e.values("cn").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(e.values("sn").count(), 0);
        assert_eq!(e.first(Name::of("mail").expect("name")), Some("m"));
    }

    #[test]
    fn the_same_entry_in_another_attribute_order_is_the_same() {
        let a = Entry::new("uid=a", [("cn", vec!["A"]), ("mobile", vec!["1", "2"])]);
        let b = Entry::new("uid=a", [("mobile", vec!["1", "2"]), ("cn", vec!["A"])]);
        assert!(a.same_as(&b));
        for other in [
            Entry::new("uid=a", [("mobile", vec!["2", "1"]), ("cn", vec!["A"])]),
            Entry::new("uid=a", [("mobile", vec!["1", "3"]), ("cn", vec!["A"])]),
            Entry::new("uid=b", [("mobile", vec!["1", "2"]), ("cn", vec!["A"])]),
            Entry::new("uid=a", [("mobile", vec!["1", "2"])]),
        ] {
            assert!(!a.same_as(&other), "{}", other.dn());
        }
    }

    #[test]
    fn names_are_interned_case_insensitively() {
        let a = Entry::new("a", [("telephoneNumber", vec!["1"])]);
        let b = Entry::new("b", [("TELEPHONENUMBER", vec!["2"])]);
        assert_eq!(a.field_at(0).map(|f| f.0), b.field_at(0).map(|f| f.0));
        assert_eq!(b.field(0), Some(("telephonenumber", "2")));
        assert_eq!(Name::of("Mobile"), Name::of("mobile"));
        assert_ne!(Name::of("mobile"), Name::of("telephonenumber"));
    }

    #[test]
    fn entries_stay_small() {
        assert_eq!(std::mem::size_of::<Option<Entry>>(), 16);
        let e = Entry::new("uid=a", [("cn", vec!["A"]), ("mobile", vec!["1", "2"])]);
        assert_eq!(e.0.len(), 2 * LENGTH + 3 * FIELD + "uid=aA12".len());
    }

    #[test]
    fn big_entries_read_back_whole() {
        let long = "ש".repeat(150_000);
        let many: Vec<String> = (0..1000).map(|i| format!("0{i}")).collect();
        let e = Entry::new(
            "uid=big",
            [
                ("description", vec![long.clone()]),
                ("mobile", many.clone()),
            ],
        );
        assert_eq!(e.values("description").collect::<Vec<_>>(), [long.as_str()]);
        assert_eq!(e.values("mobile").collect::<Vec<_>>(), many);
        assert_eq!(e.field(1000), Some(("mobile", "0999")));
        assert_eq!(e.dn(), "uid=big");
        // The scratch space does not keep a big entry's size.
        SCRATCH.with_borrow(|buf| assert!(buf.capacity() <= SCRATCH_KEPT));
        let small = Entry::new("uid=a", [("cn", vec!["A"])]);
        assert_eq!(small.attributes().collect::<Vec<_>>(), [("cn", "A")]);
    }

    #[test]
    fn fields_are_found_by_position() {
        let e = Entry::new("uid=a", [("cn", vec!["", "A"]), ("mobile", vec!["1"])]);
        assert_eq!(e.field(0), Some(("cn", "")));
        assert_eq!(e.field(1), Some(("cn", "A")));
        assert_eq!(e.field(2), Some(("mobile", "1")));
        assert_eq!(e.field(3), None);
        assert_eq!(e.first(Name::of("cn").expect("name")), Some("A"));
        assert_eq!(e.positions("mobile").collect::<Vec<_>>(), [(2, "1")]);
    }

    #[test]
    fn round_trips_through_json() {
        let e = Entry::new(
            "uid=דנה,dc=x",
            [
                ("cn", vec!["דנה לוי", "Dana"]),
                ("mobile", vec!["054-1234567"]),
            ],
        );
        let json = serde_json::to_string(&e).expect("serialise");
        let back: StoredEntry = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back.into_entry(), e);
    }
}

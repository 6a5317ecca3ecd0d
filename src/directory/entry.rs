//! A directory entry held compactly: its DN and every value in one text buffer, with a table
//! of (attribute, end) pairs of 8 bytes each. Attribute names are interned for the life of the
//! process. 100,000 entries of a typical directory take about 25 MiB.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize, Serializer};

/// Distinct attribute names one process can hold. Only the configured attributes are read
/// from LDAP, so this bounds LDIF sources alone; further names are dropped with their values.
const MAX_NAMES: usize = 4096;

/// Names by id: written once each, read without a lock.
static NAMES: [OnceLock<&'static str>; MAX_NAMES] = [const { OnceLock::new() }; MAX_NAMES];
/// Ids by name, for interning.
static IDS: Mutex<Option<HashMap<&'static str, u16>>> = Mutex::new(None);

/// An attribute name, lower-cased and interned: two bytes in every field instead of a
/// pointer. (Not `ustr` or `lasso`: their handles take 8 and 4 bytes, and their tables grow
/// without the bound a directory source needs.)
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Name(u16);

impl Name {
    /// The interned, lower-cased `name`; `None` once [`MAX_NAMES`] names are taken.
    pub fn of(name: &str) -> Option<Name> {
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

/// One value: its attribute and where it ends in the text (it starts where the previous one
/// ends, the first one after the DN). Six bytes, packed: an entry of six values then fits a
/// 48-byte allocation instead of 64.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C, packed(2))]
struct Field {
    name: Name,
    end: u32,
}

/// A directory entry: its DN and its textual attribute values, names lower-cased.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    text: Box<str>,
    fields: Box<[Field]>,
    dn_len: u32,
}

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
        // Sized exactly: no growth while building, no shrinking when boxed (a sync builds
        // every entry of the directory).
        let values = grouped.iter().flat_map(|(_, vs)| vs);
        let (count, bytes) = values.fold((0, dn.len()), |(n, b), v| (n + 1, b + v.as_ref().len()));
        let mut text = String::with_capacity(bytes);
        text.push_str(dn);
        let mut fields = Vec::with_capacity(count);
        for (name, values) in grouped {
            for value in values {
                text.push_str(value.as_ref());
                fields.push(Field {
                    name,
                    end: offset(text.len()),
                });
            }
        }
        Entry {
            text: text.into_boxed_str(),
            fields: fields.into_boxed_slice(),
            dn_len: offset(dn.len()),
        }
    }

    /// The entry's distinguished name.
    pub fn dn(&self) -> &str {
        self.text.get(..self.dn_len as usize).unwrap_or_default()
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
        let f = self.fields.get(position)?;
        let start = match position.checked_sub(1) {
            Some(before) => self.fields.get(before)?.end,
            None => self.dn_len,
        };
        Some((
            f.name.as_str(),
            self.text.get(start as usize..f.end as usize)?,
        ))
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
        if self.text.len() != other.text.len()
            || self.fields.len() != other.fields.len()
            || self.dn() != other.dn()
        {
            return false;
        }
        sorted_pairs(self) == sorted_pairs(other)
    }

    /// Every (attribute, value) pair, names lower-cased.
    pub fn attributes(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.spans().map(|(n, v)| (n.as_str(), v))
    }

    /// Every (name, value) pair, in field order.
    fn spans(&self) -> impl Iterator<Item = (Name, &str)> {
        let mut start = self.dn_len as usize;
        self.fields.iter().map(move |f| {
            let value = self.text.get(start..f.end as usize).unwrap_or_default();
            start = f.end as usize;
            (f.name, value)
        })
    }
}

/// Offsets are u32: a single entry over 4 GiB is not a directory entry.
fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
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
        assert_eq!(a.fields[0].name, b.fields[0].name);
        assert_eq!(b.field(0), Some(("telephonenumber", "2")));
        assert_eq!(Name::of("Mobile"), Name::of("mobile"));
        assert_ne!(Name::of("mobile"), Name::of("telephonenumber"));
    }

    #[test]
    fn entries_stay_small() {
        assert_eq!(std::mem::size_of::<Field>(), 6);
        assert_eq!(std::mem::size_of::<Entry>(), 40);
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

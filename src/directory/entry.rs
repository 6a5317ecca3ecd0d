//! A directory entry held compactly: its DN and every value in one text buffer, with a small
//! table of (attribute, span). An index of 100,000 entries stays a few tens of megabytes.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize, Serializer};

/// Attribute names shared by all entries of one load, lower-cased.
#[derive(Debug, Default)]
pub struct AttributeNames {
    shared: HashSet<Arc<str>>,
    /// Names as the server spelt them, for lookups that allocate nothing.
    spelt: HashMap<Box<str>, Arc<str>>,
}

impl AttributeNames {
    /// The shared, lower-cased form of `name`.
    pub fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(found) = self.spelt.get(name) {
            return found.clone();
        }
        let lower = name.to_ascii_lowercase();
        let shared = match self.shared.get(lower.as_str()) {
            Some(found) => found.clone(),
            None => {
                let new: Arc<str> = Arc::from(lower);
                self.shared.insert(new.clone());
                new
            }
        };
        self.spelt.insert(name.into(), shared.clone());
        shared
    }
}

#[derive(Clone, PartialEq, Eq)]
struct Field {
    name: Arc<str>,
    start: u32,
    end: u32,
}

/// A directory entry: its DN and its textual attribute values, names lower-cased.
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    text: Box<str>,
    dn_len: u32,
    fields: Box<[Field]>,
}

impl Entry {
    /// Builds an entry with names shared through `names`; values keep their order.
    pub fn build<K, V, I>(dn: &str, attrs: I, names: &mut AttributeNames) -> Self
    where
        K: AsRef<str>,
        V: AsRef<str>,
        I: IntoIterator<Item = (K, Vec<V>)>,
    {
        let mut text = String::from(dn);
        let mut fields = Vec::new();
        let mut grouped: Vec<(Arc<str>, Vec<V>)> = Vec::new();
        for (name, values) in attrs {
            let name = names.get(name.as_ref());
            match grouped.iter_mut().find(|(n, _)| *n == name) {
                Some((_, vs)) => vs.extend(values),
                None => grouped.push((name, values)),
            }
        }
        for (name, values) in grouped {
            for value in values {
                let start = offset(text.len());
                text.push_str(value.as_ref());
                fields.push(Field {
                    name: name.clone(),
                    start,
                    end: offset(text.len()),
                });
            }
        }
        Entry {
            text: text.into_boxed_str(),
            dn_len: offset(dn.len()),
            fields: fields.into_boxed_slice(),
        }
    }

    /// Builds an entry on its own (tests, one-off entries).
    pub fn new<K, V, I>(dn: &str, attrs: I) -> Self
    where
        K: AsRef<str>,
        V: AsRef<str>,
        I: IntoIterator<Item = (K, Vec<V>)>,
    {
        Self::build(dn, attrs, &mut AttributeNames::default())
    }

    /// The entry's distinguished name.
    pub fn dn(&self) -> &str {
        self.text.get(..self.dn_len as usize).unwrap_or_default()
    }

    /// The values of an attribute (by lower-cased name), in directory order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |f| &*f.name == name)
            .map(move |f| self.span(f))
    }

    /// The values of an attribute with their field positions (see [`Entry::field`]).
    pub fn positions<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (usize, &'a str)> + 'a {
        self.fields
            .iter()
            .enumerate()
            .filter(move |(_, f)| &*f.name == name)
            .map(move |(i, f)| (i, self.span(f)))
    }

    /// The attribute name (shared) and value at a field position.
    pub fn field(&self, position: usize) -> Option<(&Arc<str>, &str)> {
        let f = self.fields.get(position)?;
        Some((&f.name, self.span(f)))
    }

    /// The first value of an attribute that is not blank.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .filter(|f| &*f.name == name)
            .map(|f| self.span(f))
            .find(|v| !v.trim().is_empty())
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
    pub fn attributes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(move |f| (&*f.name, self.span(f)))
    }

    fn span(&self, f: &Field) -> &str {
        self.text
            .get(f.start as usize..f.end as usize)
            .unwrap_or_default()
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
    /// The entry, with names shared through `names`.
    pub fn into_entry(self, names: &mut AttributeNames) -> Entry {
        Entry::build(
            &self.dn,
            self.attrs.into_iter().map(|(n, v)| (n, vec![v])),
            names,
        )
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
        assert_eq!(e.first("mail"), Some("m"));
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
    fn names_are_shared() {
        let mut names = AttributeNames::default();
        let a = Entry::build("a", [("cn", vec!["1"])], &mut names);
        let b = Entry::build("b", [("CN", vec!["2"])], &mut names);
        let c = Entry::build("c", [("cn", vec!["3"])], &mut names);
        assert!(Arc::ptr_eq(&a.fields[0].name, &b.fields[0].name));
        assert!(Arc::ptr_eq(&a.fields[0].name, &c.fields[0].name));
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
        assert_eq!(back.into_entry(&mut AttributeNames::default()), e);
    }
}

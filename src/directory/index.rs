//! An immutable in-memory index from normalised number to the entries that hold it.

use std::collections::HashMap;
use std::sync::Arc;

use super::Entry;
use crate::phone::{PhoneKey, PhoneNormalizer};

/// Entries by normalised number; built once, read without locks.
#[derive(Debug, Default)]
pub struct PhoneIndex {
    entries: Vec<Arc<Entry>>,
    by_number: HashMap<PhoneKey, Vec<u32>>,
}

impl PhoneIndex {
    /// Normalises every value of `phone_attributes` of every entry once and indexes it.
    pub fn build(
        entries: Vec<Entry>,
        phone_attributes: &[String],
        phone: &PhoneNormalizer,
    ) -> Self {
        let mut by_number: HashMap<PhoneKey, Vec<u32>> = HashMap::new();
        let entries: Vec<Arc<Entry>> = entries.into_iter().map(Arc::new).collect();
        for (i, entry) in entries.iter().enumerate() {
            let Ok(i) = u32::try_from(i) else { break };
            for attr in phone_attributes {
                for value in entry.values(attr) {
                    for key in phone.stored(value) {
                        let slot = by_number.entry(key).or_default();
                        if slot.last() != Some(&i) {
                            slot.push(i);
                        }
                    }
                }
            }
        }
        PhoneIndex { entries, by_number }
    }

    /// The entries holding `key`, in load order.
    pub fn get(&self, key: &PhoneKey) -> Vec<Arc<Entry>> {
        self.by_number
            .get(key)
            .map(|ids| {
                ids.iter()
                    .filter_map(|&i| self.entries.get(i as usize).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many entries were loaded.
    pub fn entries(&self) -> usize {
        self.entries.len()
    }

    /// How many distinct numbers are indexed.
    pub fn numbers(&self) -> usize {
        self.by_number.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_every_number_of_every_phone_attribute_once() {
        let phone = PhoneNormalizer::new("IL", 6).expect("IL");
        let entries = vec![
            Entry::new(
                "cn=a",
                [
                    ("telephoneNumber", vec!["03-5551234", "+972 3 555 1234"]),
                    ("mobile", vec!["054-1234567"]),
                    ("description", vec!["02-9999999"]),
                ],
            ),
            Entry::new("cn=b", [("mobile", vec!["(03) 555 1234"])]),
        ];
        let attrs = ["telephonenumber".to_owned(), "mobile".to_owned()];
        let index = PhoneIndex::build(entries, &attrs, &phone);
        let dns = |n: &str| -> Vec<String> {
            index
                .get(&PhoneKey::E164(n.to_owned()))
                .iter()
                .map(|e| e.dn.clone())
                .collect()
        };
        assert_eq!(dns("+97235551234"), ["cn=a", "cn=b"]);
        assert_eq!(dns("+972541234567"), ["cn=a"]);
        assert!(dns("+97229999999").is_empty());
        assert_eq!((index.entries(), index.numbers()), (2, 2));
    }
}

//! A report on the directory's phone data, for admins to fix it: values with no number in
//! them, numbers of no country, national numbers read in the default region because their
//! entry names no country, numbers several entries share, and how many entries and values
//! each phone attribute has.

use std::collections::BTreeMap;
use std::fmt;

use crate::directory::Entry;
use crate::phone::{PhoneKey, PhoneNormalizer, Reading};

mod repair;

pub use repair::{repair_ldif, Repair};

/// Findings listed per kind before "and N more".
const LISTED: usize = 20;

/// One phone value worth a look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The entry.
    pub dn: String,
    /// The phone attribute.
    pub attribute: String,
    /// The value as stored.
    pub value: String,
}

/// What [`examine`] found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Entries examined.
    pub entries: usize,
    /// Per phone attribute: entries that have it, values it holds.
    pub per_attribute: Vec<(String, usize, usize)>,
    /// Values with no digits at all (`n/a`, `ask reception`).
    pub no_number: Vec<Finding>,
    /// Values whose digits are a number in no country (compared as plain digits).
    pub unknown_to_plan: Vec<Finding>,
    /// National-format values of entries that name no country, read in the default region.
    pub guessed_country: Vec<Finding>,
    /// Numbers held by more than one entry, with those entries' DNs.
    pub shared: Vec<(String, Vec<String>)>,
}

/// Examines the phone attributes of `entries`.
pub fn examine(entries: &[Entry], phone_attributes: &[String], phone: &PhoneNormalizer) -> Report {
    let with_phone: Vec<&Entry> = entries
        .iter()
        .filter(|e| {
            phone_attributes
                .iter()
                .any(|a| e.values(a).next().is_some())
        })
        .collect();
    let mut report = Report {
        entries: with_phone.len(),
        per_attribute: phone_attributes.iter().map(|a| (a.clone(), 0, 0)).collect(),
        ..Report::default()
    };
    let mut holders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in with_phone {
        let country = phone.entry_country(|a| entry.values(a).next());
        let mut numbers = Vec::new();
        for (i, attr) in phone_attributes.iter().enumerate() {
            let mut values = 0;
            for value in entry.values(attr) {
                values += 1;
                let finding = || Finding {
                    dn: entry.dn().to_owned(),
                    attribute: attr.clone(),
                    value: value.to_owned(),
                };
                let read = phone.readings_in(value, country.region);
                report.note(&read, country.attribute.is_some(), finding);
                numbers.extend(read.into_iter().filter_map(|(k, _)| match k {
                    PhoneKey::E164(n) => Some(n),
                    _ => None,
                }));
            }
            if let Some((_, with, total)) = report.per_attribute.get_mut(i) {
                *with += usize::from(values > 0);
                *total += values;
            }
        }
        numbers.sort();
        numbers.dedup();
        for n in numbers {
            holders.entry(n).or_default().push(entry.dn().to_owned());
        }
    }
    report.shared = holders
        .into_iter()
        .filter(|(_, dns)| dns.len() > 1)
        .collect();
    report
}

impl Report {
    /// Files a value under what is wrong with it, if anything: no number, digits of no known
    /// plan, or national digits read in the default region for want of a country attribute.
    fn note(
        &mut self,
        read: &[(PhoneKey, Reading)],
        has_country: bool,
        finding: impl Fn() -> Finding,
    ) {
        if read.is_empty() {
            self.no_number.push(finding());
        } else if read.iter().all(|(k, _)| matches!(k, PhoneKey::Digits(_))) {
            self.unknown_to_plan.push(finding());
        } else if !has_country
            && read.iter().any(|(_, how)| {
                matches!(
                    how,
                    Reading::National(_) | Reading::NationalOverCountryCode { .. }
                )
            })
        {
            self.guessed_country.push(finding());
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "directory hygiene: {} entries with a phone attribute",
            self.entries
        )?;
        for (attr, with, values) in &self.per_attribute {
            writeln!(f, "  {attr:<22} {with} entries, {values} values")?;
        }
        list(
            f,
            "values with no number in them",
            &self.no_number,
            |f, x| writeln!(f, "    {}  {}: {:?}", x.dn, x.attribute, x.value),
        )?;
        list(
            f,
            "values that are a number in no country (matched only digit for digit)",
            &self.unknown_to_plan,
            |f, x| writeln!(f, "    {}  {}: {:?}", x.dn, x.attribute, x.value),
        )?;
        list(
            f,
            "national numbers read in the default region: their entry names no country",
            &self.guessed_country,
            |f, x| writeln!(f, "    {}  {}: {:?}", x.dn, x.attribute, x.value),
        )?;
        list(
            f,
            "numbers held by several entries",
            &self.shared,
            |f, (n, dns)| writeln!(f, "    {n}: {}", dns.join("; ")),
        )
    }
}

fn list<T>(
    f: &mut fmt::Formatter<'_>,
    title: &str,
    items: &[T],
    line: impl Fn(&mut fmt::Formatter<'_>, &T) -> fmt::Result,
) -> fmt::Result {
    if items.is_empty() {
        return writeln!(f, "  {title}: none");
    }
    writeln!(f, "  {title} ({}):", items.len())?;
    for item in items.iter().take(LISTED) {
        line(f, item)?;
    }
    if items.len() > LISTED {
        writeln!(f, "    (and {} more)", items.len() - LISTED)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_an_admin_should_fix() {
        let entries = vec![
            Entry::new("uid=a", [("telephoneNumber", vec!["03-5551234", "n/a"])]),
            Entry::new(
                "uid=b",
                [("mobile", vec!["(03) 555 1234", "12345678901234567890"])],
            ),
            Entry::new("uid=c", [("mobile", vec!["054-1234567"])]),
            Entry::new("ou=people", [("ou", vec!["people"])]),
        ];
        let attrs = vec!["telephonenumber".to_owned(), "mobile".to_owned()];
        let phone = PhoneNormalizer::new("IL", 6).expect("IL");
        let r = examine(&entries, &attrs, &phone);
        assert_eq!(r.entries, 3);
        assert_eq!(
            r.per_attribute,
            [
                ("telephonenumber".to_owned(), 1, 2),
                ("mobile".to_owned(), 2, 3)
            ]
        );
        assert_eq!(r.no_number.len(), 1);
        assert_eq!(r.no_number[0].value, "n/a");
        assert_eq!(r.unknown_to_plan.len(), 1);
        assert_eq!(r.unknown_to_plan[0].dn, "uid=b");
        assert_eq!(r.guessed_country.len(), 3, "no entry names its country");
        assert_eq!(
            r.shared,
            [(
                "+97235551234".to_owned(),
                vec!["uid=a".to_owned(), "uid=b".to_owned()]
            )]
        );
        let text = r.to_string();
        assert!(text.contains("uid=a  telephonenumber: \"n/a\""), "{text}");
        assert!(text.contains("+97235551234: uid=a; uid=b"), "{text}");
    }

    #[test]
    fn values_are_read_in_their_entry_country() {
        let entries = vec![
            Entry::new(
                "uid=london",
                [
                    ("telephoneNumber", vec!["020 7946 0031"]),
                    ("c", vec!["GB"]),
                ],
            ),
            Entry::new(
                "uid=nyc",
                [
                    ("telephoneNumber", vec!["(212) 555-0132"]),
                    ("countryCode", vec!["840"]),
                ],
            ),
            Entry::new("uid=tlv", [("telephoneNumber", vec!["03-5551234"])]),
            Entry::new("uid=odd", [("telephoneNumber", vec!["2125550132"])]),
        ];
        let attrs = vec!["telephonenumber".to_owned()];
        let phone = PhoneNormalizer::new("IL", 6).expect("IL");
        let r = examine(&entries, &attrs, &phone);
        let dns = |v: &[Finding]| v.iter().map(|f| f.dn.clone()).collect::<Vec<_>>();
        assert_eq!(dns(&r.guessed_country), ["uid=tlv"]);
        assert_eq!(dns(&r.unknown_to_plan), ["uid=odd"]);
        assert!(r.shared.is_empty());
    }
}

//! The repair LDIF: `ldapmodify` changes that rewrite phone values into E.164, for the admin
//! to review and apply. popup-ldap itself never writes to the directory.

use std::fmt::Write as _;

use base64::Engine as _;

use crate::directory::Entry;
use crate::phone::{PhoneKey, PhoneNormalizer, Region};

/// What a repair LDIF holds: its text and how many entries it changes.
pub struct Repair {
    /// The LDIF (RFC 2849 change records).
    pub ldif: String,
    /// Entries changed.
    pub entries: usize,
    /// Values rewritten.
    pub values: usize,
}

/// The changes that rewrite each phone value reading as exactly one number of a country (in
/// the entry's country, as lookups read it) into E.164, keeping what follows the number (an
/// extension: `03-555-1234 ext. 12` becomes `+97235551234 ext. 12`). Values already in that
/// form, with several numbers, or with none are left as they are.
pub fn repair_ldif(
    entries: &[Entry],
    phone_attributes: &[String],
    phone: &PhoneNormalizer,
) -> Repair {
    let mut repair = Repair {
        ldif: String::new(),
        entries: 0,
        values: 0,
    };
    for entry in entries {
        let region = phone.entry_country(|a| entry.values(a).next()).region;
        let mut record = String::new();
        for attribute in phone_attributes {
            let values: Vec<&str> = entry.values(attribute).collect();
            let fixed: Vec<Option<String>> =
                values.iter().map(|v| canonical(v, phone, region)).collect();
            if fixed.iter().all(Option::is_none) {
                continue;
            }
            repair.values += fixed.iter().flatten().count();
            // Writing into a String cannot fail.
            let _ = writeln!(record, "replace: {attribute}");
            for (value, fixed) in values.iter().zip(&fixed) {
                line(&mut record, attribute, fixed.as_deref().unwrap_or(value));
            }
            record.push_str("-\n");
        }
        if !record.is_empty() {
            repair.entries += 1;
            line(&mut repair.ldif, "dn", entry.dn());
            repair.ldif.push_str("changetype: modify\n");
            repair.ldif.push_str(&record);
            repair.ldif.push('\n');
        }
    }
    repair
}

/// `value` in E.164 (with what followed the number), when it reads as exactly one number of
/// a country and is not written so already; `None` otherwise.
fn canonical(value: &str, phone: &PhoneNormalizer, region: Region) -> Option<String> {
    let readings = phone.readings_in(value, region);
    let [(PhoneKey::E164(number), _)] = readings.as_slice() else {
        return None;
    };
    let start = value.find(|c: char| c.is_ascii_digit() || c == '+')?;
    let rest = &value[start..];
    let end = rest
        .find(|c: char| c.is_alphabetic() || c == '#')
        .unwrap_or(rest.len());
    let tail = rest[end..].trim();
    let fixed = if tail.is_empty() {
        number.clone()
    } else {
        format!("{number} {tail}")
    };
    // Only a rewrite that reads back as the same number, and changes something.
    let same = phone.readings_in(&fixed, region).len() == 1
        && phone.stored_in(&fixed, region) == [PhoneKey::E164(number.clone())];
    (same && fixed != value).then_some(fixed)
}

/// `name: value`, or `name:: base64` when the value is not an RFC 2849 safe string.
fn line(out: &mut String, name: &str, value: &str) {
    let safe = value.is_ascii()
        && !value.contains(['\0', '\n', '\r'])
        && !value.starts_with([' ', ':', '<'])
        && !value.ends_with(' ');
    // Writing into a String cannot fail.
    let _ = if safe {
        writeln!(out, "{name}: {value}")
    } else {
        writeln!(
            out,
            "{name}:: {}",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_values_become_e164_and_keep_their_extension() {
        let phone = PhoneNormalizer::new("IL", 6).expect("IL");
        let entries = [
            Entry::new(
                "uid=a,dc=x",
                [
                    ("telephonenumber", vec!["03-555-1234 ext. 12"]),
                    ("mobile", vec!["+972545551234"]),
                ],
            ),
            Entry::new("cn=דנה,dc=x", [("mobile", vec!["054 555 1235", "n/a"])]),
            Entry::new(
                "uid=b,dc=x",
                [("telephonenumber", vec!["09-1234567 / 09-1234568"])],
            ),
            Entry::new(
                "uid=c,dc=x",
                [
                    ("c", vec!["GB"]),
                    ("telephonenumber", vec!["020 7946 0031"]),
                ],
            ),
        ];
        let attrs = ["telephonenumber".to_owned(), "mobile".to_owned()];
        let r = repair_ldif(
            &entries,
            &attrs,
            &phone.with_country_attributes(vec!["c".to_owned()]),
        );
        assert_eq!((r.entries, r.values), (3, 3));
        let dana = base64::engine::general_purpose::STANDARD.encode("cn=דנה,dc=x");
        assert_eq!(
            r.ldif,
            format!(
                "dn: uid=a,dc=x\nchangetype: modify\nreplace: telephonenumber\n\
                 telephonenumber: +97235551234 ext. 12\n-\n\n\
                 dn:: {dana}\nchangetype: modify\nreplace: mobile\nmobile: +972545551235\n\
                 mobile: n/a\n-\n\n\
                 dn: uid=c,dc=x\nchangetype: modify\nreplace: telephonenumber\n\
                 telephonenumber: +442079460031\n-\n\n"
            )
        );
    }
}

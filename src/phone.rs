//! Phone numbers: the caller's number and every stored directory value become comparable keys.
//!
//! Full numbers become E.164 (`+972722776772`) through the `phonenumber` crate and a default
//! region; short internal numbers (extensions such as `ipPhone: 1234`) stay as their digits and
//! only ever equal another short number. Validity is never judged by `is_valid()`: its metadata
//! lags behind real number ranges, so a number that parses is a number.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use phonenumber::country::Id as Region;
use phonenumber::metadata::DATABASE;

/// Longest caller value accepted, in characters; anything longer is not a phone number.
pub const MAX_CALLER_CHARS: usize = 32;

/// Caller values that mean the number was withheld; compared case-insensitively.
const WITHHELD: &[&str] = &[
    "anonymous",
    "private",
    "unknown",
    "restricted",
    "withheld",
    "unavailable",
    "blocked",
    "hidden",
    "none",
    "null",
];

/// What a number is reduced to for comparison.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PhoneKey {
    /// A full number in E.164 form, `+` included.
    E164(String),
    /// A short internal number (an extension): its digits.
    Extension(String),
    /// A long number the numbering plan does not know: its digits, compared as they are.
    Digits(String),
}

impl fmt::Display for PhoneKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhoneKey::E164(n) => write!(f, "{n}"),
            PhoneKey::Extension(n) => write!(f, "extension {n}"),
            PhoneKey::Digits(n) => write!(f, "unparsed digits {n}"),
        }
    }
}

/// The forms of the caller's number that a filter template may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumberForms {
    /// `+97235551234`
    pub e164: String,
    /// The national dialling form, digits only: `035551234`
    pub national: String,
    /// International digits without `+`: `97235551234`
    pub digits: String,
    /// The national significant number: `35551234`
    pub significant: String,
}

impl NumberForms {
    fn same(digits: &str) -> Self {
        NumberForms {
            e164: digits.to_owned(),
            national: digits.to_owned(),
            digits: digits.to_owned(),
            significant: digits.to_owned(),
        }
    }

    /// The significant digits with `*` around each one (`*3*5*5*5*1*2*3*4*`): a substring
    /// filter that matches the number whatever separators a stored value uses.
    pub fn wildcard(&self) -> String {
        let mut out = String::with_capacity(self.significant.len() * 2 + 1);
        out.push('*');
        for d in self.significant.chars() {
            out.push(d);
            out.push('*');
        }
        out
    }

    /// The last `n` digits (all of them when there are fewer).
    pub fn last(&self, n: usize) -> &str {
        let d = &self.digits;
        &d[d.len().saturating_sub(n)..]
    }
}

/// A caller number ready to be looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerNumber {
    /// The key entries must hold to match.
    pub key: PhoneKey,
    /// The forms a filter template may use.
    pub forms: NumberForms,
}

/// What the `phone` field of a call says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Empty, or a word such as `Anonymous`: a real call from a withheld number.
    Withheld,
    /// A number to look up.
    Number(CallerNumber),
}

/// Why a caller value is not a phone number at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallerError {
    /// Longer than [`MAX_CALLER_CHARS`].
    #[error("phone is {0} characters long; at most {MAX_CALLER_CHARS} are accepted")]
    TooLong(usize),
    /// A character that has no place in a phone number.
    #[error("phone contains {0:?}, which cannot be part of a phone number")]
    BadCharacter(char),
    /// Separators only.
    #[error("phone contains no digits")]
    NoDigits,
}

/// An unknown region code in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a known ISO 3166 region code (such as IL, US, GB)")]
pub struct UnknownRegion(pub String);

/// Turns caller values and stored values into [`PhoneKey`]s under one set of rules.
#[derive(Clone, Debug)]
pub struct PhoneNormalizer {
    region: Region,
    max_extension_digits: usize,
    plan: Option<Arc<Plan>>,
}

/// What the default region's numbering plan says about its own numbers, read once from the
/// `phonenumber` metadata: enough to turn `0XXXXXXXX` and `+CCXXXXXXXX` into E.164 exactly as
/// `phonenumber::parse` does, without its parser (which costs 1-4 µs a number).
#[derive(Debug)]
struct Plan {
    /// The country code, as digits.
    code: String,
    /// The national (trunk) prefix, where the plan strips it as it is (no parsing rule).
    trunk: Option<String>,
    /// The shortest possible national significant number, and the local-only lengths.
    min_length: usize,
    local_lengths: Vec<usize>,
    /// The international call prefix (`0(?:0|1[2-9])` in Israel), anchored, compiled once.
    idd: Option<regex::Regex>,
}

/// The shortest and longest significant numbers `phonenumber::parse` accepts.
const MIN_SIGNIFICANT: usize = 2;
const MAX_SIGNIFICANT: usize = 17;

impl PhoneNormalizer {
    /// `region` is the ISO code national numbers belong to; numbers of at most
    /// `max_extension_digits` digits without `+` are internal extensions.
    pub fn new(region: &str, max_extension_digits: usize) -> Result<Self, UnknownRegion> {
        let region = Region::from_str(&region.to_ascii_uppercase())
            .map_err(|_| UnknownRegion(region.to_owned()))?;
        let plan = DATABASE.by_id(region.as_ref()).map(|meta| {
            let general = meta.descriptors().general();
            let trunk = match (
                meta.national_prefix(),
                meta.national_prefix_for_parsing(),
                meta.national_prefix_transform_rule(),
            ) {
                (Some(prefix), None, None) if !prefix.is_empty() => Some(prefix.to_owned()),
                _ => None,
            };
            Arc::new(Plan {
                code: meta.country_code().to_string(),
                trunk,
                // No lengths listed: the parser's length check never says "too short".
                min_length: general
                    .possible_length()
                    .first()
                    .map_or(0, |&l| usize::from(l)),
                local_lengths: general
                    .possible_local_length()
                    .iter()
                    .map(|&l| usize::from(l))
                    .collect(),
                idd: meta
                    .international_prefix()
                    .and_then(|re| regex::Regex::new(&format!("^(?:{})", re.as_str())).ok()),
            })
        });
        Ok(PhoneNormalizer {
            region,
            max_extension_digits,
            plan,
        })
    }

    /// Reads the caller's `phone` field as Voicenter sends it.
    pub fn caller(&self, raw: &str) -> Result<Caller, CallerError> {
        let value = raw.trim();
        if value.is_empty() || WITHHELD.iter().any(|w| value.eq_ignore_ascii_case(w)) {
            return Ok(Caller::Withheld);
        }
        let chars = value.chars().count();
        if chars > MAX_CALLER_CHARS {
            return Err(CallerError::TooLong(chars));
        }
        let mut digits = String::with_capacity(value.len());
        for (i, c) in value.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if i == 0 => {}
                ' ' | '-' | '.' => {}
                other => return Err(CallerError::BadCharacter(other)),
            }
        }
        if digits.is_empty() {
            return Err(CallerError::NoDigits);
        }
        let plus = value.starts_with('+');
        Ok(Caller::Number(self.number(plus, &digits)))
    }

    /// Every number a stored directory value holds, in any human format: separators, brackets,
    /// `(0)`, dots, Unicode dashes and spaces, a trailing extension, several numbers in one value.
    pub fn stored(&self, value: &str) -> Vec<PhoneKey> {
        let mut keys = Vec::new();
        for piece in split_numbers(value) {
            if let Some((plus, digits)) = number_digits(&piece) {
                let key = self.key(plus, &digits);
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
        keys
    }

    /// The key alone (what stored values need): parsing without any formatting.
    fn key(&self, plus: bool, digits: &str) -> PhoneKey {
        if !plus && digits.len() <= self.max_extension_digits {
            return PhoneKey::Extension(digits.to_owned());
        }
        if let Some((code, significant)) = self.own_number(plus, digits) {
            return PhoneKey::E164(format!("+{code}{significant}"));
        }
        match self.parse(plus, digits) {
            Some(n) => PhoneKey::E164(e164(&n)),
            None => PhoneKey::Digits(digits.to_owned()),
        }
    }

    /// The default region's own numbers in their two everyday forms, `+CC` + significant
    /// number and trunk prefix + significant number, split as `phonenumber::parse` splits them
    /// (its rules for a region without a prefix-parsing rule; `mirrors_the_parser` checks
    /// them against it). Anything else returns `None` and goes to the parser.
    fn own_number<'a>(&'a self, plus: bool, digits: &'a str) -> Option<(&'a str, &'a str)> {
        let plan = self.plan.as_deref()?;
        // Only plans whose trunk prefix is stripped as it is, without a parsing rule.
        let trunk = plan.trunk.as_deref()?;
        let significant = if plus {
            digits.strip_prefix(plan.code.as_str())?
        } else {
            let rest = digits.strip_prefix(trunk)?;
            // An international prefix (00, 012...) starts a call abroad, not a national number.
            let idd = plan.idd.as_ref().is_some_and(|re| re.is_match(digits));
            let too_short =
                rest.len() < plan.min_length && !plan.local_lengths.contains(&rest.len());
            if idd || too_short {
                return None;
            }
            rest
        };
        // The parser strips a trunk prefix again wherever one is left (after a country code
        // too: +1 1... in the US); leading zeros it keeps apart. Both are left to it.
        let fits = (MIN_SIGNIFICANT..=MAX_SIGNIFICANT).contains(&significant.len())
            && !significant.starts_with(trunk)
            && !significant.starts_with('0');
        fits.then_some((plan.code.as_str(), significant))
    }

    /// The key and the forms a filter template may use.
    fn number(&self, plus: bool, digits: &str) -> CallerNumber {
        if !plus && digits.len() <= self.max_extension_digits {
            return CallerNumber {
                key: PhoneKey::Extension(digits.to_owned()),
                forms: NumberForms::same(digits),
            };
        }
        let (code, significant, trunk) = match self.own_number(plus, digits) {
            Some((code, significant)) => (
                code.to_owned(),
                significant.to_owned(),
                self.plan
                    .as_deref()
                    .and_then(|p| p.trunk.clone())
                    .unwrap_or_default(),
            ),
            None => {
                let Some(n) = self.parse(plus, digits) else {
                    return CallerNumber {
                        key: PhoneKey::Digits(digits.to_owned()),
                        forms: NumberForms::same(digits),
                    };
                };
                // The national dialling form is the trunk prefix (0 in Israel) and the
                // significant number: computed rather than formatted (a regex per call).
                let trunk = n
                    .metadata(&DATABASE)
                    .and_then(|m| m.national_prefix())
                    .unwrap_or("")
                    .to_owned();
                (n.code().value().to_string(), significant(&n), trunk)
            }
        };
        let e164 = format!("+{code}{significant}");
        CallerNumber {
            forms: NumberForms {
                digits: e164[1..].to_owned(),
                national: format!("{trunk}{significant}"),
                significant,
                e164: e164.clone(),
            },
            key: PhoneKey::E164(e164),
        }
    }

    fn parse(&self, plus: bool, digits: &str) -> Option<phonenumber::PhoneNumber> {
        let text;
        let input = if plus {
            text = format!("+{digits}");
            text.as_str()
        } else {
            digits
        };
        phonenumber::parse(Some(self.region), input).ok()
    }
}

/// The national significant number, with the leading zeros some countries keep (Italy).
fn significant(n: &phonenumber::PhoneNumber) -> String {
    let zeros = usize::from(n.national().zeros());
    format!("{}{}", "0".repeat(zeros), n.national().value())
}

/// E.164 without the formatter: `+`, country code, significant number.
fn e164(n: &phonenumber::PhoneNumber) -> String {
    format!("+{}{}", n.code().value(), significant(n))
}

/// Splits a stored value that may hold several numbers (`09-7654321 / 09-7654322`).
fn split_numbers(value: &str) -> Vec<String> {
    // `(0)` is a national trunk prefix written after a country code: `+972 (0)3 ...`.
    let mut text = value.replace("(0)", " ");
    if text.chars().any(char::is_alphabetic) {
        text = text
            .to_lowercase()
            .replace(" or ", "/")
            .replace(" או ", "/");
    }
    text.split(['/', ',', ';', '|', '\n', '\r', '\\'])
        .map(str::to_owned)
        .collect()
}

/// The number in one piece of a stored value: whether it starts with `+`, and its digits.
/// Leading words (`Mobile:`, `tel:`) are skipped; the number ends at the first letter or `#`,
/// which is where an extension (`ext 12`, `x12`, `#12`) or a remark starts.
fn number_digits(piece: &str) -> Option<(bool, String)> {
    let start = piece.find(|c: char| c.is_ascii_digit() || c == '+')?;
    let rest = &piece[start..];
    let end = rest
        .find(|c: char| c.is_alphabetic() || c == '#')
        .unwrap_or(rest.len());
    let number = &rest[..end];
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    Some((number.starts_with('+'), digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn il() -> PhoneNormalizer {
        PhoneNormalizer::new("IL", 6).expect("IL is a region")
    }

    fn e164(n: &str) -> PhoneKey {
        PhoneKey::E164(n.to_owned())
    }

    fn caller_key(raw: &str) -> PhoneKey {
        match il().caller(raw).expect("a number") {
            Caller::Number(n) => n.key,
            Caller::Withheld => panic!("{raw} read as withheld"),
        }
    }

    #[test]
    fn every_caller_form_is_one_number() {
        for raw in [
            "0722776772",
            "972722776772",
            "+972722776772",
            "00972722776772",
            "072-277-6772",
            " 072 277 6772 ",
            "072.277.6772",
        ] {
            assert_eq!(caller_key(raw), e164("+972722776772"), "{raw}");
        }
    }

    #[test]
    fn caller_forms_for_filters() {
        let Caller::Number(n) = il().caller("035551234").expect("number") else {
            panic!("withheld")
        };
        assert_eq!(n.forms.e164, "+97235551234");
        assert_eq!(n.forms.national, "035551234");
        assert_eq!(n.forms.digits, "97235551234");
        assert_eq!(n.forms.significant, "35551234");
        assert_eq!(n.forms.wildcard(), "*3*5*5*5*1*2*3*4*");
        assert_eq!(n.forms.last(7), "5551234");
        assert_eq!(n.forms.last(40), "97235551234");
    }

    #[test]
    fn withheld_callers() {
        for raw in ["", "   ", "Anonymous", "PRIVATE", "unknown", "Restricted"] {
            assert_eq!(il().caller(raw), Ok(Caller::Withheld), "{raw:?}");
        }
    }

    #[test]
    fn garbage_callers_are_errors() {
        assert_eq!(il().caller("*)(uid=*"), Err(CallerError::BadCharacter('*')));
        assert_eq!(
            il().caller("03\\5551234"),
            Err(CallerError::BadCharacter('\\'))
        );
        assert_eq!(
            il().caller("(03) 5551234"),
            Err(CallerError::BadCharacter('('))
        );
        assert_eq!(il().caller("97+2"), Err(CallerError::BadCharacter('+')));
        assert_eq!(il().caller("+ - ."), Err(CallerError::NoDigits));
        assert_eq!(il().caller(&"1".repeat(33)), Err(CallerError::TooLong(33)));
    }

    #[test]
    fn stored_values_in_every_human_format() {
        let want = vec![e164("+97235551234")];
        for value in [
            "03-5551234",
            "03-555-1234",
            "+972 3-555-1234",
            "(03) 555 1234",
            "+972 (0)3 555 1234",
            "+972 (0)3 555-1234",
            "972 3 5551234",
            "0097235551234",
            "03.555.1234",
            "03\u{2013}555\u{2013}1234",
            "03\u{a0}555\u{a0}1234",
            "\u{202f}+972\u{2011}3\u{2011}5551234",
            "03-5551234 ext 12",
            "03-5551234 x12",
            "03-5551234 #12",
            "03-5551234 שלוחה 12",
            "tel:+97235551234",
            "Office: 03-5551234",
        ] {
            assert_eq!(il().stored(value), want, "{value:?}");
        }
    }

    #[test]
    fn two_numbers_in_one_value() {
        let want = vec![e164("+97297654321"), e164("+97297654322")];
        for value in [
            "09-7654321 / 09-7654322",
            "09-7654321, 09-7654322",
            "09-7654321; 09-7654322",
            "09-7654321 or 09-7654322",
        ] {
            assert_eq!(il().stored(value), want, "{value:?}");
        }
    }

    #[test]
    fn mobiles_the_metadata_calls_invalid_still_match() {
        assert_eq!(il().stored("054-1234567"), vec![e164("+972541234567")]);
        assert_eq!(il().stored("972541234567"), vec![e164("+972541234567")]);
        assert_eq!(caller_key("0541234567"), e164("+972541234567"));
    }

    #[test]
    fn extensions_match_only_short_callers() {
        assert_eq!(
            il().stored("1234"),
            vec![PhoneKey::Extension("1234".into())]
        );
        assert_eq!(caller_key("1234"), PhoneKey::Extension("1234".into()));
        assert_ne!(caller_key("0721234"), PhoneKey::Extension("1234".into()));
    }

    #[test]
    fn different_area_codes_are_different_callers() {
        assert_ne!(caller_key("035551234"), caller_key("045551234"));
        assert_ne!(il().stored("02-5551234"), il().stored("03-5551234"));
    }

    #[test]
    fn foreign_numbers_keep_their_country() {
        assert_eq!(il().stored("+1 (212) 555-0100"), vec![e164("+12125550100")]);
        assert_eq!(caller_key("0012125550100"), e164("+12125550100"));
    }

    #[test]
    fn values_without_a_number_give_nothing() {
        assert!(il().stored("").is_empty());
        assert!(il().stored("n/a").is_empty());
        assert!(il().stored("ask reception").is_empty());
    }

    /// The parser's answer: what `own_number` must agree with.
    fn parsed(p: &PhoneNormalizer, plus: bool, digits: &str) -> PhoneKey {
        match p.parse(plus, digits) {
            Some(n) => PhoneKey::E164(super::e164(&n)),
            None => PhoneKey::Digits(digits.to_owned()),
        }
    }

    #[test]
    fn mirrors_the_parser() {
        // A deterministic spread of numbers in the forms the short cut takes, and in the forms
        // next to them that it must leave to the parser (00, 01x, short, long, +0...).
        let mut seed: u64 = 0x5eed;
        let mut digit = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'0' + ((seed >> 33) % 10) as u8)
        };
        let mut taken = 0;
        for region in ["IL", "GB", "DE", "US", "FR"] {
            let p = PhoneNormalizer::new(region, 6).expect("region");
            let code = p
                .plan
                .as_ref()
                .map(|pl| pl.code.clone())
                .unwrap_or_default();
            for i in 0..40_000 {
                let len = 1 + i % 16;
                let body: String = (0..len).map(|_| digit()).collect();
                let starts = ["0", "00", "01", "012", "0", "", "9"];
                let (plus, digits) = match i % 3 {
                    0 => (true, format!("{code}{body}")),
                    1 => (false, format!("{}{body}", starts[i % starts.len()])),
                    _ => (true, format!("{}{body}", starts[i % starts.len()])),
                };
                if digits.len() <= 6 && !plus {
                    continue;
                }
                if let Some((c, s)) = p.own_number(plus, &digits) {
                    taken += 1;
                    assert_eq!(
                        PhoneKey::E164(format!("+{c}{s}")),
                        parsed(&p, plus, &digits),
                        "{region}: {}{digits}",
                        if plus { "+" } else { "" }
                    );
                }
            }
        }
        assert!(taken > 50_000, "the short cut was taken only {taken} times");
    }

    #[test]
    fn unknown_region_is_an_error() {
        assert!(PhoneNormalizer::new("XX", 6).is_err());
        assert!(PhoneNormalizer::new("gb", 6).is_ok());
    }
}

//! Phone numbers: the caller's number and every stored directory value become comparable keys.
//!
//! Full numbers become E.164 (`+972722776772`) through the `phonenumber` crate; short internal
//! numbers (extensions such as `ipPhone: 1234`) stay as their digits and only ever equal
//! another short number. A number is read in a region: the default region for callers, the
//! entry's own country (`c`, `countryCode`) for stored values; `+` and `00` name their own.
//!
//! Which reading is right is decided with the numbering plans: a number *fits* a country when
//! its significant digits match that country's general pattern entirely (the crate's
//! `is_valid()` is not used: its patterns are matched unanchored, so it calls 12-digit strings
//! valid Israeli numbers, and its per-type ranges lag behind live mobile ranges). Digits
//! without `+` are national when they fit the region, and that country's number when they do
//! not but fit the country their leading digits name; when both fit, the national reading is
//! kept unless only the other one is in a known range. What fits nowhere is compared digit for
//! digit, so it never stands for a number of the wrong country.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

pub use phonenumber::country::Id as Region;
use phonenumber::country::Source;
use phonenumber::metadata::DATABASE;

mod plan;
mod text;

use plan::{country, parse, significant, PatternCache, Patterns, Plan};
use text::{number_digits, split_numbers};

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

/// The forms of the caller's number that a filter template may use, kept in two strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumberForms {
    /// `+97235551234` (for a number of no country: its digits).
    e164: String,
    /// The national dialling form, digits only: `035551234`.
    national: String,
    /// Where the significant number starts in `e164`.
    significant_at: usize,
}

impl NumberForms {
    fn same(digits: &str) -> Self {
        NumberForms {
            e164: digits.to_owned(),
            national: digits.to_owned(),
            significant_at: 0,
        }
    }

    /// The forms of +972 3 555 1234, to try a filter template with.
    pub fn sample() -> Self {
        NumberForms {
            e164: "+97235551234".to_owned(),
            national: "035551234".to_owned(),
            significant_at: 4,
        }
    }

    /// `+97235551234`
    pub fn e164(&self) -> &str {
        &self.e164
    }

    /// The national dialling form, digits only: `035551234`
    pub fn national(&self) -> &str {
        &self.national
    }

    /// International digits without `+`: `97235551234`
    pub fn digits(&self) -> &str {
        self.e164.strip_prefix('+').unwrap_or(&self.e164)
    }

    /// The national significant number: `35551234`
    pub fn significant(&self) -> &str {
        &self.e164[self.significant_at..]
    }

    /// The significant digits with `*` around each one (`*3*5*5*5*1*2*3*4*`): a substring
    /// filter that matches the number whatever separators a stored value uses. Only ASCII
    /// digits are kept, so it needs no LDAP escaping.
    pub fn wildcard(&self) -> String {
        let significant = self.significant();
        let mut out = String::with_capacity(significant.len() * 2 + 1);
        out.push('*');
        for d in significant.chars().filter(char::is_ascii_digit) {
            out.push(d);
            out.push('*');
        }
        out
    }

    /// The last `n` digits (all of them when there are fewer).
    pub fn last(&self, n: usize) -> &str {
        let d = self.digits();
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
    /// How the number was read.
    pub reading: Reading,
}

/// How a number was read, and why: what `lookup` and `check-config` explain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// A short internal number.
    Extension,
    /// Written with `+` or an international prefix: the country it names.
    International(Region),
    /// A national number of the region it was read in.
    National(Region),
    /// Digits starting with a country code, without `+`: they fit that country and not the
    /// region they were read in.
    CountryCode(Region),
    /// Digits that fit both the region (kept) and, with a country code, `also`.
    NationalOverCountryCode {
        /// The region read in, whose reading is kept.
        region: Region,
        /// The country the digits would also name.
        also: Region,
    },
    /// Fits no country: compared digit for digit only.
    Unknown,
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reading::Extension => write!(f, "an internal extension"),
            Reading::International(r) => write!(f, "international, {}", r.as_ref()),
            Reading::National(r) => write!(f, "national in {}", r.as_ref()),
            Reading::CountryCode(r) => write!(
                f,
                "{} with its country code and no +: not a national number of the region",
                r.as_ref()
            ),
            Reading::NationalOverCountryCode { region, also } => write!(
                f,
                "national in {}; it could also be {} with its country code, the default \
                 region's reading is preferred",
                region.as_ref(),
                also.as_ref()
            ),
            Reading::Unknown => write!(f, "a number of no country: compared digit for digit"),
        }
    }
}

/// The country an entry's national-format values are read in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryCountry<'a> {
    /// The region.
    pub region: Region,
    /// The attribute that said so; `None` when it is the default region.
    pub attribute: Option<&'a str>,
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
    country_attributes: Vec<String>,
    patterns: Arc<PatternCache>,
}

/// One reading of a number: how, and the number when it is one.
struct Read {
    reading: Reading,
    number: Option<Full>,
}

/// A full number in one string: `+`, the country code, the significant number.
struct Full {
    e164: String,
    /// Where the significant number starts.
    significant_at: usize,
}

impl Read {
    /// A reading that is no full number (an extension, or a number of no country).
    fn bare(reading: Reading) -> Self {
        Read {
            reading,
            number: None,
        }
    }

    fn number(reading: Reading, code: &str, significant: &str) -> Self {
        let mut e164 = String::with_capacity(1 + code.len() + significant.len());
        e164.push('+');
        e164.push_str(code);
        e164.push_str(significant);
        Read {
            reading,
            number: Some(Full {
                e164,
                significant_at: 1 + code.len(),
            }),
        }
    }

    fn parsed(reading: Reading, n: &phonenumber::PhoneNumber) -> Self {
        let mut code = itoa::Buffer::new();
        Read::number(reading, code.format(n.code().value()), &significant(n))
    }

    fn key(&self, digits: &str) -> PhoneKey {
        match (&self.reading, &self.number) {
            (Reading::Extension, _) => PhoneKey::Extension(digits.to_owned()),
            (_, Some(full)) => PhoneKey::E164(full.e164.clone()),
            (_, None) => PhoneKey::Digits(digits.to_owned()),
        }
    }
}

/// Where entries say their country, by default: ISO 3166 alpha-2 (`c`), then numeric
/// (`countryCode`, Active Directory).
pub const DEFAULT_COUNTRY_ATTRIBUTES: &[&str] = &["c", "countryCode"];

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
                patterns: Arc::new(Patterns::of(meta)),
            })
        });
        Ok(PhoneNormalizer {
            region,
            max_extension_digits,
            plan,
            country_attributes: DEFAULT_COUNTRY_ATTRIBUTES
                .iter()
                .map(|a| a.to_ascii_lowercase())
                .collect(),
            patterns: Arc::default(),
        })
    }

    /// Reads entries' countries from these attributes, the first that names one winning;
    /// none: every entry is in the default region.
    pub fn with_country_attributes(mut self, attributes: Vec<String>) -> Self {
        self.country_attributes = attributes.iter().map(|a| a.to_ascii_lowercase()).collect();
        self
    }

    /// The attributes an entry's country is read from (lower case).
    pub fn country_attributes(&self) -> &[String] {
        &self.country_attributes
    }

    /// The default region.
    pub fn region(&self) -> Region {
        self.region
    }

    /// The country an entry's values are read in: the first country attribute whose first
    /// value names one (`GB`, or numeric ISO 3166 `826`), else the default region.
    pub fn entry_country<'a>(
        &'a self,
        first_value: impl Fn(&'a str) -> Option<&'a str>,
    ) -> EntryCountry<'a> {
        self.country_attributes
            .iter()
            .find_map(|attr| {
                let region = first_value(attr).and_then(country)?;
                Some(EntryCountry {
                    region,
                    attribute: Some(attr.as_str()),
                })
            })
            .unwrap_or(EntryCountry {
                region: self.region,
                attribute: None,
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

    /// Every number a stored directory value holds, read in the default region.
    pub fn stored(&self, value: &str) -> Vec<PhoneKey> {
        self.stored_in(value, self.region)
    }

    /// Every number a stored directory value holds, in any human format (separators,
    /// brackets, `(0)`, dots, Unicode dashes and spaces, a trailing extension, several numbers
    /// in one value), national ones read in `region`.
    pub fn stored_in(&self, value: &str, region: Region) -> Vec<PhoneKey> {
        let mut keys = Vec::new();
        for (key, _) in self.readings_in(value, region) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys
    }

    /// [`PhoneNormalizer::stored_in`] with how each number was read.
    pub fn readings_in(&self, value: &str, region: Region) -> Vec<(PhoneKey, Reading)> {
        split_numbers(value)
            .iter()
            .filter_map(|piece| number_digits(piece))
            .map(|(plus, digits)| {
                let read = self.read(plus, &digits, region);
                (read.key(&digits), read.reading)
            })
            .collect()
    }

    /// Reads digits in `region` (see the module documentation for the rules).
    fn read(&self, plus: bool, digits: &str, region: Region) -> Read {
        if !plus && digits.len() <= self.max_extension_digits {
            return Read::bare(Reading::Extension);
        }
        if region == self.region {
            if let Some(read) = self.own_read(plus, digits) {
                return read;
            }
        }
        // `00` starts an international number wherever the entry is; the region's other
        // international prefixes (011, 012, ...) the parser knows.
        let (plus, digits) = match digits.strip_prefix("00") {
            Some(rest) if !plus => (true, rest),
            _ => (plus, digits),
        };
        if plus {
            return match parse(None, &format!("+{digits}")) {
                Some(n) => Read::parsed(
                    Reading::International(n.country().id().unwrap_or(region)),
                    &n,
                ),
                None => Read::bare(Reading::Unknown),
            };
        }
        let national = parse(Some(region), digits);
        if let Some(n) = national
            .as_ref()
            .filter(|n| n.code().source() == Source::Idd)
        {
            return Read::parsed(
                Reading::International(n.country().id().unwrap_or(region)),
                n,
            );
        }
        let national = national.filter(|n| self.fits(n));
        let abroad = self.with_country_code(digits, region);
        match (national, abroad) {
            (Some(n), None) => Read::parsed(Reading::National(region), &n),
            (None, Some((n, also))) => Read::parsed(Reading::CountryCode(also), &n),
            (Some(n), Some((i, also))) if self.in_range(&i) && !self.in_range(&n) => {
                Read::parsed(Reading::CountryCode(also), &i)
            }
            (Some(n), Some((_, also))) => {
                Read::parsed(Reading::NationalOverCountryCode { region, also }, &n)
            }
            (None, None) => Read::bare(Reading::Unknown),
        }
    }

    /// The default region's two everyday forms through the short cut, when they fit its plan.
    fn own_read(&self, plus: bool, digits: &str) -> Option<Read> {
        let (code, significant) = self.own_number(plus, digits)?;
        let plan = self.plan.as_deref()?;
        if !plan.patterns.fits(significant) {
            return None;
        }
        let reading = if plus {
            Reading::International(self.region)
        } else {
            Reading::National(self.region)
        };
        Some(Read::number(reading, code, significant))
    }

    /// The digits read with a country code in front, when that is another country than
    /// `region` and they fit its plan.
    fn with_country_code(
        &self,
        digits: &str,
        region: Region,
    ) -> Option<(phonenumber::PhoneNumber, Region)> {
        let own = DATABASE
            .by_id(region.as_ref())
            .map(|m| m.country_code().to_string());
        // Country codes are prefix-free: the region's own code means the region's number.
        if digits.starts_with('0') || own.is_some_and(|c| digits.starts_with(c.as_str())) {
            return None;
        }
        let n = parse(None, &format!("+{digits}"))?;
        let country = n.country().id()?;
        self.fits(&n).then_some((n, country))
    }

    /// Whether a parsed number fits its own country's plan.
    fn fits(&self, n: &phonenumber::PhoneNumber) -> bool {
        n.metadata(&DATABASE)
            .is_some_and(|meta| self.patterns.get(meta).fits(&significant(n)))
    }

    /// Whether a parsed number is in one of its country's known ranges.
    fn in_range(&self, n: &phonenumber::PhoneNumber) -> bool {
        n.metadata(&DATABASE)
            .is_some_and(|meta| self.patterns.get(meta).in_range(&significant(n)))
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

    /// The key, the forms a filter template may use, and how the number was read.
    fn number(&self, plus: bool, digits: &str) -> CallerNumber {
        let read = self.read(plus, digits, self.region);
        let key = read.key(digits);
        let Some(Full {
            e164,
            significant_at,
        }) = read.number
        else {
            return CallerNumber {
                key,
                forms: NumberForms::same(digits),
                reading: read.reading,
            };
        };
        // The national dialling form is the trunk prefix (0 in Israel) and the significant
        // number: computed rather than formatted (a regex per call).
        let trunk: Cow<'_, str> = match (&self.plan, read.reading) {
            (Some(plan), Reading::National(_)) => plan.trunk.as_deref().unwrap_or("").into(),
            _ => DATABASE
                .by_code(&e164[1..significant_at].parse().unwrap_or(0))
                .and_then(|all| {
                    all.first()
                        .and_then(|m| m.national_prefix().map(str::to_owned))
                })
                .unwrap_or_default()
                .into(),
        };
        let significant = &e164[significant_at..];
        let mut national = String::with_capacity(trunk.len() + significant.len());
        national.push_str(&trunk);
        national.push_str(significant);
        CallerNumber {
            forms: NumberForms {
                e164,
                national,
                significant_at,
            },
            key,
            reading: read.reading,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
        assert_eq!(n.forms.e164(), "+97235551234");
        assert_eq!(n.forms.national(), "035551234");
        assert_eq!(n.forms.digits(), "97235551234");
        assert_eq!(n.forms.significant(), "35551234");
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
        let text = if plus {
            format!("+{digits}")
        } else {
            digits.to_owned()
        };
        match parse(Some(p.region), &text) {
            Some(n) => PhoneKey::E164(format!("+{}{}", n.code().value(), significant(&n))),
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

    fn read(p: &PhoneNormalizer, raw: &str) -> (PhoneKey, Reading) {
        match p.caller(raw).expect("a number") {
            Caller::Number(n) => (n.key, n.reading),
            Caller::Withheld => panic!("{raw} read as withheld"),
        }
    }

    fn region(code: &str) -> Region {
        Region::from_str(code).expect("region")
    }

    #[test]
    fn callers_with_a_country_code_and_no_plus_are_that_country() {
        let il = il();
        for (raw, want, country) in [
            ("442079460958", "+442079460958", "GB"),
            ("12125550132", "+12125550132", "US"),
            ("4930123456", "+4930123456", "DE"),
            ("33612345678", "+33612345678", "FR"),
        ] {
            assert_eq!(
                read(&il, raw),
                (e164(want), Reading::CountryCode(region(country))),
                "{raw}"
            );
        }
        for raw in ["972722776772", "0722776772", "+972722776772"] {
            assert_eq!(read(&il, raw).0, e164("+972722776772"), "{raw}");
        }
        assert_eq!(
            read(&il, "00442079460958"),
            (e164("+442079460958"), Reading::International(region("GB")))
        );
    }

    #[test]
    fn national_digits_of_no_country_match_nobody() {
        let (key, how) = read(&il(), "2125550132");
        assert_eq!(key, PhoneKey::Digits("2125550132".into()));
        assert_eq!(how, Reading::Unknown);
        assert_eq!(
            il().stored_in("(212) 555-0132", region("US")),
            [e164("+12125550132")]
        );
    }

    #[test]
    fn national_values_are_read_in_their_entry_country() {
        let p = il();
        for (value, country, want) in [
            ("020 7946 0031", "GB", "+442079460031"),
            ("(212) 555-0132", "US", "+12125550132"),
            ("030 1234567", "DE", "+49301234567"),
            ("06 12 34 56 78", "FR", "+33612345678"),
            ("+972 3-555-1234", "GB", "+97235551234"),
            ("0097235551234", "US", "+97235551234"),
            ("972-3-5551234", "GB", "+97235551234"),
            // In Germany the same digits are a national number (area code 09723): kept.
            ("972-3-5551234", "DE", "+4997235551234"),
        ] {
            assert_eq!(
                p.stored_in(value, region(country)),
                [e164(want)],
                "{value} in {country}"
            );
        }
        // The same London digits in an entry without a country are no Israeli number.
        assert_eq!(
            p.stored("020 7946 0031"),
            [PhoneKey::Digits("02079460031".into())]
        );
    }

    #[test]
    fn entries_name_their_country_by_code_or_number() {
        let p = il();
        let country = |c: Option<&'static str>, code: Option<&'static str>| {
            p.entry_country(|a| match a {
                "c" => c,
                "countrycode" => code,
                _ => None,
            })
        };
        assert_eq!(country(Some("GB"), None).region, region("GB"));
        assert_eq!(country(Some("gb"), Some("840")).region, region("GB"));
        assert_eq!(country(None, Some("840")).region, region("US"));
        assert_eq!(country(None, Some("840")).attribute, Some("countrycode"));
        for (c, code) in [(None, Some("0")), (Some("XX"), None), (None, None)] {
            let got = country(c, code);
            assert_eq!(
                (got.region, got.attribute),
                (region("IL"), None),
                "{c:?} {code:?}"
            );
        }
    }

    /// Numbers of `region` in its known ranges: random significant digits kept when they fit.
    fn real_numbers(p: &PhoneNormalizer, region: Region, n: usize) -> Vec<String> {
        let meta = DATABASE.by_id(region.as_ref()).expect("metadata");
        let patterns = p.patterns.get(meta);
        let mut seed: u64 = 0x1234_5678 ^ u64::from(meta.country_code());
        let mut out = Vec::new();
        while out.len() < n {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = 7 + (seed >> 60) as usize % 4;
            let body: String = (0..len)
                .map(|i| char::from(b'0' + ((seed >> (i * 5 % 55)) % 10) as u8))
                .collect();
            if patterns.in_range(&body) && !out.contains(&body) {
                out.push(body);
            }
        }
        out
    }

    #[test]
    fn any_form_of_a_number_matches_and_different_numbers_never_do() {
        let countries = ["IL", "GB", "US", "DE", "FR"];
        for default in countries {
            let p = PhoneNormalizer::new(default, 6).expect("region");
            let mut seen: HashMap<PhoneKey, String> = HashMap::new();
            for home in countries.map(region) {
                let meta = DATABASE.by_id(home.as_ref()).expect("metadata");
                let code = meta.country_code();
                let trunk = meta.national_prefix().unwrap_or("");
                for significant in real_numbers(&p, home, 150) {
                    let want = e164(&format!("+{code}{significant}"));
                    let (head, tail) = significant.split_at(3);
                    let mut stored = vec![
                        format!("{trunk}{significant}"),
                        format!("{trunk}{head}-{tail}"),
                        format!("({trunk}{head}) {tail}"),
                        format!("{trunk}{head}.{tail}"),
                        format!("+{code} {head} {tail}"),
                        format!("00{code}{significant}"),
                    ];
                    if trunk == "0" {
                        stored.push(format!("+{code} (0){significant}"));
                    }
                    for stored in stored {
                        assert_eq!(
                            p.stored_in(&stored, home),
                            std::slice::from_ref(&want),
                            "{stored:?} in {home:?}, default {default}"
                        );
                    }
                    let mut callers = vec![
                        format!("+{code}{significant}"),
                        format!("00{code}{significant}"),
                    ];
                    if home == p.region {
                        callers.push(format!("{trunk}{significant}"));
                    }
                    callers.push(format!("{code}{significant}"));
                    for caller in callers {
                        let (key, how) = read(&p, &caller);
                        if let Reading::NationalOverCountryCode { region, .. } = how {
                            // The documented preference: the default region's own number.
                            assert_eq!(region, p.region, "{caller}");
                            continue;
                        }
                        assert_eq!(key, want, "caller {caller} ({how}), default {default}");
                    }
                    let owner = format!("{home:?} {significant}");
                    if let Some(other) = seen.insert(want.clone(), owner.clone()) {
                        panic!("{owner} and {other} share the key {want}");
                    }
                }
            }
        }
    }

    #[test]
    fn unknown_region_is_an_error() {
        assert!(PhoneNormalizer::new("XX", 6).is_err());
        assert!(PhoneNormalizer::new("gb", 6).is_ok());
    }
}

//! Numbering plans from the `phonenumber` metadata: which digits fit a country, the default
//! region's own plan read once, and the crate's parser where it is still used.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use phonenumber::country::Id as Region;
use phonenumber::metadata::{Metadata, DATABASE};

/// Each country's patterns, compiled the first time a number of that country is read.
#[derive(Debug, Default)]
pub(super) struct PatternCache(RwLock<HashMap<String, Arc<Patterns>>>);

/// A country's numbering plan as anchored patterns over the significant number.
#[derive(Debug)]
pub(super) struct Patterns {
    /// The country (metadata id), for compiling the ranges when first needed.
    pub(super) id: String,
    /// Everything the plan allows (lenient: new ranges of known shapes fit).
    pub(super) general: Option<regex::Regex>,
    /// The plan's known ranges (fixed, mobile, toll-free, ...), compiled only for the rare
    /// digits that fit two countries.
    pub(super) ranges: std::sync::OnceLock<Vec<regex::Regex>>,
}

/// `pattern` matching a whole significant number (metadata patterns use `x` mode).
pub(super) fn anchored(pattern: &str) -> Option<regex::Regex> {
    regex::Regex::new(&format!("^(?x:{pattern})$")).ok()
}

impl Patterns {
    pub(super) fn of(meta: &Metadata) -> Self {
        Patterns {
            id: meta.id().to_owned(),
            general: anchored(meta.descriptors().general().national_number().as_str()),
            ranges: std::sync::OnceLock::new(),
        }
    }

    pub(super) fn fits(&self, significant: &str) -> bool {
        self.general
            .as_ref()
            .is_some_and(|g| g.is_match(significant))
    }

    pub(super) fn in_range(&self, significant: &str) -> bool {
        let ranges = self.ranges.get_or_init(|| {
            let Some(meta) = DATABASE.by_id(&self.id) else {
                return Vec::new();
            };
            let d = meta.descriptors();
            [
                d.fixed_line(),
                d.mobile(),
                d.toll_free(),
                d.premium_rate(),
                d.shared_cost(),
                d.personal_number(),
                d.voip(),
                d.pager(),
                d.uan(),
                d.voicemail(),
            ]
            .into_iter()
            .flatten()
            .filter_map(|k| anchored(k.national_number().as_str()))
            .collect()
        });
        ranges.iter().any(|r| r.is_match(significant))
    }
}

impl PatternCache {
    pub(super) fn get(&self, meta: &Metadata) -> Arc<Patterns> {
        if let Some(p) = self.read().get(meta.id()) {
            return p.clone();
        }
        let patterns = Arc::new(Patterns::of(meta));
        let mut all = crate::locks::write(&self.0);
        all.entry(meta.id().to_owned()).or_insert(patterns).clone()
    }

    pub(super) fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Patterns>>> {
        crate::locks::read(&self.0)
    }
}

/// What the default region's numbering plan says about its own numbers, read once from the
/// `phonenumber` metadata: enough to turn `0XXXXXXXX` and `+CCXXXXXXXX` into E.164 exactly as
/// `phonenumber::parse` does, without its parser (which costs 1-4 µs a number).
#[derive(Debug)]
pub(super) struct Plan {
    /// The country code, as digits.
    pub(super) code: String,
    /// The national (trunk) prefix, where the plan strips it as it is (no parsing rule).
    pub(super) trunk: Option<String>,
    /// The shortest possible national significant number, and the local-only lengths.
    pub(super) min_length: usize,
    pub(super) local_lengths: Vec<usize>,
    /// The international call prefix (`0(?:0|1[2-9])` in Israel), anchored, compiled once.
    pub(super) idd: Option<regex::Regex>,
    /// The plan's patterns.
    pub(super) patterns: Arc<Patterns>,
}

/// Parses `text` as the crate does (`region` for national numbers).
pub(super) fn parse(region: Option<Region>, text: &str) -> Option<phonenumber::PhoneNumber> {
    phonenumber::parse(region, text).ok()
}

/// The region a country attribute's value names: ISO 3166 alpha-2 (`GB`, `gb`) or numeric
/// (`826`, as AD's `countryCode`; `0` is AD's "unset").
pub(super) fn country(value: &str) -> Option<Region> {
    let value = value.trim();
    let alpha2 = if value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() {
        isocountry::CountryCode::for_id(value.parse().ok()?)
            .ok()?
            .alpha2()
            .to_owned()
    } else {
        value.to_ascii_uppercase()
    };
    let region = Region::from_str(&alpha2).ok()?;
    DATABASE.by_id(region.as_ref()).map(|_| region)
}

/// The national significant number, with the leading zeros some countries keep (Italy).
pub(super) fn significant(n: &phonenumber::PhoneNumber) -> String {
    let zeros = usize::from(n.national().zeros());
    format!("{}{}", "0".repeat(zeros), n.national().value())
}

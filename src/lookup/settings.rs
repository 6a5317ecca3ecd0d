//! `[lookup]` and `[response]` as the lookup takes them (built and validated by
//! `settings`).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::directory::DirectorySettings;
use crate::mapping::{CallFieldsRead, Template};
use crate::phone::PhoneNormalizer;

/// One scope as the lookup takes it: where its entries come from, how its stored numbers are
/// read (its `default_region`) and how its entries are answered.
#[derive(Debug, Clone)]
pub struct ScopeSettings {
    /// Where its entries come from, and its phone attributes.
    pub directory: DirectorySettings,
    /// Reads its stored numbers.
    pub phone: PhoneNormalizer,
    /// Its templates: `[directory.scope.response]` over `[response]`.
    pub response: ResponseSettings,
}

/// `[lookup]`: when to look callers up.
#[derive(Debug, Clone)]
pub struct LookupSettings {
    /// `states`, canonical; `None` looks up every call state.
    pub states: Option<BTreeSet<String>>,
    /// `deadline_ms`: the whole lookup, after which the answer is 503.
    pub deadline: Duration,
    /// `answer_cache`: answers kept for the requests that repeat a caller, while the
    /// directory does not change.
    pub answer_cache: bool,
}

/// `[response]`: how entries become Voicenter's answer.
#[derive(Debug, Clone)]
pub struct ResponseSettings {
    /// CLIENTNAME template.
    pub client_name: Option<Template>,
    /// COMPANY template.
    pub company: Option<Template>,
    /// URL template.
    pub url: Option<Template>,
    /// CLIENTNAME when no entry matches.
    pub unknown_client_name: Option<Template>,
    /// COMPANY when no entry matches.
    pub unknown_company: Option<Template>,
    /// URL when no entry matches.
    pub unknown_url: Option<Template>,
    /// CLIENTNAME when several entries match (TOTAL > 1); `None` uses `client_name`.
    pub multiple_client_name: Option<Template>,
    /// COMPANY when several entries match; `None` uses `company`.
    pub multiple_company: Option<Template>,
    /// URL when several entries match; `None` uses `url`.
    pub multiple_url: Option<Template>,
    /// How long each field may be.
    pub caps: AnswerCaps,
}

impl ResponseSettings {
    /// Every entry attribute the templates read.
    pub fn attributes(&self) -> BTreeSet<String> {
        [
            &self.client_name,
            &self.company,
            &self.url,
            &self.multiple_client_name,
            &self.multiple_company,
            &self.multiple_url,
        ]
        .into_iter()
        .flatten()
        .flat_map(|t| t.attributes().map(str::to_owned))
        .collect()
    }

    /// The request fields any of the nine templates reads, besides the caller's number.
    pub fn call_fields(&self) -> CallFieldsRead {
        [
            &self.client_name,
            &self.company,
            &self.url,
            &self.unknown_client_name,
            &self.unknown_company,
            &self.unknown_url,
            &self.multiple_client_name,
            &self.multiple_company,
            &self.multiple_url,
        ]
        .into_iter()
        .flatten()
        .fold(CallFieldsRead::default(), |read, t| {
            read.or(t.call_fields())
        })
    }

    /// The CLIENTNAME, COMPANY and URL templates for an answer with `total` matches: the
    /// `multiple_*` ones where set when there are several, the `unknown_*` ones for none.
    pub fn templates(&self, total: usize) -> [Option<&Template>; 3] {
        let one = [&self.client_name, &self.company, &self.url];
        let several = [
            &self.multiple_client_name,
            &self.multiple_company,
            &self.multiple_url,
        ];
        match total {
            0 => [
                self.unknown_client_name.as_ref(),
                self.unknown_company.as_ref(),
                self.unknown_url.as_ref(),
            ],
            1 => one.map(Option::as_ref),
            _ => [0, 1, 2].map(|i| several[i].as_ref().or(one[i].as_ref())),
        }
    }
}

/// `[response] max_*_chars`: the longest CLIENTNAME, COMPANY and URL sent, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerCaps {
    /// `max_client_name_chars`, default 256.
    pub client_name: usize,
    /// `max_company_chars`, default 256.
    pub company: usize,
    /// `max_url_chars`, default 2048.
    pub url: usize,
}

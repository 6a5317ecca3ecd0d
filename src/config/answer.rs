//! `[lookup]` and `[response]`: when to look up, and what to answer.

use std::collections::BTreeSet;
use std::time::Duration;

use super::raw::{RawLookup, RawResponse};
use super::{invalid, millis, within, ConfigError};
use crate::call::canonical_state;
use crate::mapping::Template;

const DEFAULT_DEADLINE_MS: u64 = 2000;
const DEFAULT_CLIENT_NAME: &str = "{displayName|cn}";
const DEFAULT_COMPANY: &str = "{company|o}";
const DEFAULT_CAPS: AnswerCaps = AnswerCaps {
    client_name: 256,
    company: 256,
    url: 2048,
};

/// `[lookup]`: when to look callers up.
#[derive(Debug, Clone)]
pub struct LookupConfig {
    /// `states`, canonical; `None` looks up every call state.
    pub states: Option<BTreeSet<String>>,
    /// `deadline_ms`: the whole lookup, after which the answer is 503.
    pub deadline: Duration,
}

/// `[response]`: how entries become Voicenter's answer.
#[derive(Debug, Clone)]
pub struct ResponseConfig {
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
    /// How long each field may be.
    pub caps: AnswerCaps,
}

impl ResponseConfig {
    /// Every entry attribute the templates read.
    pub fn attributes(&self) -> BTreeSet<String> {
        [&self.client_name, &self.company, &self.url]
            .into_iter()
            .flatten()
            .flat_map(|t| t.attributes().map(str::to_owned))
            .collect()
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

pub(super) fn lookup(raw: RawLookup) -> Result<LookupConfig, ConfigError> {
    let states = match raw.states {
        None => None,
        Some(list) if list.is_empty() => {
            return Err(invalid(
                "lookup.states",
                "an empty list would never look anyone up; leave the key out to look up every \
                 call state",
            ))
        }
        Some(list) => Some(list.iter().map(|s| canonical_state(s)).collect()),
    };
    Ok(LookupConfig {
        states,
        deadline: millis(
            "lookup.deadline_ms",
            raw.deadline_ms.unwrap_or(DEFAULT_DEADLINE_MS),
        )?,
    })
}

pub(super) fn response(raw: RawResponse) -> Result<ResponseConfig, ConfigError> {
    fn text(key: &str, v: Option<String>) -> Result<Option<Template>, ConfigError> {
        v.filter(|s| !s.is_empty())
            .map(|s| Template::text(&s))
            .transpose()
            .map_err(|e| invalid(key, e.to_string()))
    }
    fn url(key: &str, v: Option<String>) -> Result<Option<Template>, ConfigError> {
        v.filter(|s| !s.is_empty())
            .map(|s| Template::url(&s))
            .transpose()
            .map_err(|e| invalid(key, e.to_string()))
    }
    Ok(ResponseConfig {
        client_name: text(
            "response.client_name",
            Some(
                raw.client_name
                    .unwrap_or_else(|| DEFAULT_CLIENT_NAME.to_owned()),
            ),
        )?,
        company: text(
            "response.company",
            Some(raw.company.unwrap_or_else(|| DEFAULT_COMPANY.to_owned())),
        )?,
        url: url("response.url", raw.url)?,
        unknown_client_name: text("response.unknown_client_name", raw.unknown_client_name)?,
        unknown_company: text("response.unknown_company", raw.unknown_company)?,
        unknown_url: url("response.unknown_url", raw.unknown_url)?,
        caps: AnswerCaps {
            client_name: cap(
                "response.max_client_name_chars",
                raw.max_client_name_chars,
                DEFAULT_CAPS.client_name,
            )?,
            company: cap(
                "response.max_company_chars",
                raw.max_company_chars,
                DEFAULT_CAPS.company,
            )?,
            url: cap(
                "response.max_url_chars",
                raw.max_url_chars,
                DEFAULT_CAPS.url,
            )?,
        },
    })
}

fn cap(key: &str, v: Option<usize>, default: usize) -> Result<usize, ConfigError> {
    within(key, v.unwrap_or(default), 16..=8192)
}

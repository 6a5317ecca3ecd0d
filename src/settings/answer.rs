//! `[lookup]` and `[response]`: when to look up, and what to answer.

use super::raw::{RawLookup, RawResponse, RawScopeResponse};
use super::{invalid, millis, within, ConfigError};
use crate::call::canonical_state;
use crate::lookup::{AnswerCaps, LookupSettings, ResponseSettings};
use crate::mapping::Template;

const DEFAULT_DEADLINE_MS: u64 = 2000;
const DEFAULT_CLIENT_NAME: &str = "{displayName|cn}";
const DEFAULT_COMPANY: &str = "{company|o}";
const DEFAULT_CAPS: AnswerCaps = AnswerCaps {
    client_name: 256,
    company: 256,
    url: 2048,
};

pub(super) fn lookup(raw: RawLookup) -> Result<LookupSettings, ConfigError> {
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
    Ok(LookupSettings {
        states,
        deadline: millis(
            "lookup.deadline_ms",
            raw.deadline_ms.unwrap_or(DEFAULT_DEADLINE_MS),
        )?,
        answer_cache: raw.answer_cache.unwrap_or(true),
    })
}

/// `[response]` (`section` = `response`), or a scope's merged over it.
pub(super) fn response(raw: RawResponse, section: &str) -> Result<ResponseSettings, ConfigError> {
    let key = |name: &str| format!("{section}.{name}");
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
    Ok(ResponseSettings {
        client_name: text(
            &key("client_name"),
            Some(
                raw.client_name
                    .unwrap_or_else(|| DEFAULT_CLIENT_NAME.to_owned()),
            ),
        )?,
        company: text(
            &key("company"),
            Some(raw.company.unwrap_or_else(|| DEFAULT_COMPANY.to_owned())),
        )?,
        url: url(&key("url"), raw.url)?,
        unknown_client_name: text(&key("unknown_client_name"), raw.unknown_client_name)?,
        unknown_company: text(&key("unknown_company"), raw.unknown_company)?,
        unknown_url: url(&key("unknown_url"), raw.unknown_url)?,
        multiple_client_name: text(&key("multiple_client_name"), raw.multiple_client_name)?,
        multiple_company: text(&key("multiple_company"), raw.multiple_company)?,
        multiple_url: url(&key("multiple_url"), raw.multiple_url)?,
        caps: AnswerCaps {
            client_name: cap(
                &key("max_client_name_chars"),
                raw.max_client_name_chars,
                DEFAULT_CAPS.client_name,
            )?,
            company: cap(
                &key("max_company_chars"),
                raw.max_company_chars,
                DEFAULT_CAPS.company,
            )?,
            url: cap(&key("max_url_chars"), raw.max_url_chars, DEFAULT_CAPS.url)?,
        },
    })
}

/// A scope's `[directory.scope.response]` (`section`): each key it leaves out is `[response]`'s.
pub(super) fn scope_response(
    top: &RawResponse,
    scope: RawScopeResponse,
    section: &str,
) -> Result<ResponseSettings, ConfigError> {
    let merged = RawResponse {
        client_name: scope.client_name.or_else(|| top.client_name.clone()),
        company: scope.company.or_else(|| top.company.clone()),
        url: scope.url.or_else(|| top.url.clone()),
        multiple_client_name: scope
            .multiple_client_name
            .or_else(|| top.multiple_client_name.clone()),
        multiple_company: scope
            .multiple_company
            .or_else(|| top.multiple_company.clone()),
        multiple_url: scope.multiple_url.or_else(|| top.multiple_url.clone()),
        ..top.clone()
    };
    response(merged, section)
}

fn cap(key: &str, v: Option<usize>, default: usize) -> Result<usize, ConfigError> {
    within(key, v.unwrap_or(default), 16..=8192)
}

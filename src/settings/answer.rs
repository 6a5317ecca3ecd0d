//! `[lookup]` and `[response]`: when to look up, and what to answer.

use super::raw::{RawLookup, RawResponse};
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
    })
}

pub(super) fn response(raw: RawResponse) -> Result<ResponseSettings, ConfigError> {
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
        multiple_client_name: text("response.multiple_client_name", raw.multiple_client_name)?,
        multiple_company: text("response.multiple_company", raw.multiple_company)?,
        multiple_url: url("response.multiple_url", raw.multiple_url)?,
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

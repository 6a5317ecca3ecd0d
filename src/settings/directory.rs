//! `[directory]`: the source of entries, an LDIF file or LDAP servers.

use std::path::Path;

use super::index::index_config;
use super::raw::{RawDirectory, RawIndex, RawMode, RawScope, RawSource};
use super::secrets::SecretSource;
use super::{invalid, millis, ConfigError};
use crate::directory::filter::{is_filter, FilterTemplate};
use crate::directory::{DirectorySettings, LdapSettings, LdifData, SourceSettings};
use crate::secret::Secret;

const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1500;
const DEFAULT_TIMEOUT_MS: u64 = 1500;
const DEFAULT_MAX_ENTRIES: u32 = 100;
const DEFAULT_FILTER: &str = "(objectClass=*)";
const DEFAULT_PHONE_ATTRIBUTES: &[&str] = &["telephoneNumber", "mobile"];

pub(super) fn directory(
    mut raw: RawDirectory,
    index: Option<RawIndex>,
    base: &Path,
) -> Result<DirectorySettings, ConfigError> {
    let phone_attributes: Vec<String> = raw.phone_attributes.take().unwrap_or_else(|| {
        DEFAULT_PHONE_ATTRIBUTES
            .iter()
            .map(|s| s.to_string())
            .collect()
    });
    if phone_attributes.is_empty() {
        return Err(invalid(
            "directory.phone_attributes",
            "list at least one attribute, such as [\"telephoneNumber\", \"mobile\"]",
        ));
    }
    for a in &phone_attributes {
        if a.is_empty() || !a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(invalid(
                "directory.phone_attributes",
                format!("{a:?} is not an attribute name"),
            ));
        }
    }
    let phone_attributes: Vec<String> = phone_attributes
        .into_iter()
        .map(|a| a.to_ascii_lowercase())
        .collect();
    let source = match raw.source {
        Some(RawSource::Ldif) => {
            if index.is_some() {
                return Err(invalid(
                    "index",
                    "applies to source = \"ldap\" only; an LDIF file is indexed once at start",
                ));
            }
            ldif_source(raw, base)?
        }
        Some(RawSource::Ldap) => {
            SourceSettings::Ldap(Box::new(ldap_source(raw, index, base, &phone_attributes)?))
        }
        None => {
            return Err(invalid(
                "directory.source",
                "missing; use \"ldap\" (a directory server) or \"ldif\" (a file)",
            ))
        }
    };
    Ok(DirectorySettings {
        source,
        phone_attributes,
    })
}

fn ldif_source(raw: RawDirectory, base: &Path) -> Result<SourceSettings, ConfigError> {
    let ldap_only = [
        ("urls", raw.urls.is_some()),
        ("bind_dn", raw.bind_dn.is_some()),
        ("base_dn", raw.base_dn.is_some()),
        ("match_filter", raw.match_filter.is_some()),
        ("mode", raw.mode.is_some()),
    ];
    if let Some((key, _)) = ldap_only.iter().find(|(_, set)| *set) {
        return Err(invalid(
            &format!("directory.{key}"),
            "applies to source = \"ldap\" only",
        ));
    }
    let path = raw
        .ldif
        .ok_or_else(|| invalid("directory.ldif", "missing: the LDIF file to load"))?;
    Ok(SourceSettings::Ldif(LdifData::File(base.join(path))))
}

fn ldap_source(
    raw: RawDirectory,
    index: Option<RawIndex>,
    base: &Path,
    phone_attributes: &[String],
) -> Result<LdapSettings, ConfigError> {
    let index = match raw.mode.unwrap_or(RawMode::Index) {
        RawMode::Index => Some(index_config(index.unwrap_or_default(), base)?),
        RawMode::Live if index.is_some() => {
            return Err(invalid("index", "applies to mode = \"index\" only"))
        }
        RawMode::Live => None,
    };
    if raw.ldif.is_some() {
        return Err(invalid(
            "directory.ldif",
            "applies to source = \"ldif\" only",
        ));
    }
    let (urls, starttls) = urls(&raw)?;
    let bind = bind(&raw, base)?;
    let base_dn = raw
        .base_dn
        .filter(|b| !b.trim().is_empty())
        .ok_or_else(|| {
            invalid(
                "directory.base_dn",
                "missing: where to search, such as \"DC=example,DC=com\"",
            )
        })?;
    let scope = match raw.scope.unwrap_or(RawScope::Subtree) {
        RawScope::Subtree => ldap3::Scope::Subtree,
        RawScope::One => ldap3::Scope::OneLevel,
        RawScope::Base => ldap3::Scope::Base,
    };
    let filter = eligibility_filter(raw.filter)?;
    let match_filter = match_filter(raw.match_filter.as_deref(), phone_attributes)?;
    let max_entries = raw.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
    if !(1..=1000).contains(&max_entries) {
        return Err(invalid(
            "directory.max_entries",
            "must be between 1 and 1000",
        ));
    }
    Ok(LdapSettings {
        urls,
        starttls,
        ca_file: raw.ca_file.map(|f| base.join(f)),
        danger_accept_invalid_certs: raw.danger_accept_invalid_certs.unwrap_or(false),
        bind,
        base_dn,
        scope,
        filter,
        phone_attributes: phone_attributes.to_vec(),
        match_filter,
        max_entries,
        connect_timeout: millis(
            "directory.connect_timeout_ms",
            raw.connect_timeout_ms.unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS),
        )?,
        timeout: millis(
            "directory.timeout_ms",
            raw.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
        )?,
        index,
    })
}

/// `urls`, each checked against `starttls` and `allow_plaintext`, and `starttls`.
fn urls(raw: &RawDirectory) -> Result<(Vec<String>, bool), ConfigError> {
    let starttls = raw.starttls.unwrap_or(false);
    let allow_plaintext = raw.allow_plaintext.unwrap_or(false);
    let urls = raw.urls.clone().unwrap_or_default();
    if urls.is_empty() {
        return Err(invalid(
            "directory.urls",
            "list at least one server, such as [\"ldaps://dc1.example.com\"]",
        ));
    }
    for url in &urls {
        check_url(url, starttls, allow_plaintext)?;
    }
    Ok((urls, starttls))
}

/// `bind_dn` and its password, read from where the `bind_password_*` key says.
fn bind(raw: &RawDirectory, base: &Path) -> Result<Option<(String, Secret)>, ConfigError> {
    let password = SecretSource {
        section: "directory",
        name: "bind_password",
        file: raw.bind_password_file.as_deref(),
        env: raw.bind_password_env.as_deref(),
        credential: raw.bind_password_credential.as_deref(),
    };
    let bind = match raw.bind_dn.clone() {
        Some(dn) => match password.read(base)? {
            Some(secret) => Some((dn, secret)),
            None => {
                return Err(invalid(
                    "directory.bind_password_file",
                    "with bind_dn set, one of bind_password_file, bind_password_env and \
                     bind_password_credential must say where the password is",
                ))
            }
        },
        None if password.is_set() => {
            return Err(invalid(
                "directory.bind_dn",
                "a bind password is configured but no bind_dn to use it with",
            ))
        }
        None => None,
    };
    Ok(bind)
}

/// `match_filter`, or by default any phone attribute equal to any of the number's forms.
fn match_filter(
    template: Option<&str>,
    phone_attributes: &[String],
) -> Result<FilterTemplate, ConfigError> {
    match template {
        Some(t) => FilterTemplate::parse(t),
        None => Ok(FilterTemplate::any_attribute(phone_attributes)),
    }
    .map_err(|e| invalid("directory.match_filter", e.to_string()))
}

/// `filter`, or the default; refused unless it is an RFC 4515 filter.
fn eligibility_filter(filter: Option<String>) -> Result<String, ConfigError> {
    let filter = filter.unwrap_or_else(|| DEFAULT_FILTER.to_owned());
    if !is_filter(&filter) {
        return Err(invalid(
            "directory.filter",
            format!(
                "{filter:?} is not an LDAP filter (RFC 4515), such as \"(objectClass=person)\""
            ),
        ));
    }
    Ok(filter)
}

fn check_url(url: &str, starttls: bool, allow_plaintext: bool) -> Result<(), ConfigError> {
    let parsed = url::Url::parse(url).map_err(|e| {
        invalid(
            "directory.urls",
            format!("{url:?} is not a URL such as ldaps://dc1.example.com ({e})"),
        )
    })?;
    if parsed.host_str().unwrap_or("").is_empty() {
        return Err(invalid("directory.urls", format!("{url:?} names no host")));
    }
    match parsed.scheme() {
        "ldaps" if starttls => Err(invalid(
            "directory.starttls",
            format!("{url:?} is already TLS; StartTLS applies to ldap:// URLs"),
        )),
        "ldaps" => Ok(()),
        "ldap" if starttls || allow_plaintext => Ok(()),
        "ldap" => Err(invalid(
            "directory.urls",
            format!(
                "{url:?} would send the bind password and personal data in clear text; use \
                 ldaps://, or set starttls = true (allow_plaintext = true only for a local test)"
            ),
        )),
        other => Err(invalid(
            "directory.urls",
            format!("{url:?}: scheme {other:?} is not ldaps or ldap"),
        )),
    }
}

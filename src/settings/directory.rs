//! `[directory]`: the source of entries, an LDIF file or LDAP servers.

use std::path::Path;

use super::index::index_config;
use super::kerberos::kerberos;
use super::raw::{
    RawDirectory, RawIndex, RawMode, RawScope, RawScopeResponse, RawScopeTable, RawScopes,
    RawSource,
};
use super::secrets::SecretSource;
use super::{invalid, millis, ConfigError};
use crate::directory::filter::{is_filter, FilterTemplate};
use crate::directory::{
    DirectorySettings, DiscoverySettings, LdapSettings, LdifData, SourceSettings,
};
use crate::secret::Secret;

const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1500;
const DEFAULT_TIMEOUT_MS: u64 = 1500;
const DEFAULT_MAX_ENTRIES: u32 = 100;
const DEFAULT_FILTER: &str = "(objectClass=*)";
const DEFAULT_PHONE_ATTRIBUTES: &[&str] = &["telephoneNumber", "mobile"];

/// One scope, validated, with the keys the lookup's own settings for it are built from.
pub(super) struct ScopePlan {
    /// Where its entries come from.
    pub(super) directory: DirectorySettings,
    /// `default_region`, for its stored numbers.
    pub(super) default_region: Option<String>,
    /// `[directory.scope.response]`: its templates.
    pub(super) response: Option<RawScopeResponse>,
    /// The key its own keys are named under: `directory` or `directory.scope[N]`.
    pub(super) key: String,
}

/// `[directory]` (and `[index]`): one scope, or one per `[[directory.scope]]` in rank order.
pub(super) fn directory(
    mut raw: RawDirectory,
    index: Option<RawIndex>,
    base: &Path,
) -> Result<Vec<ScopePlan>, ConfigError> {
    let phone_attributes = phone_attributes("directory", raw.phone_attributes.take())?
        .unwrap_or_else(|| {
            DEFAULT_PHONE_ATTRIBUTES
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect()
        });
    match raw.source {
        Some(RawSource::Ldif) => {
            if index.is_some() {
                return Err(invalid(
                    "index",
                    "applies to source = \"ldap\" only; an LDIF file is indexed once at start",
                ));
            }
            if matches!(raw.scope, Some(RawScopes::List(_))) {
                return Err(invalid(
                    "directory.scope",
                    "scopes apply to source = \"ldap\" only",
                ));
            }
            let directory = DirectorySettings {
                name: None,
                source: ldif_source(raw, base)?,
                phone_attributes,
            };
            Ok(vec![ScopePlan::single(directory)])
        }
        Some(RawSource::Ldap) => ldap_scopes(raw, index, base, phone_attributes),
        None => Err(invalid(
            "directory.source",
            "missing; use \"ldap\" (a directory server) or \"ldif\" (a file)",
        )),
    }
}

impl ScopePlan {
    fn single(directory: DirectorySettings) -> Self {
        ScopePlan {
            directory,
            default_region: None,
            response: None,
            key: "directory".to_owned(),
        }
    }
}

/// `phone_attributes` under `key`, lower-cased; `None` when not set.
fn phone_attributes(
    key: &str,
    attributes: Option<Vec<String>>,
) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(attributes) = attributes else {
        return Ok(None);
    };
    let key = format!("{key}.phone_attributes");
    if attributes.is_empty() {
        return Err(invalid(
            &key,
            "list at least one attribute, such as [\"telephoneNumber\", \"mobile\"]",
        ));
    }
    for a in &attributes {
        if a.is_empty() || !a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(invalid(&key, format!("{a:?} is not an attribute name")));
        }
    }
    Ok(Some(
        attributes.iter().map(|a| a.to_ascii_lowercase()).collect(),
    ))
}

/// The LDAP scopes: `[directory]`'s own, or each `[[directory.scope]]` with the connection,
/// bind, mode and `[index]` they share.
fn ldap_scopes(
    mut raw: RawDirectory,
    mut index: Option<RawIndex>,
    base: &Path,
    default_attributes: Vec<String>,
) -> Result<Vec<ScopePlan>, ConfigError> {
    let custom_match = raw.match_filter.is_some();
    let list = match raw.scope.take() {
        Some(RawScopes::List(list)) => list,
        search => {
            let search = match search {
                Some(RawScopes::Search(s)) => Some(s),
                _ => None,
            };
            return single_ldap_scope(raw, index, base, search, default_attributes);
        }
    };
    if list.is_empty() {
        return Err(invalid("directory.scope", "list at least one scope"));
    }
    for (key, set) in [
        ("base_dn", raw.base_dn.is_some()),
        ("filter", raw.filter.is_some()),
    ] {
        if set {
            return Err(invalid(
                &format!("directory.{key}"),
                "with [[directory.scope]] tables, each scope says its own",
            ));
        }
    }
    unique_names(&list)?;
    let mut plans = Vec::with_capacity(list.len());
    let mut shared = None;
    for (i, table) in list.into_iter().enumerate() {
        let key = format!("directory.scope[{i}]");
        let name = scope_name(&key, table.name)?;
        let target = Target {
            key: key.clone(),
            base_dn: table.base_dn,
            filter: table.filter,
            scope: table.scope,
            phone_attributes: phone_attributes(&key, table.phone_attributes)?
                .unwrap_or_else(|| default_attributes.clone()),
        };
        let ldap = match &shared {
            None => {
                let ldap = ldap_source(std::mem::take(&mut raw), index.take(), base, target)?;
                shared = Some(ldap.clone());
                ldap
            }
            Some(first) => retarget(first, target, custom_match)?,
        };
        plans.push(ScopePlan {
            directory: DirectorySettings {
                name: Some(name.clone()),
                phone_attributes: ldap.phone_attributes.clone(),
                source: SourceSettings::Ldap(Box::new(with_state_file_of(ldap, &name))),
            },
            default_region: table.default_region,
            response: table.response,
            key,
        });
    }
    Ok(plans)
}

/// Each scope's name, once (case aside).
fn unique_names(list: &[RawScopeTable]) -> Result<(), ConfigError> {
    let mut names = std::collections::BTreeSet::new();
    for (i, table) in list.iter().enumerate() {
        let key = format!("directory.scope[{i}]");
        let name = scope_name(&key, table.name.clone())?;
        if !names.insert(name.to_ascii_lowercase()) {
            return Err(invalid(
                &format!("{key}.name"),
                format!("{name:?} is used twice"),
            ));
        }
    }
    Ok(())
}

/// `[directory]`'s own scope, without `[[directory.scope]]`.
fn single_ldap_scope(
    mut raw: RawDirectory,
    index: Option<RawIndex>,
    base: &Path,
    scope: Option<RawScope>,
    phone_attributes: Vec<String>,
) -> Result<Vec<ScopePlan>, ConfigError> {
    let target = Target {
        key: "directory".to_owned(),
        base_dn: raw.base_dn.take(),
        filter: raw.filter.take(),
        scope,
        phone_attributes,
    };
    let ldap = ldap_source(raw, index, base, target)?;
    let directory = DirectorySettings {
        name: None,
        phone_attributes: ldap.phone_attributes.clone(),
        source: SourceSettings::Ldap(Box::new(ldap)),
    };
    Ok(vec![ScopePlan::single(directory)])
}

/// A scope's `name`: letters, digits, `-` and `_`, as it names the scope's state file.
fn scope_name(key: &str, name: Option<String>) -> Result<String, ConfigError> {
    let key = format!("{key}.name");
    let name = name.ok_or_else(|| invalid(&key, "missing: a short name such as \"staff\""))?;
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(invalid(
            &key,
            format!("{name:?}: use 1 to 64 letters, digits, - or _"),
        ));
    }
    Ok(name)
}

/// With several scopes, each keeps its index in a state file of its own beside the
/// configured one: `index.state` becomes `index.staff.state`.
fn with_state_file_of(mut ldap: LdapSettings, name: &str) -> LdapSettings {
    if let Some(index) = &mut ldap.index {
        if let Some(path) = &index.state_file {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            let file = match (stem, path.extension()) {
                (Some(stem), Some(ext)) => format!("{stem}.{name}.{}", ext.to_string_lossy()),
                (Some(stem), None) => format!("{stem}.{name}"),
                (None, _) => format!("index.{name}.state"),
            };
            index.state_file = Some(path.with_file_name(file));
        }
    }
    ldap
}

/// What one scope searches: its base, filter, search scope and phone attributes.
struct Target {
    /// `directory` or `directory.scope[N]`, for errors.
    key: String,
    base_dn: Option<String>,
    filter: Option<String>,
    scope: Option<RawScope>,
    phone_attributes: Vec<String>,
}

/// `first`'s connection, bind and index settings, searching `target`; with the default
/// `match_filter` (not `custom_match`), over the target's phone attributes.
fn retarget(
    first: &LdapSettings,
    target: Target,
    custom_match: bool,
) -> Result<LdapSettings, ConfigError> {
    let mut ldap = first.clone();
    ldap.base_dn = base_dn(&target.key, target.base_dn)?;
    ldap.scope = search_scope(target.scope);
    ldap.filter = eligibility_filter(&target.key, target.filter)?;
    if !custom_match {
        ldap.match_filter = FilterTemplate::any_attribute(&target.phone_attributes);
    }
    ldap.phone_attributes = target.phone_attributes;
    Ok(ldap)
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
    target: Target,
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
    let kerberos = kerberos(&raw, base, &urls, starttls)?;
    let discovery = discovery(&raw, &urls)?;
    let bind = bind(&raw, base)?;
    let base_dn = base_dn(&target.key, target.base_dn)?;
    let scope = search_scope(target.scope);
    let filter = eligibility_filter(&target.key, target.filter)?;
    let match_filter = match_filter(raw.match_filter.as_deref(), &target.phone_attributes)?;
    let max_entries = raw.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
    if !(1..=1000).contains(&max_entries) {
        return Err(invalid(
            "directory.max_entries",
            "must be between 1 and 1000",
        ));
    }
    Ok(LdapSettings {
        urls,
        discovery,
        starttls,
        ca_file: raw.ca_file.map(|f| base.join(f)),
        danger_accept_invalid_certs: raw.danger_accept_invalid_certs.unwrap_or(false),
        bind,
        kerberos,
        base_dn,
        scope,
        filter,
        phone_attributes: target.phone_attributes,
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

/// `urls`, each checked against `starttls` and `allow_plaintext`, and `starttls`. Empty when
/// `domain` finds the servers instead (`urls` win when both are set).
fn urls(raw: &RawDirectory) -> Result<(Vec<String>, bool), ConfigError> {
    let starttls = raw.starttls.unwrap_or(false);
    let allow_plaintext = raw.allow_plaintext.unwrap_or(false);
    let urls = raw.urls.clone().unwrap_or_default();
    if urls.is_empty() && raw.domain.is_none() {
        return Err(invalid(
            "directory.urls",
            "list at least one server, such as [\"ldaps://dc1.example.com\"], or set \
             directory.domain to find the domain controllers in DNS",
        ));
    }
    for url in &urls {
        check_url(url, starttls, allow_plaintext)?;
    }
    Ok((urls, starttls))
}

/// `domain`, `site` and `dns_server`: the DCs found in DNS, when `urls` does not list them.
fn discovery(
    raw: &RawDirectory,
    urls: &[String],
) -> Result<Option<DiscoverySettings>, ConfigError> {
    let Some(domain) = raw.domain.clone() else {
        for (key, set) in [
            ("site", raw.site.is_some()),
            ("dns_server", raw.dns_server.is_some()),
        ] {
            if set {
                return Err(invalid(
                    &format!("directory.{key}"),
                    "applies with directory.domain only",
                ));
            }
        }
        return Ok(None);
    };
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    };
    if !name_ok(&domain) {
        return Err(invalid(
            "directory.domain",
            format!("{domain:?} is not a DNS domain name such as example.com"),
        ));
    }
    if raw.site.as_deref().is_some_and(|s| !name_ok(s)) {
        return Err(invalid(
            "directory.site",
            "an AD site name: letters, digits and -",
        ));
    }
    let dns_server = raw
        .dns_server
        .as_deref()
        .map(|s| s.parse())
        .transpose()
        .map_err(|_| {
            invalid(
                "directory.dns_server",
                "an address and port such as 127.0.0.1:53",
            )
        })?;
    if !urls.is_empty() {
        // Static URLs win: the domain is not asked.
        return Ok(None);
    }
    Ok(Some(DiscoverySettings {
        domain,
        site: raw.site.clone(),
        dns_server,
    }))
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

/// `base_dn` under `key`: required.
fn base_dn(key: &str, base_dn: Option<String>) -> Result<String, ConfigError> {
    base_dn.filter(|b| !b.trim().is_empty()).ok_or_else(|| {
        invalid(
            &format!("{key}.base_dn"),
            "missing: where to search, such as \"DC=example,DC=com\"",
        )
    })
}

/// The search scope: subtree unless written.
fn search_scope(scope: Option<RawScope>) -> ldap3::Scope {
    match scope.unwrap_or(RawScope::Subtree) {
        RawScope::Subtree => ldap3::Scope::Subtree,
        RawScope::One => ldap3::Scope::OneLevel,
        RawScope::Base => ldap3::Scope::Base,
    }
}

/// `filter` under `key`, or the default; refused unless it is an RFC 4515 filter.
fn eligibility_filter(key: &str, filter: Option<String>) -> Result<String, ConfigError> {
    let filter = filter.unwrap_or_else(|| DEFAULT_FILTER.to_owned());
    if !is_filter(&filter) {
        return Err(invalid(
            &format!("{key}.filter"),
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

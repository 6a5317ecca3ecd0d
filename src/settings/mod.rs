//! The configuration file: raw TOML structs that reject unknown keys, then one validation step
//! that applies defaults, reads secrets and names the offending key in every error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::phone::PhoneNormalizer;

mod access;
mod admin;
mod answer;
mod directory;
mod index;
mod kerberos;
mod log;
mod raw;
mod secrets;
mod server;

use access::{access, rate_limit};
use answer::{lookup, response, scope_response};
use directory::{directory, ScopePlan};
use log::log;
use raw::{RawPhone, RawResponse};
use server::{metrics_listen, server};

use crate::admin::AdminSettings;
use crate::directory::{KerberosSettings, LdifData, SourceSettings};
use crate::http::{self, AccessSettings, RateLimitSettings, ServerSettings};
use crate::logging::LogSettings;
use crate::lookup::{self as lookup_setup, LookupSettings, ResponseSettings, ScopeSettings};

/// The demo configuration compiled into the binary (README command 1).
pub const DEMO_TOML: &str = include_str!("../../config/demo.toml");
/// The demo directory compiled into the binary.
pub const DEMO_LDIF: &str = include_str!("../../config/demo.ldif");

/// A configuration that cannot be used, naming the key and what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not TOML, a wrong type, or an unknown key.
    #[error("{0}")]
    Syntax(String),
    /// A value that parses but cannot work.
    #[error("{key}: {message}")]
    Invalid {
        /// The key, as `section.name`.
        key: String,
        /// What is wrong and what to write instead.
        message: String,
    },
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// Everything the service needs, validated and with defaults applied.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[server]`
    pub server: ServerSettings,
    /// `[directory]`: its one scope, or one per `[[directory.scope]]` in rank order (never
    /// empty).
    pub scopes: Vec<ScopeSettings>,
    /// `[phone]`: reads callers' numbers (and the stored ones of scopes without a
    /// `default_region` of their own).
    pub phone: PhoneNormalizer,
    /// `[lookup]`
    pub lookup: LookupSettings,
    /// `[response]`
    pub response: ResponseSettings,
    /// `[access]`: who may call.
    pub access: AccessSettings,
    /// `[rate_limit]`; `None` when disabled.
    pub rate_limit: Option<RateLimitSettings>,
    /// `[log]`
    pub log: LogSettings,
    /// `[metrics] listen`: where Prometheus scrapes `/metrics`; `None` serves none.
    pub metrics_listen: Option<SocketAddr>,
    /// `[admin]`: the console; `None` serves none.
    pub admin: Option<AdminSettings>,
}

const DEFAULT_REGION: &str = "IL";
const DEFAULT_MAX_EXTENSION_DIGITS: usize = 6;
impl Config {
    /// Reads and validates a configuration file; relative paths in it are resolved against the
    /// file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Self::parse(&text, base)
    }

    /// The demo configuration and directory compiled into the binary.
    pub fn embedded_demo() -> Result<Self, ConfigError> {
        let mut config = Self::parse(DEMO_TOML, Path::new("config"))?;
        for scope in &mut config.scopes {
            scope.directory.source = SourceSettings::Ldif(LdifData::Embedded(DEMO_LDIF));
        }
        Ok(config)
    }

    /// Validates configuration text; `base` resolves relative paths.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw = raw::read(text)?;
        let phone = phone(&raw.phone, None)?;
        let server = server(raw.server, base)?;
        let plans = directory(raw.directory, raw.index, base)?;
        let response_settings = response(raw.response.clone(), "response")?;
        let scopes = plans
            .into_iter()
            .map(|plan| scope(plan, &raw.phone, &phone, &raw.response, &response_settings))
            .collect::<Result<_, _>>()?;
        Ok(Config {
            scopes,
            phone,
            lookup: lookup(raw.lookup)?,
            response: response_settings,
            access: access(raw.access, base)?,
            rate_limit: rate_limit(raw.rate_limit)?,
            log: log(raw.log)?,
            metrics_listen: metrics_listen(raw.metrics, &server)?,
            admin: admin::admin(raw.admin, base, &server)?,
            server,
        })
    }

    /// `bind = "gssapi"`'s settings, which every scope shares; `None` for other binds.
    pub fn kerberos(&self) -> Option<&KerberosSettings> {
        self.scopes.iter().find_map(|s| match &s.directory.source {
            SourceSettings::Ldap(ldap) => ldap.kerberos.as_ref(),
            SourceSettings::Ldif(_) => None,
        })
    }

    /// What the lookup is built from.
    pub fn lookup_setup(&self) -> lookup_setup::Setup<'_> {
        lookup_setup::Setup {
            scopes: &self.scopes,
            phone: &self.phone,
            lookup: &self.lookup,
            response: &self.response,
        }
    }

    /// What the endpoint is built from.
    pub fn http_setup(&self) -> http::Setup<'_> {
        http::Setup {
            server: &self.server,
            access: &self.access,
            rate_limit: self.rate_limit.as_ref(),
            mask_numbers: self.log.mask_numbers,
            recent_calls: self.admin.as_ref().is_some_and(|a| a.recent_calls),
            lookup: self.lookup_setup(),
        }
    }
}

/// `[phone]`; with `region` (`(key, value)`), a scope's `default_region` instead.
fn phone(raw: &RawPhone, region: Option<(&str, &str)>) -> Result<PhoneNormalizer, ConfigError> {
    let (key, region) = region.unwrap_or((
        "phone.default_region",
        raw.default_region.as_deref().unwrap_or(DEFAULT_REGION),
    ));
    let phone = PhoneNormalizer::new(
        region,
        raw.max_extension_digits
            .unwrap_or(DEFAULT_MAX_EXTENSION_DIGITS),
    )
    .map_err(|e| invalid(key, e.to_string()))?;
    let phone = match &raw.country_attributes {
        Some(attrs) if attrs.iter().any(|a| !is_attribute_name(a)) => {
            return Err(invalid(
                "phone.country_attributes",
                "list attribute names such as [\"c\", \"countryCode\"], or [] for none",
            ))
        }
        Some(attrs) => phone.with_country_attributes(attrs.clone()),
        None => phone,
    };
    if raw.max_extension_digits.is_some_and(|n| n > 8) {
        return Err(invalid(
            "phone.max_extension_digits",
            "must be at most 8, or real numbers would be taken for extensions",
        ));
    }
    Ok(phone)
}

/// One scope's lookup settings: its numbers read in its `default_region` (else `[phone]`'s),
/// its answers from its `response` keys (else `[response]`'s).
fn scope(
    plan: ScopePlan,
    raw_phone: &RawPhone,
    phone_settings: &PhoneNormalizer,
    raw_response: &RawResponse,
    response_settings: &ResponseSettings,
) -> Result<ScopeSettings, ConfigError> {
    let region_key = format!("{}.default_region", plan.key);
    let phone = match &plan.default_region {
        Some(region) => phone(raw_phone, Some((&region_key, region)))?,
        None => phone_settings.clone(),
    };
    let response = match plan.response {
        Some(own) => scope_response(raw_response, own, &format!("{}.response", plan.key))?,
        None => response_settings.clone(),
    };
    Ok(ScopeSettings {
        directory: plan.directory,
        phone,
        response,
    })
}

/// An LDAP attribute name (letters, digits, `-`), as a key may name one.
fn is_attribute_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn millis(key: &str, ms: u64) -> Result<Duration, ConfigError> {
    if !(10..=60_000).contains(&ms) {
        return Err(invalid(key, "must be between 10 and 60000 milliseconds"));
    }
    Ok(Duration::from_millis(ms))
}

/// `value` (or `default`) seconds, refused outside 1 to `max`.
pub(super) fn seconds(
    key: &str,
    value: Option<u64>,
    default: u64,
    max: u64,
) -> Result<Duration, ConfigError> {
    let v = value.unwrap_or(default);
    if (1..=max).contains(&v) {
        Ok(Duration::from_secs(v))
    } else {
        Err(invalid(key, format!("must be between 1 and {max} seconds")))
    }
}

/// `value`, or an error naming `key` when it is outside `range`.
fn within<T>(key: &str, value: T, range: std::ops::RangeInclusive<T>) -> Result<T, ConfigError>
where
    T: PartialOrd + std::fmt::Display,
{
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(invalid(
            key,
            format!("must be between {} and {}", range.start(), range.end()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LDAP: &str = r#"
        [directory]
        source = "ldap"
        urls = ["ldaps://dc1.example.com"]
        base_dn = "dc=example,dc=com"
    "#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/popup-ldap"))
    }

    fn error(text: &str) -> String {
        parse(text).expect_err("must be rejected").to_string()
    }

    #[test]
    fn minimal_ldap_config_gets_defaults() {
        let c = parse(LDAP).expect("valid");
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.server.path, "/popup");
        assert_eq!(c.lookup.deadline, Duration::from_secs(2));
        assert!(c.lookup.states.is_none());
        assert!(c.lookup.answer_cache);
        assert!(c.log.mask_numbers);
        assert_eq!(
            c.scopes[0].directory.phone_attributes,
            ["telephonenumber", "mobile"]
        );
        let SourceSettings::Ldap(l) = &c.scopes[0].directory.source else {
            panic!("ldap")
        };
        assert!(l.bind.is_none());
        assert!(!l.danger_accept_invalid_certs);
        assert_eq!(
            c.rate_limit,
            Some(RateLimitSettings {
                per_ip_per_second: 20,
                per_ip_burst: 40,
                global_per_second: 500,
                global_burst: 1000,
                ipv4_prefix: 32,
                ipv6_prefix: 64,
            })
        );
    }

    #[test]
    fn cors_origins_are_kept_as_browsers_send_them() {
        let c = parse(&format!(
            "{LDAP}\n[server]\ncors_origins = [\"chrome-extension://abcdefghijklmnopabcdefghijklmnop\", \"HTTPS://CRM.example.com:8443\"]"
        ))
        .expect("valid");
        assert_eq!(
            c.server.cors_origins,
            [
                "chrome-extension://abcdefghijklmnopabcdefghijklmnop",
                "https://crm.example.com:8443"
            ]
        );
        assert!(parse(LDAP).expect("valid").server.cors_origins.is_empty());
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = error(&format!("{LDAP}\nbind_pasword = \"x\""));
        assert!(e.contains("bind_pasword"), "{e}");
        let e = error("[server]\nlisten = \"127.0.0.1:1\"\nport = 1\n[directory]\nsource=\"ldif\"\nldif=\"x\"");
        assert!(e.contains("port"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("[server]\nlisten = \"localhost\"", "server.listen"),
            ("[server]\npath = \"popup\"", "server.path"),
            ("[server]\npath = \"/readyz\"", "server.path"),
            ("[server]\nmax_body_bytes = 1", "server.max_body_bytes"),
            ("[server]\ntls_cert_file = \"c.pem\"", "server.tls_key_file"),
            ("[server]\ntls_key_file = \"k.pem\"", "server.tls_cert_file"),
            ("[phone]\ndefault_region = \"XX\"", "phone.default_region"),
            (
                "[phone]\nmax_extension_digits = 12",
                "phone.max_extension_digits",
            ),
            ("[lookup]\nstates = []", "lookup.states"),
            ("[lookup]\ndeadline_ms = 0", "lookup.deadline_ms"),
            ("[lookup]\nanswer_cache = \"yes\"", "lookup.answer_cache"),
            ("[response]\nurl = \"intranet/{uid}\"", "response.url"),
            ("[response]\nclient_name = \"{cn\"", "response.client_name"),
            ("[rate_limit]\nper_ip_burst = 0", "rate_limit.per_ip_burst"),
            ("[metrics]\nlisten = \"9464\"", "metrics.listen"),
            ("[access]\nallow = [\"10.0.0.0/33\"]", "access.allow"),
            (
                "[access]\ntrusted_proxies = [\"proxy\"]",
                "access.trusted_proxies",
            ),
            (
                "[access]\ntoken_env = \"POPUP_LDAP_TEST_UNSET\"",
                "access.token_env",
            ),
            (
                "[access]\ntoken_file = \"/nonexistent/token\"",
                "access.token_file",
            ),
            (
                "[access]\ntoken_file = \"a\"\ntoken_env = \"B\"",
                "access.token_file",
            ),
            (
                "[access]\nallow = [\"192.0.2.9/24\"]",
                "access.allow: \"192.0.2.9/24\" has host bits set: write the network 192.0.2.0/24",
            ),
            ("[log]\nlevel = \"verbose!!\"", "log.level"),
            (
                "[server]\nlisten = \"127.0.0.1:8080\"\n[metrics]\nlisten = \"127.0.0.1:8080\"",
                "metrics.listen: 127.0.0.1:8080 is where server.listen (127.0.0.1:8080) already listens",
            ),
            (
                "[server]\nlisten = \"0.0.0.0:8080\"\n[metrics]\nlisten = \"127.0.0.1:8080\"",
                "metrics.listen",
            ),
            ("[server]\nheader_timeout_s = 0", "server.header_timeout_s"),
            ("[server]\nidle_timeout_s = 99999", "server.idle_timeout_s"),
            ("[server]\nmax_connections = 2", "server.max_connections"),
            ("[server]\nhttp2_max_streams = 0", "server.http2_max_streams"),
            ("[response]\nmax_url_chars = 1", "response.max_url_chars"),
            ("[rate_limit]\nipv6_prefix = 129", "rate_limit.ipv6_prefix"),
            ("[index]\nmax_entries = 0", "index.max_entries"),
            ("[server]\ncors_origins = [\"https://crm.example.com/\"]", "server.cors_origins"),
            ("[server]\ncors_origins = [\"https://crm.example.com/app\"]", "server.cors_origins"),
            ("[server]\ncors_origins = [\"crm.example.com\"]", "server.cors_origins"),
        ];
        for (extra, key) in cases {
            let e = error(&format!("{LDAP}\n{extra}"));
            assert!(e.starts_with(key), "{extra}: {e}");
        }
    }

    #[test]
    fn directory_mistakes_name_their_key() {
        let cases = [
            ("[directory]\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"", "directory.source"),
            ("[directory]\nsource=\"sql\"", "directory.source"),
            ("[directory]\nsource=\"ldif\"", "directory.ldif"),
            ("[directory]\nsource=\"ldif\"\nldif=\"a\"\nurls=[\"ldaps://x\"]", "directory.urls"),
            ("[directory]\nsource=\"ldap\"\nbase_dn=\"dc=x\"", "directory.urls"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldap://x\"]\nbase_dn=\"dc=x\"", "directory.urls"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"http://x\"]\nbase_dn=\"dc=x\"", "directory.urls"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://\"]\nbase_dn=\"dc=x\"", "directory.urls"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nstarttls=true\nbase_dn=\"dc=x\"", "directory.starttls"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]", "directory.base_dn"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nscope=\"deep\"", "directory.scope"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nfilter=\"objectClass=person\"", "directory.filter"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nmatch_filter=\"(mobile={nope})\"", "directory.match_filter"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nphone_attributes=[]", "directory.phone_attributes"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nphone_attributes=[\"a b\"]", "directory.phone_attributes"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nbind_dn=\"cn=a\"", "directory.bind_password_file"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nbind_password_env=\"X\"", "directory.bind_dn"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nbind_dn=\"cn=a\"\nbind_password_file=\"/nonexistent/pw\"", "directory.bind_password_file"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nbind_dn=\"cn=a\"\nbind_password_env=\"POPUP_LDAP_TEST_UNSET\"", "directory.bind_password_env"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\nmax_entries=0", "directory.max_entries"),
            ("[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\ntimeout_ms=0", "directory.timeout_ms"),
        ];
        for (text, key) in cases {
            let e = error(text);
            assert!(e.starts_with(key), "{text}: {e}");
        }
    }

    #[test]
    fn serde_errors_name_their_key_and_the_choices() {
        let e = error("[directory]\nsource = \"sql\"");
        assert!(
            e.starts_with("directory.source: unknown variant `sql`, expected `ldap` or `ldif`"),
            "{e}"
        );
        let e = error(&LDAP.replace("source", "scope = \"deep\"\nsource"));
        assert!(
            e.starts_with("directory.scope: unknown variant `deep`"),
            "{e}"
        );
        assert!(e.contains("`subtree`, `one`"), "{e}");
        let e = error(&format!("{LDAP}\n[server]\nmax_body_bytes = \"big\""));
        assert!(e.starts_with("server.max_body_bytes: invalid type"), "{e}");
        let e = error(&format!("{LDAP}\n[index]\npage_size = -1"));
        assert!(e.starts_with("index.page_size: "), "{e}");
        // The aliases older configurations use still read.
        for (alias, scope) in [
            ("sub", ldap3::Scope::Subtree),
            ("onelevel", ldap3::Scope::OneLevel),
        ] {
            let c = parse(&LDAP.replace("source", &format!("scope = \"{alias}\"\nsource")))
                .expect("valid");
            let SourceSettings::Ldap(l) = &c.scopes[0].directory.source else {
                panic!("ldap")
            };
            assert_eq!(l.scope, scope);
        }
    }

    const SCOPES: &str = r#"
        [directory]
        source = "ldap"
        urls = ["ldaps://dc1.example.com"]
        phone_attributes = ["telephoneNumber", "mobile"]
        [index]
        state_file = "state/index.state"
        [[directory.scope]]
        name = "staff"
        base_dn = "OU=Staff,DC=example,DC=com"
        [directory.scope.response]
        company = "Example · {department}"
        [[directory.scope]]
        name = "contacts"
        base_dn = "OU=Contacts,DC=example,DC=com"
        scope = "one"
        filter = "(objectClass=contact)"
        phone_attributes = ["telephoneNumber"]
        default_region = "GB"
    "#;

    #[test]
    fn scopes_share_the_connection_and_keep_their_own_search_region_and_answer() {
        let c = parse(&format!(
            "{SCOPES}\n[response]\nurl = \"https://i.example/{{uid}}\""
        ))
        .expect("valid");
        assert_eq!(c.scopes.len(), 2);
        let ldap = |i: usize| match &c.scopes[i].directory.source {
            SourceSettings::Ldap(l) => l.clone(),
            SourceSettings::Ldif(_) => panic!("ldap"),
        };
        let (staff, contacts) = (ldap(0), ldap(1));
        assert_eq!(c.scopes[0].directory.name.as_deref(), Some("staff"));
        assert_eq!(staff.urls, contacts.urls);
        assert_eq!(
            (staff.scope, contacts.scope),
            (ldap3::Scope::Subtree, ldap3::Scope::OneLevel)
        );
        assert_eq!(staff.filter, "(objectClass=*)");
        assert_eq!(contacts.filter, "(objectClass=contact)");
        assert_eq!(c.scopes[1].directory.phone_attributes, ["telephonenumber"]);
        assert_eq!(
            contacts.match_filter.as_str(),
            "(|(telephonenumber={wildcard}))"
        );
        assert_eq!(c.scopes[1].phone.region().as_ref(), "GB");
        assert_eq!(c.scopes[0].phone.region().as_ref(), "IL");
        // A scope's response keys over [response]'s.
        let company = |i: usize| {
            c.scopes[i]
                .response
                .company
                .as_ref()
                .map(|t| t.as_str().to_owned())
        };
        assert_eq!(company(0).as_deref(), Some("Example · {department}"));
        assert_eq!(company(1).as_deref(), Some("{company|o}"));
        assert!(c.scopes.iter().all(|s| s.response.url.is_some()));
        // Each scope's index has a state file of its own.
        let state = |l: &crate::directory::LdapSettings| {
            l.index.as_ref().and_then(|i| i.state_file.clone())
        };
        assert_eq!(
            state(&staff),
            Some(PathBuf::from("/etc/popup-ldap/state/index.staff.state"))
        );
        assert_eq!(
            state(&contacts),
            Some(PathBuf::from("/etc/popup-ldap/state/index.contacts.state"))
        );
    }

    #[test]
    fn scope_mistakes_name_the_scope() {
        let two = SCOPES.replacen("name = \"contacts\"", "name = \"staff\"", 1);
        let cases = [
            (
                SCOPES.replace("(objectClass=contact)", "objectClass=contact"),
                "directory.scope[1].filter",
            ),
            (
                SCOPES.replacen("name = \"staff\"\n", "", 1),
                "directory.scope[0].name",
            ),
            (
                SCOPES.replace("\"contacts\"", "\"con tacts\""),
                "directory.scope[1].name",
            ),
            (two, "directory.scope[1].name: \"staff\" is used twice"),
            (
                SCOPES.replace("base_dn = \"OU=Contacts,DC=example,DC=com\"", ""),
                "directory.scope[1].base_dn",
            ),
            (
                SCOPES.replace("default_region = \"GB\"", "default_region = \"XX\""),
                "directory.scope[1].default_region",
            ),
            (
                SCOPES.replace(
                    "phone_attributes = [\"telephoneNumber\"]",
                    "phone_attributes = []",
                ),
                "directory.scope[1].phone_attributes",
            ),
            (
                SCOPES.replace(
                    "company = \"Example · {department}\"",
                    "url = \"intranet/{uid}\"",
                ),
                "directory.scope[0].response.url",
            ),
            (
                SCOPES.replace(
                    "company = \"Example · {department}\"",
                    "unknown_url = \"https://x\"",
                ),
                "directory.scope[0].response.unknown_url: unknown field `unknown_url`",
            ),
            (
                SCOPES.replace("scope = \"one\"", "scope = \"deep\""),
                "directory.scope[1].scope: unknown variant `deep`",
            ),
            (
                SCOPES.replace("[index]", "base_dn = \"DC=example,DC=com\"\n[index]"),
                "directory.base_dn",
            ),
            (
                SCOPES
                    .replace("source = \"ldap\"", "source = \"ldif\"\nldif = \"x.ldif\"")
                    .replace("urls = [\"ldaps://dc1.example.com\"]", "")
                    .replace("[index]\n        state_file = \"state/index.state\"", ""),
                "directory.scope",
            ),
        ];
        for (text, key) in cases {
            let e = error(&text);
            assert!(e.starts_with(key), "{key}: {e}");
        }
    }

    #[test]
    fn domain_controllers_from_dns_or_urls() {
        let base = "[directory]\nsource=\"ldap\"\nbase_dn=\"dc=x\"\n";
        let c = parse(&format!("{base}domain=\"example.com\"\nsite=\"Haifa\"")).expect("valid");
        let SourceSettings::Ldap(l) = &c.scopes[0].directory.source else {
            panic!("ldap")
        };
        let d = l.discovery.as_ref().expect("discovery");
        assert_eq!(
            (d.domain.as_str(), d.site.as_deref()),
            ("example.com", Some("Haifa"))
        );
        assert!(l.urls.is_empty());
        // Static URLs win.
        let c = parse(&format!(
            "{base}domain=\"example.com\"\nurls=[\"ldaps://dc1\"]"
        ))
        .expect("valid");
        let SourceSettings::Ldap(l) = &c.scopes[0].directory.source else {
            panic!("ldap")
        };
        assert!(l.discovery.is_none());
        let cases = [
            (format!("{base}domain=\"example .com\""), "directory.domain"),
            (
                format!("{base}urls=[\"ldaps://dc1\"]\nsite=\"Haifa\""),
                "directory.site",
            ),
            (
                format!("{base}domain=\"example.com\"\ndns_server=\"dns\""),
                "directory.dns_server",
            ),
            (base.to_owned(), "directory.urls"),
        ];
        for (text, key) in cases {
            let e = error(&text);
            assert!(e.starts_with(key), "{key}: {e}");
        }
    }

    #[test]
    fn the_admin_console_needs_its_own_address_and_a_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("admin"), "a-long-enough-admin-token").expect("write");
        std::fs::write(dir.path().join("short"), "short").expect("write");
        let parse_in =
            |extra: &str| Config::parse(&format!("{LDAP}\n[admin]\n{extra}"), dir.path());
        let c = parse_in("listen = \"127.0.0.1:9465\"\ntoken_file = \"admin\"").expect("valid");
        let admin = c.admin.as_ref().expect("admin");
        assert_eq!(admin.listen.to_string(), "127.0.0.1:9465");
        assert!(admin.recent_calls);
        assert_eq!(admin.allow.len(), 2, "this host only by default");
        assert!(c.http_setup().recent_calls);
        assert!(!format!("{c:?}").contains("a-long-enough-admin-token"));
        let cases = [
            ("token_file = \"admin\"", "admin.listen"),
            (
                "listen = \"127.0.0.1:8080\"\ntoken_file = \"admin\"",
                "admin.listen",
            ),
            ("listen = \"127.0.0.1:9465\"", "admin.token_file"),
            (
                "listen = \"127.0.0.1:9465\"\ntoken_file = \"short\"",
                "admin.token_file",
            ),
            (
                "listen = \"127.0.0.1:9465\"\ntoken_file = \"admin\"\nallow = [\"x\"]",
                "admin.allow",
            ),
        ];
        for (extra, key) in cases {
            let e = parse_in(extra).expect_err(key).to_string();
            assert!(e.starts_with(key), "{key}: {e}");
        }
    }

    #[test]
    fn kerberos_keys_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("svc.keytab"), b"\x05\x02").expect("write");
        let base = "[directory]\nsource=\"ldap\"\nbase_dn=\"dc=x\"\n";
        let parse_in = |text: &str| Config::parse(text, dir.path());
        let gssapi = format!(
            "{base}urls=[\"ldaps://dc1.example.com\"]\nbind=\"gssapi\"\nkeytab_file=\"svc.keytab\""
        );
        // Keys of the other kind of bind, in either direction.
        let e = parse_in(&format!(
            "{base}urls=[\"ldaps://x\"]\nkeytab_file=\"svc.keytab\""
        ))
        .expect_err("simple bind with a keytab");
        assert!(
            e.to_string()
                .starts_with("directory.keytab_file: applies to bind"),
            "{e}"
        );
        if !cfg!(feature = "kerberos") {
            let e = parse_in(&gssapi).expect_err("no Kerberos in this build");
            assert!(
                e.to_string().contains("built without Kerberos support"),
                "{e}"
            );
            return;
        }
        let c = parse_in(&gssapi).expect("valid");
        let k = c.kerberos().expect("kerberos");
        assert_eq!(k.keytab, dir.path().join("svc.keytab"));
        assert_eq!(
            (k.principal.as_deref(), k.server_name.as_deref()),
            (None, None)
        );
        let cases = [
            (format!("{gssapi}\nbind_dn=\"cn=svc\""), "directory.bind_dn"),
            (
                gssapi.replace("ldaps://dc1.example.com", "ldaps://10.0.0.5"),
                "directory.kerberos_server_name",
            ),
            (
                format!(
                    "{}\nallow_plaintext=true",
                    gssapi.replace("ldaps://", "ldap://")
                ),
                "directory.bind",
            ),
            (
                gssapi.replace("svc.keytab", "missing.keytab"),
                "directory.keytab_file",
            ),
            (
                gssapi.replace("keytab_file=\"svc.keytab\"", ""),
                "directory.keytab_file",
            ),
        ];
        for (text, key) in cases {
            let e = parse_in(&text).expect_err(key).to_string();
            assert!(e.starts_with(key), "{key}: {e}");
        }
        let named = gssapi.replace("ldaps://dc1.example.com", "ldaps://10.0.0.5")
            + "\nkerberos_server_name=\"dc1.example.com\"\nkerberos_principal=\"svc@EXAMPLE.COM\"";
        let c = parse_in(&named).expect("valid");
        assert_eq!(
            c.kerberos().and_then(|k| k.principal.as_deref()),
            Some("svc@EXAMPLE.COM")
        );
    }

    #[test]
    fn index_mode_is_the_default_and_its_keys_are_checked() {
        let c = parse(LDAP).expect("valid");
        let SourceSettings::Ldap(l) = &c.scopes[0].directory.source else {
            panic!("ldap")
        };
        let index = l.index.as_ref().expect("index mode by default");
        assert_eq!(index.poll_interval, Duration::from_secs(60));
        assert_eq!(index.full_resync_interval, Duration::from_secs(1800));
        assert_eq!(index.presence_check_interval, Duration::from_secs(300));
        // Unset, the presence check follows the other intervals.
        for (intervals, presence) in [
            ("poll_interval_s = 600\nfull_resync_interval_s = 3600", 600),
            ("poll_interval_s = 1\nfull_resync_interval_s = 60", 60),
        ] {
            let c = parse(&format!("{LDAP}\n[index]\n{intervals}")).expect("valid");
            let SourceSettings::Ldap(l) = &c.scopes[0].directory.source else {
                panic!("ldap")
            };
            let index = l.index.as_ref().expect("index");
            assert_eq!(index.presence_check_interval, Duration::from_secs(presence));
        }
        assert_eq!(
            (
                index.page_size,
                index.paced_page_size,
                index.change_attribute.as_str()
            ),
            (500, 50, "modifyTimestamp")
        );
        // A sync's page waits longer than a lookup: its deadline is not the ring's.
        assert_eq!(index.page_timeout, Duration::from_secs(30));
        let c = parse(&format!("{LDAP}\n[index]\npage_timeout_s = 5")).expect("valid");
        let SourceSettings::Ldap(l) = &c.scopes[0].directory.source else {
            panic!("ldap")
        };
        assert_eq!(
            l.index.as_ref().expect("index").page_timeout,
            Duration::from_secs(5)
        );
        let c = parse(&LDAP.replace("source", "mode = \"live\"\nsource")).expect("valid");
        let SourceSettings::Ldap(l) = &c.scopes[0].directory.source else {
            panic!("ldap")
        };
        assert!(l.index.is_none());

        let cases = [
            (
                LDAP.replace("source", "mode = \"cached\"\nsource"),
                "directory.mode",
            ),
            (
                format!(
                    "{}\n[index]\npoll_interval_s = 5",
                    LDAP.replace("source", "mode = \"live\"\nsource")
                ),
                "index",
            ),
            (
                format!("{LDAP}\n[index]\npage_size = 5000"),
                "index.page_size",
            ),
            (
                format!("{LDAP}\n[index]\npaced_page_size = 0"),
                "index.paced_page_size",
            ),
            (
                format!("{LDAP}\n[index]\npoll_interval_s = 0"),
                "index.poll_interval_s",
            ),
            (
                format!("{LDAP}\n[index]\npoll_interval_s = 600\nfull_resync_interval_s = 60"),
                "index.full_resync_interval_s",
            ),
            (
                format!("{LDAP}\n[index]\npoll_interval_s = 60\npresence_check_interval_s = 30"),
                "index.presence_check_interval_s",
            ),
            (
                format!("{LDAP}\n[index]\npresence_check_interval_s = 3600"),
                "index.presence_check_interval_s",
            ),
            (
                format!("{LDAP}\n[index]\npage_timeout_s = 0"),
                "index.page_timeout_s",
            ),
            (
                format!("{LDAP}\n[index]\nchange_attribute = \"when changed\""),
                "index.change_attribute",
            ),
            (format!("{LDAP}\n[index]\nrefresh = 1"), "refresh"),
            (
                "[directory]\nsource = \"ldif\"\nldif = \"x\"\n[index]\npoll_interval_s = 5"
                    .to_owned(),
                "index",
            ),
        ];
        for (text, key) in cases {
            let e = error(&text);
            assert!(e.starts_with(key) || e.contains(key), "{text}: {e}");
        }
    }

    #[test]
    fn the_state_file_is_relative_to_the_config_or_off() {
        let c = parse(&format!(
            "{LDAP}\n[index]\nstate_file = \"state/index.state\""
        ))
        .expect("valid");
        let SourceSettings::Ldap(l) = &c.scopes[0].directory.source else {
            panic!("ldap")
        };
        let index = l.index.as_ref().expect("index");
        assert_eq!(
            index.state_file.as_deref(),
            Some(Path::new("/etc/popup-ldap/state/index.state"))
        );
        let c = parse(&format!("{LDAP}\n[index]\nstate_file = \"\"")).expect("valid");
        let SourceSettings::Ldap(l) = &c.scopes[0].directory.source else {
            panic!("ldap")
        };
        assert_eq!(l.index.as_ref().expect("index").state_file, None);
    }

    #[test]
    fn plaintext_needs_starttls_or_an_explicit_allowance() {
        let base = "[directory]\nsource=\"ldap\"\nbase_dn=\"dc=x\"\nurls=[\"ldap://x\"]\n";
        assert!(parse(&format!("{base}starttls = true")).is_ok());
        assert!(parse(&format!("{base}allow_plaintext = true")).is_ok());
    }

    #[test]
    fn password_from_a_file_is_read_and_redacted() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("pw"), "s3cret\n").expect("write");
        let text = "[directory]\nsource=\"ldap\"\nurls=[\"ldaps://x\"]\nbase_dn=\"dc=x\"\n\
                    bind_dn=\"cn=svc\"\nbind_password_file=\"pw\"";
        let c = Config::parse(text, dir.path()).expect("valid");
        let SourceSettings::Ldap(l) = &c.scopes[0].directory.source else {
            panic!("ldap")
        };
        let (dn, pw) = l.bind.as_ref().expect("bind");
        assert_eq!((dn.as_str(), pw.expose()), ("cn=svc", "s3cret"));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn states_are_canonical() {
        let c = parse(&format!(
            "{LDAP}\n[lookup]\nstates = [\"Ringin\", \"DIALING\"]"
        ))
        .expect("valid");
        let states: Vec<_> = c.lookup.states.expect("set").into_iter().collect();
        assert_eq!(states, ["dialing", "ringing"]);
    }

    #[test]
    fn rate_limit_can_be_disabled() {
        let c = parse(&format!("{LDAP}\n[rate_limit]\nenabled = false")).expect("valid");
        assert!(c.rate_limit.is_none());
    }

    #[test]
    fn the_embedded_demo_is_valid() {
        let c = Config::embedded_demo().expect("demo config");
        assert!(matches!(
            c.scopes[0].directory.source,
            SourceSettings::Ldif(LdifData::Embedded(_))
        ));
    }

    #[test]
    fn not_toml_is_a_syntax_error() {
        assert!(matches!(parse("[directory"), Err(ConfigError::Syntax(_))));
        assert!(matches!(parse(""), Err(ConfigError::Syntax(_))));
    }
}

//! The configuration file as TOML gives it: every key optional, unknown keys refused.

use serde::Deserialize;

use super::ConfigError;

/// Reads the file's text into [`RawConfig`]. Serde's own errors (an unknown key, a wrong type,
/// a value not among an enum's) name the key they are about, as `section.name`, like the
/// validation's errors do; only text that is not TOML at all is a [`ConfigError::Syntax`].
pub(super) fn read(text: &str) -> Result<RawConfig, ConfigError> {
    serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        if key.is_empty() || key == "." {
            ConfigError::Syntax(inner.to_string())
        } else {
            ConfigError::Invalid {
                key,
                message: inner.message().to_owned(),
            }
        }
    })
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: RawServer,
    pub(super) directory: RawDirectory,
    #[serde(default)]
    pub(super) phone: RawPhone,
    #[serde(default)]
    pub(super) lookup: RawLookup,
    #[serde(default)]
    pub(super) response: RawResponse,
    pub(super) index: Option<RawIndex>,
    #[serde(default)]
    pub(super) access: RawAccess,
    #[serde(default)]
    pub(super) rate_limit: RawRateLimit,
    #[serde(default)]
    pub(super) log: RawLog,
    #[serde(default)]
    pub(super) metrics: RawMetrics,
    pub(super) admin: Option<RawAdmin>,
}

/// `[admin]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) listen: Option<String>,
    pub(super) token_file: Option<String>,
    pub(super) token_env: Option<String>,
    pub(super) token_credential: Option<String>,
    pub(super) allow: Option<Vec<String>>,
    pub(super) recent_calls: Option<bool>,
}

/// `[server]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<String>,
    pub(super) path: Option<String>,
    pub(super) max_body_bytes: Option<usize>,
    pub(super) tls_cert_file: Option<String>,
    pub(super) tls_key_file: Option<String>,
    pub(super) header_timeout_s: Option<u64>,
    pub(super) body_timeout_s: Option<u64>,
    pub(super) idle_timeout_s: Option<u64>,
    pub(super) max_connections: Option<usize>,
    pub(super) http2_max_streams: Option<u32>,
    pub(super) cors_origins: Option<Vec<String>>,
}

/// `[directory]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDirectory {
    pub(super) source: Option<RawSource>,
    pub(super) mode: Option<RawMode>,
    pub(super) ldif: Option<String>,
    pub(super) urls: Option<Vec<String>>,
    pub(super) domain: Option<String>,
    pub(super) site: Option<String>,
    pub(super) dns_server: Option<String>,
    pub(super) starttls: Option<bool>,
    pub(super) ca_file: Option<String>,
    pub(super) danger_accept_invalid_certs: Option<bool>,
    pub(super) allow_plaintext: Option<bool>,
    pub(super) bind: Option<RawBind>,
    pub(super) bind_dn: Option<String>,
    pub(super) bind_password_file: Option<String>,
    pub(super) bind_password_env: Option<String>,
    pub(super) bind_password_credential: Option<String>,
    pub(super) keytab_file: Option<String>,
    pub(super) keytab_credential: Option<String>,
    pub(super) kerberos_principal: Option<String>,
    pub(super) krb5_conf: Option<String>,
    pub(super) kerberos_server_name: Option<String>,
    pub(super) base_dn: Option<String>,
    pub(super) scope: Option<RawScopes>,
    pub(super) filter: Option<String>,
    pub(super) phone_attributes: Option<Vec<String>>,
    pub(super) match_filter: Option<String>,
    pub(super) max_entries: Option<u32>,
    pub(super) connect_timeout_ms: Option<u64>,
    pub(super) timeout_ms: Option<u64>,
}

/// `directory.source`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawSource {
    /// A directory server.
    Ldap,
    /// An LDIF file.
    Ldif,
}

/// `directory.bind`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawBind {
    /// `bind_dn` and a password (or anonymous without `bind_dn`).
    Simple,
    /// Kerberos from a keytab.
    Gssapi,
}

/// `directory.mode`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawMode {
    /// Answer from an index synced from the directory.
    Index,
    /// Search the directory for each call.
    Live,
}

/// `directory.scope`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawScope {
    /// The base entry and everything under it.
    #[serde(alias = "sub")]
    Subtree,
    /// The entries directly under the base.
    #[serde(alias = "onelevel")]
    One,
    /// The base entry only.
    Base,
}

/// `directory.scope`: a search scope (`scope = "one"`), or the list of scopes
/// (`[[directory.scope]]`).
#[derive(Debug)]
pub(super) enum RawScopes {
    /// The one scope's search scope.
    Search(RawScope),
    /// Several scopes, in rank order.
    List(Vec<RawScopeTable>),
}

impl<'de> Deserialize<'de> for RawScopes {
    /// By hand rather than `#[serde(untagged)]`, which would answer any mistake inside a scope
    /// with "did not match any variant" instead of naming the key.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawScopes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"subtree\", \"one\" or \"base\", or [[directory.scope]] tables")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawScopes, E> {
                let de = serde::de::value::StrDeserializer::<E>::new(v);
                RawScope::deserialize(de).map(RawScopes::Search)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<RawScopes, A::Error> {
                let de = serde::de::value::SeqAccessDeserializer::new(seq);
                Vec::deserialize(de).map(RawScopes::List)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// One `[[directory.scope]]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScopeTable {
    pub(super) name: Option<String>,
    pub(super) base_dn: Option<String>,
    pub(super) filter: Option<String>,
    pub(super) scope: Option<RawScope>,
    pub(super) phone_attributes: Option<Vec<String>>,
    pub(super) default_region: Option<String>,
    pub(super) response: Option<RawScopeResponse>,
}

/// `[directory.scope.response]` as written: the answer's templates for this scope's entries.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScopeResponse {
    pub(super) client_name: Option<String>,
    pub(super) company: Option<String>,
    pub(super) url: Option<String>,
    pub(super) multiple_client_name: Option<String>,
    pub(super) multiple_company: Option<String>,
    pub(super) multiple_url: Option<String>,
}

/// `[index]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIndex {
    pub(super) poll_interval_s: Option<u64>,
    pub(super) full_resync_interval_s: Option<u64>,
    pub(super) presence_check_interval_s: Option<u64>,
    pub(super) page_size: Option<u32>,
    pub(super) paced_page_size: Option<u32>,
    pub(super) change_attribute: Option<String>,
    pub(super) state_file: Option<String>,
    pub(super) sync_timeout_s: Option<u64>,
    pub(super) page_timeout_s: Option<u64>,
    pub(super) ready_max_age_s: Option<u64>,
    pub(super) max_entries: Option<usize>,
}

/// `[phone]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPhone {
    pub(super) default_region: Option<String>,
    pub(super) max_extension_digits: Option<usize>,
    pub(super) country_attributes: Option<Vec<String>>,
}

/// `[lookup]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLookup {
    pub(super) states: Option<Vec<String>>,
    pub(super) deadline_ms: Option<u64>,
    pub(super) answer_cache: Option<bool>,
}

/// `[response]` as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResponse {
    pub(super) client_name: Option<String>,
    pub(super) company: Option<String>,
    pub(super) url: Option<String>,
    pub(super) unknown_client_name: Option<String>,
    pub(super) unknown_company: Option<String>,
    pub(super) unknown_url: Option<String>,
    pub(super) multiple_client_name: Option<String>,
    pub(super) multiple_company: Option<String>,
    pub(super) multiple_url: Option<String>,
    pub(super) max_client_name_chars: Option<usize>,
    pub(super) max_company_chars: Option<usize>,
    pub(super) max_url_chars: Option<usize>,
}

/// `[access]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccess {
    pub(super) token_file: Option<String>,
    pub(super) token_env: Option<String>,
    pub(super) token_credential: Option<String>,
    pub(super) allow: Option<Vec<String>>,
    pub(super) trusted_proxies: Option<Vec<String>>,
}

/// `[rate_limit]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    pub(super) enabled: Option<bool>,
    pub(super) per_ip_per_second: Option<u32>,
    pub(super) per_ip_burst: Option<u32>,
    pub(super) global_per_second: Option<u32>,
    pub(super) global_burst: Option<u32>,
    pub(super) ipv4_prefix: Option<u8>,
    pub(super) ipv6_prefix: Option<u8>,
}

/// `[metrics]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: Option<String>,
}

/// `[log]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) level: Option<String>,
    pub(super) mask_numbers: Option<bool>,
}

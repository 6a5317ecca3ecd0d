//! `[directory]` and `[index]` as the directory module takes them: where entries come from,
//! which attributes hold numbers, how index mode follows LDAP (built and validated by
//! `settings`).

use std::path::PathBuf;
use std::time::Duration;

use super::filter::FilterTemplate;
use crate::secret::Secret;

/// `[directory]`: where entries come from and which attributes hold numbers.
#[derive(Debug, Clone)]
pub struct DirectorySettings {
    /// `[[directory.scope]] name`; `None` for the one scope of a `[directory]` without them.
    pub name: Option<String>,
    /// The source of entries.
    pub source: SourceSettings,
    /// `phone_attributes`, lower-cased, in priority order for choosing the best match.
    pub phone_attributes: Vec<String>,
}

/// Where entries come from.
#[derive(Debug, Clone)]
pub enum SourceSettings {
    /// `source = "ldif"`: entries from an LDIF file.
    Ldif(LdifData),
    /// `source = "ldap"`: live searches against a directory server.
    Ldap(Box<LdapSettings>),
}

/// Where the LDIF text lives.
#[derive(Debug, Clone)]
pub enum LdifData {
    /// A file, resolved against the configuration file's folder.
    File(PathBuf),
    /// Text compiled into the binary (the demo).
    Embedded(&'static str),
}

/// How to reach and search an LDAP directory.
#[derive(Debug, Clone)]
pub struct LdapSettings {
    /// `urls`: tried in order; the first that connects and binds serves. Empty when the
    /// domain controllers are found in DNS (`discovery`).
    pub urls: Vec<String>,
    /// `domain` (and `site`) without `urls`: the DCs are found in DNS.
    pub discovery: Option<DiscoverySettings>,
    /// `starttls`: upgrade `ldap://` connections with StartTLS.
    pub starttls: bool,
    /// `ca_file`: PEM CA certificates; `None` uses the system's roots.
    pub ca_file: Option<PathBuf>,
    /// `danger_accept_invalid_certs`: skip certificate verification.
    pub danger_accept_invalid_certs: bool,
    /// The service account and its password; `None` binds anonymously (or by Kerberos).
    pub bind: Option<(String, Secret)>,
    /// `bind = "gssapi"`: bind by Kerberos from a keytab instead.
    pub kerberos: Option<KerberosSettings>,
    /// `base_dn`.
    pub base_dn: String,
    /// `scope`: `subtree` (default), `one` or `base`.
    pub scope: ldap3::Scope,
    /// `filter`: which entries are eligible at all.
    pub filter: String,
    /// `directory.phone_attributes`, lower-cased: where numbers are.
    pub phone_attributes: Vec<String>,
    /// `match_filter`: how the caller's number is searched for.
    pub match_filter: FilterTemplate,
    /// `max_entries`: size limit of one lookup's search.
    pub max_entries: u32,
    /// `connect_timeout_ms`: connecting, TLS and binding to one server.
    pub connect_timeout: Duration,
    /// `timeout_ms`: one live search (a sync's pages have [`IndexSettings::page_timeout`]).
    pub timeout: Duration,
    /// `mode = "index"` (the default): answer from an index synced from the directory;
    /// `None` for `mode = "live"`.
    pub index: Option<IndexSettings>,
}

impl LdapSettings {
    /// The entries that count and have a phone attribute: `(&<filter>(|(<attr>=*)...))`.
    pub fn eligible_filter(&self) -> String {
        let any_phone: String = self
            .phone_attributes
            .iter()
            .map(|a| format!("({a}=*)"))
            .collect();
        format!("(&{}(|{any_phone}))", self.filter)
    }
}

/// `[index]`: how the in-memory index follows the directory.
#[derive(Debug, Clone)]
pub struct IndexSettings {
    /// `poll_interval_s`: how often changes are fetched.
    pub poll_interval: Duration,
    /// `full_resync_interval_s`: how often everything is read again.
    pub full_resync_interval: Duration,
    /// `presence_check_interval_s`: how often the names of all eligible entries are read to
    /// find the deleted ones (at most the full resync interval, which also checks).
    pub presence_check_interval: Duration,
    /// `page_size`: entries per page of the paged search.
    pub page_size: u32,
    /// `paced_page_size`: entries per page of the reads made while calls are answered (full
    /// resyncs and presence checks).
    pub paced_page_size: u32,
    /// `change_attribute`: `modifyTimestamp` (OpenLDAP) or `whenChanged` (AD).
    pub change_attribute: String,
    /// `state_file`: where the last good index is kept for restarts during an outage.
    pub state_file: Option<PathBuf>,
    /// `sync_timeout_s`: a whole sync, its pauses between pages not counted.
    pub sync_timeout: Duration,
    /// `page_timeout_s`: one page of a sync (`directory.timeout_ms` is for the ring: a sync
    /// starved of CPU by a call peak, or a poll the server answers by a scan, may take longer
    /// without anything being wrong).
    pub page_timeout: Duration,
    /// `ready_max_age_s`: `/readyz` fails once the index is older than this.
    pub ready_max_age: Duration,
    /// `max_entries`: the most entries the index holds; a larger directory fails the sync,
    /// and a state file over [`IndexSettings::state_file_limit`] is not read.
    pub max_entries: usize,
}

impl IndexSettings {
    /// The largest state file that is read: `max_entries` x [`STATE_FILE_BYTES_PER_ENTRY`].
    pub fn state_file_limit(&self) -> u64 {
        (self.max_entries as u64).saturating_mul(STATE_FILE_BYTES_PER_ENTRY)
    }
}

/// `index.page_timeout_s` by default, and the limit on a page of reads made without an index.
pub const DEFAULT_PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// State file bytes allowed per entry of `index.max_entries` (a real entry takes 300-600).
pub const STATE_FILE_BYTES_PER_ENTRY: u64 = 2048;

/// `bind = "gssapi"`: how the service authenticates by Kerberos.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KerberosSettings {
    /// `keytab_file` (or the systemd credential `keytab_credential`): the client keytab.
    pub keytab: PathBuf,
    /// `kerberos_principal`; `None` takes the keytab's first.
    pub principal: Option<String>,
    /// `krb5_conf`; `None` uses the system's (`/etc/krb5.conf`).
    pub krb5_conf: Option<PathBuf>,
    /// `kerberos_server_name`: the DC host name for the `ldap/<name>` principal, for URLs that
    /// name an IP address.
    pub server_name: Option<String>,
}

/// `directory.domain`: domain controllers found by their DNS SRV records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverySettings {
    /// `domain`: the AD domain's DNS name, `example.com`.
    pub domain: String,
    /// `site`: the AD site whose DCs are tried first.
    pub site: Option<String>,
    /// `dns_server`: the DNS server to ask instead of the system's (for tests).
    pub dns_server: Option<std::net::SocketAddr>,
}

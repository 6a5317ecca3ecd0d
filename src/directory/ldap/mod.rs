//! Live searches against LDAP servers with ldap3 over TLS: one shared connection, opened on
//! first use with TCP_NODELAY, re-established after failure, every step under a deadline.
//!
//! Failover: servers are tried in order, but a server that does not answer within
//! [`STAGGER`] gets company (the next one is tried alongside, and the first to bind wins), and
//! a server that failed is tried only after the others for [`REST_AFTER_FAILURE`]. So a dead,
//! refusing, hanging or wrongly-certified domain controller costs at most one stagger once,
//! not a timeout per call.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use tokio::sync::Mutex;

use super::{tls, Candidates, DirectoryError, Entry, LdapSettings, DEFAULT_PAGE_TIMEOUT};
use crate::phone::CallerNumber;
use pool::{Connection, Fault, Server};
use search::SearchFailure;

mod ad;
mod discovery;
mod error;
pub mod kerberos;
mod pool;
mod search;

pub use ad::{DcIdentity, DcState};
pub use search::{change_order, Changes, Fetched, Paging, Pauses, Read};

/// Entries the `check-config` probe asks for.
const PROBE_ENTRIES: i32 = 5;
/// Page size of `read_all` (Active Directory's limit is 1000).
const PAGE_FOR_READS: i32 = 500;
/// How long a connection attempt may go unanswered before the next server is tried as well.
pub const STAGGER: Duration = Duration::from_millis(250);
/// How long a server that failed is tried only after the others.
pub const REST_AFTER_FAILURE: Duration = Duration::from_secs(60);

/// What connecting to one server has done: for metrics.
#[derive(Debug, Clone)]
pub struct ServerStats {
    /// The server's URL.
    pub url: String,
    /// Successful connections (connect, TLS, bind).
    pub connects: u64,
    /// Failed or abandoned connection attempts, and connections that broke.
    pub failures: u64,
    /// Whether the shared connection is to this server now.
    pub active: bool,
    /// Whether it failed lately and is tried last for a while.
    pub resting: bool,
}

/// What `check-config` learnt from the directory.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The server that answered.
    pub server: String,
    /// Whom the bind authenticated (a DN, or the keytab's principal), `None` for anonymous.
    pub bound_as: Option<String>,
    /// The filter of the sample search.
    pub filter: String,
    /// Entries with a phone attribute that the sample search returned.
    pub sample: Vec<Entry>,
    /// Whether the server had more than the sample.
    pub more: bool,
}

/// Live searches against the configured servers.
pub struct LdapDirectory {
    config: LdapSettings,
    tls: Arc<ClientConfig>,
    attributes: Vec<String>,
    /// The servers in configured (or DNS) order; replaced when DNS is asked again.
    servers: arc_swap::ArcSwap<Vec<Arc<Server>>>,
    /// With `directory.domain`: when the servers found in DNS are to be asked for again.
    rediscover_at: std::sync::Mutex<Option<std::time::Instant>>,
    current: Mutex<Option<Connection>>,
    next_id: AtomicU64,
}

impl LdapDirectory {
    /// Prepares the TLS configuration; nothing is connected until the first lookup.
    pub fn new(config: &LdapSettings, attributes: Vec<String>) -> Result<Self, DirectoryError> {
        Ok(LdapDirectory {
            tls: tls::client_config(
                config.ca_file.as_deref(),
                config.danger_accept_invalid_certs,
            )?,
            config: config.clone(),
            attributes,
            servers: arc_swap::ArcSwap::from_pointee(
                config
                    .urls
                    .iter()
                    .map(|u| Arc::new(Server::new(u)))
                    .collect(),
            ),
            rediscover_at: std::sync::Mutex::new(None),
            current: Mutex::new(None),
            next_id: AtomicU64::new(0),
        })
    }

    /// One line saying where lookups go.
    pub fn describe(&self) -> String {
        let servers = match &self.config.discovery {
            Some(d) => format!("the domain controllers of {} (DNS)", d.domain),
            None => self.config.urls.join(", "),
        };
        format!(
            "live LDAP searches under {} on {servers}",
            self.config.base_dn
        )
    }

    /// Entries the filter finds for `number`; on a broken connection, reconnects once.
    pub async fn candidates(&self, number: &CallerNumber) -> Result<Candidates, DirectoryError> {
        let filter = self
            .config
            .match_filter
            .for_caller(&self.config.filter, number);
        let sizelimit = i32::try_from(self.config.max_entries).unwrap_or(i32::MAX);
        let mut conn = self.connection().await?;
        let entries = match self.search(&conn, &filter, sizelimit).await {
            Ok(entries) => entries,
            Err(SearchFailure::Refused(e)) => return Err(e),
            Err(SearchFailure::Transport(e)) => {
                tracing::warn!(server = %conn.url, error = %e, "directory connection failed; reconnecting");
                self.forget(&conn, Fault::Server).await;
                conn = self.connection().await?;
                self.search(&conn, &filter, sizelimit).await?
            }
        };
        Ok(Candidates {
            unverified: entries,
            filter: Some(filter),
            server: Some(Arc::new(conn.url.to_string())),
            ..Candidates::default()
        })
    }

    /// Whether a server answers now: the root DSE read over the open connection, or over a new
    /// one when that fails.
    pub async fn reachable(&self) -> Result<(), DirectoryError> {
        let conn = self.connection().await?;
        if self.root_dse(&conn).await.is_ok() {
            return Ok(());
        }
        self.forget(&conn, Fault::Server).await;
        let conn = self.connection().await?;
        self.root_dse(&conn).await
    }

    /// Connects, binds and runs one small search for entries with a phone number: what
    /// `check-config` reports.
    pub async fn probe(&self) -> Result<Probe, DirectoryError> {
        let filter = self.config.eligible_filter();
        let conn = self.connection().await?;
        let mut entries = self.search(&conn, &filter, PROBE_ENTRIES + 1).await?;
        let more = entries.len() > PROBE_ENTRIES as usize;
        entries.truncate(PROBE_ENTRIES as usize);
        Ok(Probe {
            server: conn.url.to_string(),
            bound_as: match (&self.config.kerberos, &self.config.bind) {
                (Some(_), _) => Some("the keytab's principal (Kerberos)".to_owned()),
                (None, Some((dn, _))) => Some(dn.clone()),
                (None, None) => None,
            },
            filter,
            sample: entries,
            more,
        })
    }

    /// Every eligible entry with a phone attribute (what `check-config` examines).
    pub async fn read_all(&self) -> Result<Vec<Entry>, DirectoryError> {
        let mut all = Vec::new();
        let (change, timeout) = self
            .config
            .index
            .as_ref()
            .map_or(("modifyTimestamp", DEFAULT_PAGE_TIMEOUT), |i| {
                (i.change_attribute.as_str(), i.page_timeout)
            });
        self.fetch_all(
            &self.config.eligible_filter(),
            Paging {
                page_size: PAGE_FOR_READS,
                paced: false,
                read: Read::Entries,
                timeout,
            },
            Changes {
                attribute: change,
                per_dc: false,
            },
            &Pauses::default(),
            |batch| all.extend(batch),
        )
        .await?;
        Ok(all)
    }
}

//! Live searches against LDAP servers with ldap3 over TLS: one shared connection, opened on
//! first use with TCP_NODELAY, re-established after failure, every step under a deadline.
//!
//! Failover: servers are tried in order, but a server that does not answer within
//! [`STAGGER`] gets company (the next one is tried alongside, and the first to bind wins), and
//! a server that failed is tried only after the others for [`REST_AFTER_FAILURE`]. So a dead,
//! refusing, hanging or wrongly-certified domain controller costs at most one stagger once,
//! not a timeout per call.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt as _};

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::controls::RawControl;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions, StdStream};
use rustls::ClientConfig;
use tokio::sync::Mutex;

use super::{binary_value, tls, Candidates, DirectoryError, Entry};
use crate::config::LdapConfig;
use crate::locks::lock;
use crate::phone::CallerNumber;

/// LDAP result codes that still carry usable entries.
const RC_SUCCESS: u32 = 0;
const RC_SIZE_LIMIT: u32 = 4;
const RC_REFERRAL: u32 = 10;
const RC_NO_SUCH_OBJECT: u32 = 32;

/// Entries the `check-config` probe asks for.
const PROBE_ENTRIES: i32 = 5;
/// Page size of `read_all` (Active Directory's limit is 1000).
const PAGE_FOR_READS: i32 = 500;
/// How long a connection attempt may go unanswered before the next server is tried as well.
pub const STAGGER: Duration = Duration::from_millis(250);
/// How long a server that failed is tried only after the others.
pub const REST_AFTER_FAILURE: Duration = Duration::from_secs(60);

/// One configured server and what connecting to it has done.
struct Server {
    url: String,
    connects: AtomicU64,
    failures: AtomicU64,
    active: AtomicBool,
    rest_until: std::sync::Mutex<Option<Instant>>,
}

impl Server {
    fn new(url: &str) -> Self {
        Server {
            url: url.to_owned(),
            connects: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            active: AtomicBool::new(false),
            rest_until: std::sync::Mutex::new(None),
        }
    }

    fn resting(&self, now: Instant) -> bool {
        lock(&self.rest_until).is_some_and(|until| until > now)
    }

    fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.active.store(false, Ordering::Relaxed);
        *lock(&self.rest_until) = Some(Instant::now() + REST_AFTER_FAILURE);
    }
}

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
}

/// A domain controller as Active Directory names it: the changes it numbers with `uSNChanged`
/// are its own, and a restore from backup gives it a new invocation id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DcIdentity {
    /// The root DSE's `dsServiceName` (the DC's NTDS Settings object).
    pub service: String,
    /// That object's `invocationId`.
    pub invocation_id: String,
}

/// A domain controller and how far its changes went when it was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DcState {
    /// Which DC.
    pub identity: DcIdentity,
    /// The root DSE's `highestCommittedUSN`.
    pub highest_usn: u64,
}

#[derive(Clone)]
struct Connection {
    ldap: Ldap,
    url: Arc<str>,
    id: u64,
}

/// A search that failed on the way (the connection is suspect) or was refused by the server.
enum SearchFailure {
    Transport(DirectoryError),
    Refused(DirectoryError),
}

impl From<SearchFailure> for DirectoryError {
    fn from(failure: SearchFailure) -> Self {
        match failure {
            SearchFailure::Transport(e) | SearchFailure::Refused(e) => e,
        }
    }
}

/// What `check-config` learnt from the directory.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The server that answered.
    pub server: String,
    /// The DN bound as, or `None` for anonymous.
    pub bound_as: Option<String>,
    /// The filter of the sample search.
    pub filter: String,
    /// Entries with a phone attribute that the sample search returned.
    pub sample: Vec<Entry>,
    /// Whether the server had more than the sample.
    pub more: bool,
}

/// Entries read by a paged search, in batches.
pub struct Fetched {
    /// The server that answered.
    pub server: String,
    /// The greatest value of the change attribute seen, if any entry had it.
    pub watermark: Option<String>,
    /// How many entries were read.
    pub count: usize,
    /// The domain controller's state, read on the same connection before the search (when
    /// asked for).
    pub dc: Option<DcState>,
}

/// How a paged read is made.
#[derive(Clone, Copy, Debug)]
pub struct Paging {
    /// Entries per page.
    pub page_size: i32,
    /// Half speed: a pause after each page as long as it took, leaving the machine to calls.
    pub paced: bool,
    /// What is read.
    pub read: Read,
}

/// What a paged read returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// The entries under the base with the configured attributes.
    Entries,
    /// Only their DNs (and the change attribute): entries without attributes.
    Names,
    /// Active Directory's tombstones of the base DN's domain (Show Deleted control), as
    /// entries without attributes named by the DN each had before it was deleted.
    Deleted,
}

/// Active Directory's Show Deleted control: tombstones are returned too.
const SHOW_DELETED: &str = "1.2.840.113556.1.4.417";

/// What a tombstone's relative name holds after the original one (`\nDEL:<objectGUID>`, the
/// newline escaped as `\0A` in a string DN).
const TOMBSTONE_MARK: &str = "\\0ADEL:";

/// The longest pause of a paced read between two pages.
const MAX_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// Live searches against the configured servers.
pub struct LdapDirectory {
    config: LdapConfig,
    tls: Arc<ClientConfig>,
    attributes: Vec<String>,
    servers: Vec<Arc<Server>>,
    current: Mutex<Option<Connection>>,
    next_id: AtomicU64,
}

impl LdapDirectory {
    /// Prepares the TLS configuration; nothing is connected until the first lookup.
    pub fn new(config: &LdapConfig, attributes: Vec<String>) -> Result<Self, DirectoryError> {
        Ok(LdapDirectory {
            tls: tls::client_config(
                config.ca_file.as_deref(),
                config.danger_accept_invalid_certs,
            )?,
            config: config.clone(),
            attributes,
            servers: config
                .urls
                .iter()
                .map(|u| Arc::new(Server::new(u)))
                .collect(),
            current: Mutex::new(None),
            next_id: AtomicU64::new(0),
        })
    }

    /// One line saying where lookups go.
    pub fn describe(&self) -> String {
        format!(
            "live LDAP searches under {} on {}",
            self.config.base_dn,
            self.config.urls.join(", ")
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
                self.forget(&conn, true).await;
                conn = self.connection().await?;
                self.search(&conn, &filter, sizelimit).await?
            }
        };
        Ok(Candidates {
            unverified: entries.into_iter().map(Arc::new).collect(),
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
        self.forget(&conn, true).await;
        let conn = self.connection().await?;
        self.root_dse(&conn).await
    }

    async fn root_dse(&self, conn: &Connection) -> Result<(), DirectoryError> {
        let mut ldap = conn.ldap.clone();
        ldap.with_timeout(self.config.timeout)
            .search("", Scope::Base, "(objectClass=*)", vec!["1.1"])
            .await
            .map(|_| ())
            .map_err(|e| DirectoryError::Search {
                url: conn.url.to_string(),
                reason: describe_ldap_error(&e),
            })
    }

    /// Connects, binds and runs one small search for entries with a phone number: what
    /// `check-config` reports.
    pub async fn probe(&self, phone_attributes: &[String]) -> Result<Probe, DirectoryError> {
        let filter = self.config.eligible_filter(phone_attributes);
        let conn = self.connection().await?;
        let mut entries = self.search(&conn, &filter, PROBE_ENTRIES + 1).await?;
        let more = entries.len() > PROBE_ENTRIES as usize;
        entries.truncate(PROBE_ENTRIES as usize);
        Ok(Probe {
            server: conn.url.to_string(),
            bound_as: self.config.bind.as_ref().map(|(dn, _)| dn.clone()),
            filter,
            sample: entries,
            more,
        })
    }

    /// Every eligible entry with a phone attribute (what `check-config` examines).
    pub async fn read_all(
        &self,
        phone_attributes: &[String],
    ) -> Result<Vec<Entry>, DirectoryError> {
        let mut all = Vec::new();
        let change = self
            .config
            .index
            .as_ref()
            .map_or("modifyTimestamp", |i| i.change_attribute.as_str());
        self.fetch_all(
            &self.config.eligible_filter(phone_attributes),
            Paging {
                page_size: PAGE_FOR_READS,
                paced: false,
                read: Read::Entries,
            },
            change,
            false,
            |batch| all.extend(batch),
        )
        .await?;
        Ok(all)
    }

    /// Reads every entry matching `filter` under the base with paged searches (see [`Paging`]),
    /// handing them to `batch` a page at a time. The change attribute is read for the
    /// watermark and left out of the entries. Every page must arrive within `timeout_ms`.
    /// With `bound_to_dc`, the domain controller's state is read first on the same connection
    /// (Active Directory's `uSNChanged` numbers are per DC).
    pub async fn fetch_all(
        &self,
        filter: &str,
        paging: Paging,
        change_attribute: &str,
        bound_to_dc: bool,
        mut batch: impl FnMut(Vec<Entry>),
    ) -> Result<Fetched, DirectoryError> {
        let conn = self.connection().await?;
        let dc = if bound_to_dc {
            match self.dc_state(&conn).await {
                Ok(dc) => Some(dc),
                Err(e) => {
                    self.forget(&conn, false).await;
                    return Err(e);
                }
            }
        } else {
            None
        };
        let result = self
            .stream_all(&conn, filter, paging, change_attribute, &mut batch)
            .await;
        if result.is_err() {
            self.forget(&conn, false).await;
        }
        result.map(|fetched| Fetched { dc, ..fetched })
    }

    // One function although long: the stream borrows the connection's handle and its type
    // names the adapters, so a split would only pass it around.
    async fn stream_all(
        &self,
        conn: &Connection,
        filter: &str,
        paging: Paging,
        change_attribute: &str,
        batch: &mut impl FnMut(Vec<Entry>),
    ) -> Result<Fetched, DirectoryError> {
        let fail = |reason: String| DirectoryError::Search {
            url: conn.url.to_string(),
            reason,
        };
        let change_attribute = change_attribute.to_ascii_lowercase();
        let (base, scope, mut attrs, controls) = match paging.read {
            Read::Entries => (
                self.config.base_dn.as_str(),
                self.config.scope,
                self.attributes.clone(),
                vec![],
            ),
            Read::Names => (
                self.config.base_dn.as_str(),
                self.config.scope,
                vec![],
                vec![],
            ),
            Read::Deleted => (
                domain_of(&self.config.base_dn),
                Scope::Subtree,
                vec![LAST_KNOWN_PARENT.to_owned()],
                vec![RawControl {
                    ctype: SHOW_DELETED.to_owned(),
                    crit: true,
                    val: None,
                }],
            ),
        };
        attrs.push(change_attribute.clone());
        let page_size = paging.page_size;
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(page_size)),
        ];
        let mut ldap = conn.ldap.clone();
        let mut stream = ldap
            .with_timeout(self.config.timeout)
            .with_controls(controls)
            .streaming_search_with(adapters, base, scope, filter, attrs)
            .await
            .map_err(|e| fail(describe_ldap_error(&e)))?;
        let mut watermark: Option<String> = None;
        let mut pending = Vec::new();
        let mut count = 0;
        let mut page_started = std::time::Instant::now();
        while let Some(found) = stream
            .next()
            .await
            .map_err(|e| fail(describe_ldap_error(&e)))?
        {
            let mut found = SearchEntry::construct(found);
            for value in take_attribute(&mut found, &change_attribute) {
                if watermark
                    .as_ref()
                    .is_none_or(|w| change_order(&value, w).is_gt())
                {
                    watermark = Some(value);
                }
            }
            if paging.read == Read::Deleted {
                let Some(dn) = deleted_dn(&found) else {
                    continue;
                };
                pending.push(Entry::new(&dn, std::iter::empty::<(String, Vec<String>)>()));
            } else {
                pending.push(entry_from(found));
            }
            count += 1;
            if pending.len() >= page_size as usize {
                batch(std::mem::take(&mut pending));
                if paging.paced {
                    tokio::time::sleep(page_started.elapsed().min(MAX_PAUSE)).await;
                    page_started = std::time::Instant::now();
                }
            }
        }
        if !pending.is_empty() {
            batch(pending);
        }
        let status = stream.finish().await;
        self.search_done(status.rc, &status.text).map_err(fail)?;
        Ok(Fetched {
            server: conn.url.to_string(),
            watermark,
            count,
            dc: None,
        })
    }

    /// The domain controller behind `conn`: its identity and highest committed USN.
    async fn dc_state(&self, conn: &Connection) -> Result<DcState, DirectoryError> {
        let fail = |reason: String| DirectoryError::Search {
            url: conn.url.to_string(),
            reason: format!(
                "cannot read the domain controller's identity, which index.change_attribute = \
                 \"uSNChanged\" needs (is this Active Directory?): {reason}"
            ),
        };
        let root = self
            .base_entry(conn, "", &["dsServiceName", "highestCommittedUSN"])
            .await
            .map_err(fail)?;
        let service =
            text_value(&root, "dsServiceName").ok_or_else(|| fail("no dsServiceName".into()))?;
        let highest_usn = text_value(&root, "highestCommittedUSN")
            .and_then(|u| u.parse().ok())
            .ok_or_else(|| fail("no highestCommittedUSN".into()))?;
        let ntds = self
            .base_entry(conn, &service, &["invocationId"])
            .await
            .map_err(fail)?;
        let invocation_id = guid_value(&ntds, "invocationId")
            .ok_or_else(|| fail(format!("no invocationId on {service}")))?;
        Ok(DcState {
            identity: DcIdentity {
                service,
                invocation_id,
            },
            highest_usn,
        })
    }

    /// One entry read with a base search.
    async fn base_entry(
        &self,
        conn: &Connection,
        dn: &str,
        attributes: &[&str],
    ) -> Result<SearchEntry, String> {
        let mut ldap = conn.ldap.clone();
        let (found, _) = ldap
            .with_timeout(self.config.timeout)
            .search(dn, Scope::Base, "(objectClass=*)", attributes.to_vec())
            .await
            .and_then(ldap3::SearchResult::success)
            .map_err(|e| describe_ldap_error(&e))?;
        found
            .into_iter()
            .next()
            .map(SearchEntry::construct)
            .ok_or_else(|| format!("{dn:?} cannot be read"))
    }

    /// What connecting to each server has done.
    pub fn servers(&self) -> Vec<ServerStats> {
        self.servers
            .iter()
            .map(|s| ServerStats {
                url: s.url.clone(),
                connects: s.connects.load(Ordering::Relaxed),
                failures: s.failures.load(Ordering::Relaxed),
                active: s.active.load(Ordering::Relaxed),
            })
            .collect()
    }

    async fn connection(&self) -> Result<Connection, DirectoryError> {
        let mut current = self.current.lock().await;
        if let Some(conn) = current.as_mut() {
            if !conn.ldap.is_closed() {
                return Ok(conn.clone());
            }
        }
        let conn = self.connect_any().await?;
        *current = Some(conn.clone());
        Ok(conn)
    }

    /// Drops the shared connection if it is still `broken`; with `failed`, its server is
    /// tried last for a while.
    async fn forget(&self, broken: &Connection, failed: bool) {
        let mut current = self.current.lock().await;
        if current.as_ref().map(|c| c.id) == Some(broken.id) {
            *current = None;
            if failed {
                if let Some(server) = self.servers.iter().find(|s| *s.url == *broken.url) {
                    server.failed();
                }
            }
        }
    }

    /// The servers in the order to try them: those not resting first (the active one
    /// first, then in configured order), then the resting ones, soonest rested first.
    fn order(&self) -> Vec<Arc<Server>> {
        let now = Instant::now();
        let mut order: Vec<(bool, bool, Option<Instant>, usize)> = self
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let rest = *lock(&s.rest_until);
                (s.resting(now), !s.active.load(Ordering::Relaxed), rest, i)
            })
            .collect();
        order.sort();
        order
            .into_iter()
            .map(|(.., i)| self.servers[i].clone())
            .collect()
    }

    /// Connects to the first server that binds, trying the next one alongside whenever an
    /// attempt goes unanswered for [`STAGGER`], and at once when one fails.
    async fn connect_any(&self) -> Result<Connection, DirectoryError> {
        let mut waiting = self.order().into_iter();
        let mut attempts = FuturesUnordered::new();
        let mut pending: Vec<Arc<Server>> = Vec::new();
        let mut failures = Vec::new();
        let attempt = |server: Arc<Server>| async move {
            let result =
                tokio::time::timeout(self.config.connect_timeout, self.connect(&server.url))
                    .await
                    .unwrap_or_else(|_| {
                        Err(DirectoryError::Connect {
                            url: server.url.clone(),
                            reason: format!(
                                "no answer within {} ms (directory.connect_timeout_ms)",
                                self.config.connect_timeout.as_millis()
                            ),
                        })
                    });
            (server, result)
        };
        loop {
            if attempts.is_empty() {
                let Some(next) = waiting.next() else { break };
                pending.push(next.clone());
                attempts.push(attempt(next));
            }
            let more = waiting.len() > 0;
            tokio::select! {
                Some((server, result)) = attempts.next() => {
                    pending.retain(|p| !Arc::ptr_eq(p, &server));
                    match result {
                        Ok(conn) => {
                            for slow in pending {
                                tracing::warn!(
                                    server = %slow.url, answered = %server.url,
                                    "directory server did not answer in time; another one did"
                                );
                                slow.failed();
                            }
                            for other in &self.servers {
                                other.active.store(false, Ordering::Relaxed);
                            }
                            server.connects.fetch_add(1, Ordering::Relaxed);
                            server.active.store(true, Ordering::Relaxed);
                            *lock(&server.rest_until) = None;
                            tracing::info!(server = %server.url, "connected to directory");
                            return Ok(conn);
                        }
                        Err(error) => {
                            server.failed();
                            tracing::warn!(error = %error, "directory server unusable");
                            failures.push(error.to_string());
                            if let Some(next) = waiting.next() {
                                pending.push(next.clone());
                                attempts.push(attempt(next));
                            }
                        }
                    }
                }
                () = tokio::time::sleep(STAGGER), if more => {
                    if let Some(next) = waiting.next() {
                        pending.push(next.clone());
                        attempts.push(attempt(next));
                    }
                }
            }
        }
        Err(DirectoryError::Unavailable(failures.join("; ")))
    }

    async fn connect(&self, url: &str) -> Result<Connection, DirectoryError> {
        let fail = |reason: String| DirectoryError::Connect {
            url: url.to_owned(),
            reason,
        };
        let parsed = url::Url::parse(url).map_err(|e| fail(e.to_string()))?;
        let ldaps = parsed.scheme().eq_ignore_ascii_case("ldaps");
        let port = parsed.port().unwrap_or(if ldaps { 636 } else { 389 });
        let address = format!("{}:{port}", parsed.host_str().unwrap_or("localhost"));
        // ldap3 leaves Nagle on, which costs ~40 ms per round trip: open the socket ourselves.
        let tcp = tokio::net::TcpStream::connect(&address)
            .await
            .map_err(|e| fail(format!("cannot connect to {address}: {e}")))?;
        let std = tcp
            .set_nodelay(true)
            .and_then(|()| tcp.into_std())
            .map_err(|e| fail(format!("socket setup: {e}")))?;
        let settings = LdapConnSettings::new()
            .set_config(self.tls.clone())
            .set_starttls(self.config.starttls && !ldaps)
            .set_std_stream(StdStream::Tcp(std));
        self.handshake(settings, url).await
    }

    async fn handshake(
        &self,
        settings: LdapConnSettings,
        url: &str,
    ) -> Result<Connection, DirectoryError> {
        let fail = |reason: String| DirectoryError::Connect {
            url: url.to_owned(),
            reason,
        };
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, url)
            .await
            .map_err(|e| fail(describe_ldap_error(&e)))?;
        let server = url.to_owned();
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(server = %server, error = %e, "directory connection ended");
            }
        });
        if let Some((dn, password)) = &self.config.bind {
            let result = ldap
                .with_timeout(self.config.connect_timeout)
                .simple_bind(dn, password.expose())
                .await
                .map_err(|e| fail(format!("bind as {dn}: {}", describe_ldap_error(&e))))?;
            if result.rc != RC_SUCCESS {
                return Err(fail(format!(
                    "bind as {dn} refused: {} (LDAP result {}{})",
                    result_name(result.rc),
                    result.rc,
                    if result.text.is_empty() {
                        String::new()
                    } else {
                        format!(", {}", result.text)
                    }
                )));
            }
        }
        Ok(Connection {
            ldap,
            url: Arc::from(url),
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
        })
    }

    async fn search(
        &self,
        conn: &Connection,
        filter: &str,
        sizelimit: i32,
    ) -> Result<Vec<Entry>, SearchFailure> {
        let fail = |reason: String| DirectoryError::Search {
            url: conn.url.to_string(),
            reason,
        };
        let mut ldap = conn.ldap.clone();
        let result = ldap
            .with_search_options(SearchOptions::new().sizelimit(sizelimit))
            .with_timeout(self.config.timeout)
            .search(
                &self.config.base_dn,
                self.config.scope,
                filter,
                &self.attributes,
            )
            .await
            .map_err(|e| SearchFailure::Transport(fail(describe_ldap_error(&e))))?;
        let ldap3::SearchResult(results, status) = result;
        // A live search takes what a size limit let through.
        if status.rc != RC_SIZE_LIMIT {
            self.search_done(status.rc, &status.text)
                .map_err(|why| SearchFailure::Refused(fail(why)))?;
        }
        Ok(results
            .into_iter()
            // Search references (AD's referrals to other partitions) carry no entry.
            .filter(|r| !r.is_ref() && !r.is_intermediate())
            .map(|r| entry_from(SearchEntry::construct(r)))
            .collect())
    }

    /// How a whole search ended: `Err` with the reason unless it succeeded (referrals are
    /// skipped, not followed).
    fn search_done(&self, rc: u32, text: &str) -> Result<(), String> {
        match rc {
            RC_SUCCESS | RC_REFERRAL => Ok(()),
            RC_NO_SUCH_OBJECT => Err(no_such_base(&self.config.base_dn)),
            rc => Err(format!("{} (LDAP result {rc}) {text}", result_name(rc))),
        }
    }
}

fn entry_from(mut found: SearchEntry) -> Entry {
    // A GUID whose 16 bytes happen to be valid UTF-8 arrives as text: move it back.
    let guids: Vec<String> = found
        .attrs
        .keys()
        .filter(|k| binary_value(k, &[0; 16]).is_some())
        .cloned()
        .collect();
    for name in guids {
        if let Some(values) = found.attrs.remove(&name) {
            found
                .bin_attrs
                .insert(name, values.into_iter().map(String::into_bytes).collect());
        }
    }
    let binary = found.bin_attrs.into_iter().map(|(name, values)| {
        let text: Vec<String> = values
            .iter()
            .filter_map(|v| binary_value(&name, v))
            .collect();
        (name, text)
    });
    Entry::new(&found.dn, found.attrs.into_iter().chain(binary))
}

/// The attribute of a tombstone naming the container its object was deleted from.
const LAST_KNOWN_PARENT: &str = "lastKnownParent";

/// The DN a tombstone's object had: the tombstone's relative name up to the deletion mark
/// (in the server's own escaping, as the index holds it) under `lastKnownParent`. `None` for
/// entries that are not tombstones of a deletion (the Deleted Objects container itself).
/// AD shortens relative names of more than about 200 characters to make room for the mark
/// (keeping the whole one in `msDS-LastKnownRDN`): such entries wait for the next presence
/// check.
fn deleted_dn(tombstone: &SearchEntry) -> Option<String> {
    let (rdn, _) = tombstone.dn.split_once(TOMBSTONE_MARK)?;
    let parent = text_value(tombstone, LAST_KNOWN_PARENT)?;
    Some(format!("{rdn},{parent}"))
}

/// The domain naming context `dn` belongs to: the part from its first `DC=` on.
fn domain_of(dn: &str) -> &str {
    let mut at = 0;
    for part in dn.split(',') {
        if part
            .trim_start()
            .get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case("dc="))
        {
            return dn[at..].trim_start();
        }
        at += part.len() + 1;
    }
    dn
}

/// How two change values order: numerically when both are numbers (`uSNChanged`), else as
/// text (generalized times of one format sort as text).
pub fn change_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => a.cmp(b),
    }
}

/// Takes an attribute's values out of an entry, whatever the case of its name.
fn take_attribute(entry: &mut SearchEntry, name: &str) -> Vec<String> {
    let key = entry
        .attrs
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned();
    key.and_then(|k| entry.attrs.remove(&k)).unwrap_or_default()
}

/// The first value of a text attribute, whatever the case of its name.
fn text_value(entry: &SearchEntry, name: &str) -> Option<String> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.first().cloned())
}

/// The first value of a GUID attribute as a GUID string. ldap3 files values that happen to
/// be valid UTF-8 under `attrs`, so both maps are looked at.
fn guid_value(entry: &SearchEntry, name: &str) -> Option<String> {
    let text = entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(k, v)| binary_value(k, v.first()?.as_bytes()));
    text.or_else(|| {
        entry
            .bin_attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(k, v)| binary_value(k, v.first()?))
    })
}

fn no_such_base(base_dn: &str) -> String {
    format!(
        "directory.base_dn {base_dn:?} does not exist on this server, or the bind account may \
         not read it"
    )
}

fn describe_ldap_error(e: &ldap3::LdapError) -> String {
    let text = e.to_string();
    let hint = if text.contains("UnknownIssuer") {
        " (the server's certificate is not signed by directory.ca_file or the system roots)"
    } else if text.contains("not valid for name") {
        " (put the name the certificate holds in directory.urls)"
    } else if text.contains("certificate expired") {
        " (renew the server's certificate)"
    } else {
        ""
    };
    format!("{text}{hint}")
}

fn result_name(rc: u32) -> &'static str {
    match rc {
        1 => "operations error",
        2 => "protocol error",
        3 => "time limit exceeded",
        8 => "stronger authentication required (use ldaps:// or StartTLS)",
        11 => "administrative limit exceeded",
        13 => "confidentiality required (use ldaps:// or StartTLS)",
        32 => "no such object",
        34 => "invalid DN syntax",
        48 => "inappropriate authentication",
        49 => "invalid credentials",
        50 => "insufficient access rights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwilling to perform",
        87 => "filter error",
        _ => "error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn change_values_order_as_numbers_or_as_text() {
        use std::cmp::Ordering::*;
        assert_eq!(change_order("999", "1000"), Less);
        assert_eq!(
            change_order("20261124120332.0Z", "20261124120331.0Z"),
            Greater
        );
        assert_eq!(change_order("12", "12"), Equal);
    }

    fn tombstone(dn: &str, attrs: &[(&str, &str)]) -> SearchEntry {
        SearchEntry {
            dn: dn.into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
                .collect(),
            bin_attrs: HashMap::new(),
        }
    }

    #[test]
    fn tombstones_are_named_by_the_dn_their_object_had() {
        let deleted = "CN=Deleted Objects,DC=example,DC=com";
        let guid = "DEL:ab394f8a-041c-4cde-ac24-f2c13b08484c";
        let samba = tombstone(
            &format!("CN=Cohen\\, Avi\\0A{guid},{deleted}"),
            &[("lastKnownParent", "OU=Staff,DC=example,DC=com")],
        );
        assert_eq!(
            deleted_dn(&samba).as_deref(),
            Some("CN=Cohen\\, Avi,OU=Staff,DC=example,DC=com")
        );
        // The container itself, and a tombstone whose parent is unknown, name nobody.
        assert_eq!(deleted_dn(&tombstone(deleted, &[])), None);
        assert_eq!(
            deleted_dn(&tombstone(&format!("CN=x\\0A{guid},{deleted}"), &[])),
            None
        );
    }

    #[test]
    fn tombstones_are_read_in_the_base_dns_domain() {
        assert_eq!(domain_of("OU=Staff,DC=example,DC=com"), "DC=example,DC=com");
        assert_eq!(domain_of("ou=a, dc=example,dc=com"), "dc=example,dc=com");
        assert_eq!(domain_of("DC=example,DC=com"), "DC=example,DC=com");
        assert_eq!(domain_of("o=Example"), "o=Example");
    }

    #[test]
    fn guids_that_look_like_text_still_render_as_guids() {
        // 16 ASCII bytes: ldap3 files them under `attrs`, as text.
        let ascii = "0123456789abcdef";
        let entry = SearchEntry {
            dn: "CN=x".into(),
            attrs: HashMap::from([
                ("objectGUID".to_owned(), vec![ascii.to_owned()]),
                ("invocationId".to_owned(), vec![ascii.to_owned()]),
                ("cn".to_owned(), vec!["x".to_owned()]),
            ]),
            bin_attrs: HashMap::new(),
        };
        let expected = binary_value("objectGUID", ascii.as_bytes()).expect("guid");
        assert_eq!(guid_value(&entry, "invocationid"), Some(expected.clone()));
        let built = entry_from(entry);
        assert_eq!(
            built.values("objectguid").collect::<Vec<_>>(),
            [expected.as_str()]
        );
        assert_eq!(built.values("cn").collect::<Vec<_>>(), ["x"]);
    }
}

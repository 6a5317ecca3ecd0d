//! Connections: the configured servers in order, each resting after a failure, TLS
//! (LDAPS or StartTLS) and bind, one connection kept and replaced when it breaks.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures_util::stream::{FuturesUnordered, StreamExt as _};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, StdStream};

use super::discovery::discover;
use super::error::{describe_ldap_error, result_name};
use super::search::RC_SUCCESS;
use super::{LdapDirectory, ServerStats, REST_AFTER_FAILURE, STAGGER};
use crate::directory::DirectoryError;
use crate::locks::lock;

/// Why a connection is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fault {
    /// The server failed: it rests before it is tried first again.
    Server,
    /// A read on it went wrong (too slow, cut): a new connection is made, the server not
    /// blamed.
    Read,
}

impl LdapDirectory {
    pub(super) async fn root_dse(&self, conn: &Connection) -> Result<(), DirectoryError> {
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

    /// What connecting to each server has done.
    pub fn servers(&self) -> Vec<ServerStats> {
        self.servers
            .load()
            .iter()
            .map(|s| ServerStats {
                url: s.url.clone(),
                connects: s.connects.load(Ordering::Relaxed),
                failures: s.failures.load(Ordering::Relaxed),
                active: s.active.load(Ordering::Relaxed),
                resting: s.resting(Instant::now()),
            })
            .collect()
    }

    pub(super) async fn connection(&self) -> Result<Connection, DirectoryError> {
        let mut current = self.current.lock().await;
        if let Some(conn) = current.as_mut() {
            if !conn.ldap.is_closed() {
                return Ok(conn.clone());
            }
        }
        self.rediscover().await?;
        let conn = self.connect_any().await?;
        *current = Some(conn.clone());
        Ok(conn)
    }

    /// Drops the shared connection if it is still `broken`; for a [`Fault::Server`], its
    /// server is tried last for a while.
    pub(super) async fn forget(&self, broken: &Connection, fault: Fault) {
        let mut current = self.current.lock().await;
        if current.as_ref().map(|c| c.id) == Some(broken.id) {
            *current = None;
            if fault == Fault::Server {
                if let Some(server) = self.servers.load().iter().find(|s| *s.url == *broken.url) {
                    server.failed();
                }
            }
        }
    }

    /// The servers in the order to try them: those not resting first (the active one
    /// first, then in configured order), then the resting ones, soonest rested first.
    pub(super) fn order(&self) -> Vec<Arc<Server>> {
        let now = Instant::now();
        let servers = self.servers.load();
        let mut order: Vec<(bool, bool, Option<Instant>, usize)> = servers
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
            .map(|(.., i)| servers[i].clone())
            .collect()
    }

    /// Records that `server` connected first: it is the active one now, and the `slow` ones
    /// still trying rest.
    fn won(&self, server: &Arc<Server>, slow: Vec<Arc<Server>>) {
        for slow in slow {
            tracing::warn!(
                server = %slow.url, answered = %server.url,
                "directory server did not answer in time; another one did"
            );
            slow.failed();
        }
        for other in self.servers.load().iter() {
            other.active.store(false, Ordering::Relaxed);
        }
        server.connects.fetch_add(1, Ordering::Relaxed);
        server.active.store(true, Ordering::Relaxed);
        *lock(&server.rest_until) = None;
        tracing::info!(server = %server.url, "connected to directory");
    }

    /// With `directory.domain`, asks DNS for the domain controllers when the last answer's TTL
    /// has run out (or never asked). Servers still listed keep their history (resting,
    /// counts); when DNS fails, the known ones are kept, and without any it is an error.
    async fn rediscover(&self) -> Result<(), DirectoryError> {
        let Some(discovery) = &self.config.discovery else {
            return Ok(());
        };
        if lock(&self.rediscover_at).is_some_and(|at| at > Instant::now()) {
            return Ok(());
        }
        match discover(discovery, self.config.starttls, self.config.connect_timeout).await {
            Ok(found) => {
                let known = self.servers.load();
                let servers: Vec<Arc<Server>> = found
                    .urls
                    .iter()
                    .map(|url| {
                        known
                            .iter()
                            .find(|s| s.url == *url)
                            .cloned()
                            .unwrap_or_else(|| Arc::new(Server::new(url)))
                    })
                    .collect();
                tracing::info!(domain = %discovery.domain, servers = %found.urls.join(", "), "domain controllers found in DNS");
                self.servers.store(Arc::new(servers));
                *lock(&self.rediscover_at) = Some(found.valid_until);
                Ok(())
            }
            Err(e) if self.servers.load().is_empty() => Err(DirectoryError::Unavailable(e)),
            Err(e) => {
                tracing::warn!(error = %e, "DNS did not answer for the domain controllers; trying the ones known");
                *lock(&self.rediscover_at) = Some(Instant::now() + super::discovery::MIN_TTL);
                Ok(())
            }
        }
    }

    /// Connects to the first server that binds, trying the next one alongside whenever an
    /// attempt goes unanswered for [`STAGGER`], and at once when one fails.
    pub(super) async fn connect_any(&self) -> Result<Connection, DirectoryError> {
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
                            self.won(&server, pending);
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

    pub(super) async fn connect(&self, url: &str) -> Result<Connection, DirectoryError> {
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

    pub(super) async fn handshake(
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
        self.bind(&mut ldap, url).await.map_err(fail)?;
        Ok(Connection {
            ldap,
            url: Arc::from(url),
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
        })
    }
}

impl LdapDirectory {
    /// Binds as configured: by Kerberos, with the service account's password, or not at all
    /// (anonymous).
    async fn bind(&self, ldap: &mut Ldap, url: &str) -> Result<(), String> {
        let timeout = self.config.connect_timeout;
        let (who, result) = if let Some(kerberos) = &self.config.kerberos {
            let name = super::kerberos::server_name(kerberos, url);
            let who = format!("Kerberos bind for ldap/{name}");
            let bound = tokio::time::timeout(timeout, super::kerberos::bind(ldap, kerberos, name))
                .await
                .map_err(|_| format!("{who}: no answer within {} ms", timeout.as_millis()))?;
            (who.clone(), bound.map_err(|e| format!("{who}: {e}"))?)
        } else if let Some((dn, password)) = &self.config.bind {
            let bound = ldap
                .with_timeout(timeout)
                .simple_bind(dn, password.expose())
                .await
                .map_err(|e| format!("bind as {dn}: {}", describe_ldap_error(&e)))?;
            (format!("bind as {dn}"), bound)
        } else {
            return Ok(());
        };
        if result.rc == RC_SUCCESS {
            return Ok(());
        }
        Err(format!(
            "{who} refused: {} (LDAP result {}{})",
            result_name(result.rc),
            result.rc,
            if result.text.is_empty() {
                String::new()
            } else {
                format!(", {}", result.text)
            }
        ))
    }
}

/// One configured server and what connecting to it has done.
pub(super) struct Server {
    url: String,
    connects: AtomicU64,
    failures: AtomicU64,
    active: AtomicBool,
    rest_until: std::sync::Mutex<Option<Instant>>,
}

impl Server {
    pub(super) fn new(url: &str) -> Self {
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

#[derive(Clone)]
pub(super) struct Connection {
    pub(super) ldap: Ldap,
    pub(super) url: Arc<str>,
    id: u64,
}

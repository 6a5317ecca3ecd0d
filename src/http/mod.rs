//! The HTTP endpoint: one path that takes GET, POST form and POST JSON, and answers JSON.
//! Nothing here knows about LDAP; everything about a lookup is asked of [`Lookup`].

pub mod accept;
pub mod access;
pub mod budget;
pub mod clock;
pub mod cors;
mod filters;
mod handlers;
pub mod limit;
pub mod metrics;
pub mod recent;
pub mod refusals;
pub mod reply;
pub mod request;
mod settings;
pub mod tls;
pub mod wire;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::cidr::Cidr;
use crate::directory::DirectoryError;
use crate::lookup::{self, Lookup};
pub use accept::{serve, ConnectionLimits};
use access::Access;
use arc_swap::ArcSwap;
pub use filters::{metrics_routes, routes};
use limit::RateLimits;
use metrics::{Metrics, Outcome};
use refusals::RefusalLog;
pub use settings::{AccessSettings, ConnectionTimeouts, RateLimitSettings, ServerSettings};

/// The header that may carry `access.token` (besides `?token=` and `Authorization: Bearer`).
pub const TOKEN_HEADER: &str = "x-popup-token";

/// The liveness probe's path, answered whatever `server.path` is.
pub const HEALTH_PATH: &str = "/healthz";
/// The readiness probe's path, answered whatever `server.path` is.
pub const READY_PATH: &str = "/readyz";

/// A popup URL is a path and a few short fields; a longer one is refused (414).
const MAX_URL_BYTES: usize = 8 * 1024;

/// What the endpoint is built from: `[server]`, `[access]`, `[rate_limit]`, `log.mask_numbers`
/// and what the lookup is built from.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// `[server]`
    pub server: &'a ServerSettings,
    /// `[access]`
    pub access: &'a AccessSettings,
    /// `[rate_limit]`; `None` when disabled.
    pub rate_limit: Option<&'a RateLimitSettings>,
    /// `log.mask_numbers`
    pub mask_numbers: bool,
    /// `admin.recent_calls` with the console on: keep the last calls for it.
    pub recent_calls: bool,
    /// The lookup's own settings.
    pub lookup: lookup::Setup<'a>,
}

/// What a configuration sets up and requests are answered with (the lookup, access, limits),
/// replaced as a whole when the configuration is reloaded.
pub struct Running {
    /// The lookup service.
    pub lookup: Lookup,
    /// `server.path`
    pub path: String,
    /// `server.max_body_bytes`
    pub max_body_bytes: usize,
    /// `server.body_timeout_s`
    pub body_timeout: Duration,
    /// Who may call.
    pub access: Access,
    /// Rate limits, when enabled.
    pub limits: Option<RateLimits>,
    /// `log.mask_numbers`
    pub mask_numbers: bool,
    /// Whether the last calls are kept for the admin console.
    pub recent_calls: bool,
    /// `server.cors_origins`, when any.
    pub cors: Option<cors::Cors>,
}

impl Running {
    /// Opens the directory and, in index mode, starts following it.
    async fn open(setup: Setup<'_>) -> Result<Self, DirectoryError> {
        let lookup = Lookup::open(setup.lookup).await?;
        lookup.directory().follow();
        Ok(Running {
            lookup,
            path: setup.server.path.clone(),
            max_body_bytes: setup.server.max_body_bytes,
            body_timeout: setup.server.timeouts.body,
            access: Access::new(setup.access.clone()),
            limits: setup.rate_limit.map(RateLimits::new),
            mask_numbers: setup.mask_numbers,
            recent_calls: setup.recent_calls,
            cors: (!setup.server.cors_origins.is_empty())
                .then(|| cors::Cors::new(setup.server.cors_origins.clone())),
        })
    }

    /// Whom `client` is counted with: its rate-limit network, or by default an IPv4 address
    /// or an IPv6 /64.
    fn group(&self, client: IpAddr) -> Cidr {
        match &self.limits {
            Some(limits) => limits.key(client),
            None => limit::group(client, limit::DEFAULT_GROUPING),
        }
    }
}

/// The running endpoint's shared state.
pub struct App {
    current: ArcSwap<Running>,
    /// Request and lookup counters (kept across reloads).
    pub metrics: Metrics,
    /// Refusals not yet summarised in the log.
    pub refusals: RefusalLog,
    /// The last calls (when the admin console keeps them; kept across reloads).
    pub recent: recent::RecentCalls,
}

impl App {
    /// Builds the endpoint's state from a validated configuration: opens the directory and,
    /// in index mode, starts following it.
    pub async fn open(setup: Setup<'_>) -> Result<Self, DirectoryError> {
        Ok(App {
            current: ArcSwap::from_pointee(Running::open(setup).await?),
            metrics: Metrics::default(),
            refusals: RefusalLog::default(),
            recent: recent::RecentCalls::default(),
        })
    }

    /// Counts a refused request, and logs it through `say` if it is the first from the
    /// client's `group` in this interval (the rest are summarised, see [`refusals`]).
    fn refused(&self, group: Cidr, outcome: Outcome, say: impl FnOnce()) {
        self.metrics.request(outcome);
        if self.refusals.first(group, outcome) {
            say();
        }
    }

    /// What requests are answered with now.
    pub fn running(&self) -> Arc<Running> {
        self.current.load_full()
    }

    /// Replaces what runs with what `setup` sets up (in index mode after its first sync);
    /// requests in flight finish with what they started with.
    pub async fn reload(&self, setup: Setup<'_>) -> Result<(), DirectoryError> {
        let fresh = Running::open(setup).await?;
        self.current.store(Arc::new(fresh));
        Ok(())
    }
}
